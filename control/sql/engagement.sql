-- Contact engagement (control/schema/0020): folded in from tracking_events by
-- control/engagement.py, read by segment criteria (control/segments.py).

-- name: engagement-progress
-- The last tracking event id read, and the newest there is.
SELECT p.last_event_id,
       (SELECT coalesce(max(id), 0) FROM tracking_events) AS newest_event_id
FROM engagement_progress p;

-- name: engagement-fold
-- Folds the opens and clicks with ids in ($1, $2] into both engagement tables. Events map
-- to contacts by their recipient row's address (lower-cased, as contacts keep it) within the
-- event's company; events of aggregate-only tenants (no recipient) and outside campaigns
-- have no contact to credit. Upserts keep the latest time per column, so a re-read event is
-- harmless. Returns the number of (contact, campaign) pairs touched.
WITH per_campaign AS (
    SELECT e.company_id, e.campaign_id, c.id AS contact_id,
           max(e.at) FILTER (WHERE e.kind = 'open')                   AS open_at,
           max(e.at) FILTER (WHERE e.kind = 'open' AND NOT e.machine)  AS human_open_at,
           max(e.at) FILTER (WHERE e.kind = 'click')                  AS click_at,
           max(e.at) FILTER (WHERE e.kind = 'click' AND NOT e.machine) AS human_click_at
    FROM tracking_events e
    JOIN recipients r ON r.id = e.recipient_id
    JOIN contacts c ON c.company_id = e.company_id AND c.email = lower(r.recipient)
                   AND NOT c.is_deleted
    WHERE e.id > $1 AND e.id <= $2 AND e.kind IN ('open', 'click')
      AND e.campaign_id IS NOT NULL AND e.recipient_id IS NOT NULL
    GROUP BY e.company_id, e.campaign_id, c.id
), campaigns AS (
    INSERT INTO contact_campaign_engagement AS t
        (company_id, campaign_id, contact_id, last_open_at, last_human_open_at,
         last_click_at, last_human_click_at)
    SELECT company_id, campaign_id, contact_id, open_at, human_open_at, click_at,
           human_click_at
    FROM per_campaign ORDER BY company_id, campaign_id, contact_id
    ON CONFLICT (company_id, campaign_id, contact_id) DO UPDATE SET
        last_open_at = greatest(t.last_open_at, excluded.last_open_at),
        last_human_open_at = greatest(t.last_human_open_at, excluded.last_human_open_at),
        last_click_at = greatest(t.last_click_at, excluded.last_click_at),
        last_human_click_at = greatest(t.last_human_click_at, excluded.last_human_click_at)
    RETURNING 1
), contacts_touched AS (
    INSERT INTO contact_engagement AS t
        (company_id, contact_id, last_open_at, last_human_open_at, last_click_at,
         last_human_click_at)
    SELECT company_id, contact_id, max(open_at), max(human_open_at), max(click_at),
           max(human_click_at)
    FROM per_campaign GROUP BY company_id, contact_id ORDER BY company_id, contact_id
    ON CONFLICT (company_id, contact_id) DO UPDATE SET
        last_open_at = greatest(t.last_open_at, excluded.last_open_at),
        last_human_open_at = greatest(t.last_human_open_at, excluded.last_human_open_at),
        last_click_at = greatest(t.last_click_at, excluded.last_click_at),
        last_human_click_at = greatest(t.last_human_click_at, excluded.last_human_click_at)
    RETURNING 1
)
SELECT (SELECT count(*) FROM campaigns) AS pairs, (SELECT count(*) FROM contacts_touched) AS contacts;

-- name: engagement-advance
-- Records that events up to id $1 have been folded in.
UPDATE engagement_progress SET last_event_id = greatest(last_event_id, $1), updated_at = now();
