-- The periodic rollup of campaign counters from the queue and tracking events.

-- name: performance-rollup
-- Campaign counters recomputed for the campaigns in flight: being sent or sent within $1
-- seconds, or with a tracking event within $2 seconds. Delivered: recipients the MX accepted;
-- bounced: refused, or reported by a DSN afterwards (bounce_events); opened and clicked:
-- recipients who opened or clicked as people (machine opens and clicks excluded; where a
-- tenant tracks in aggregate only, each anonymous human event counts once); unsubscribed:
-- recipients who left through the tracker or the mailto: address.
-- Updates only the campaigns whose counters changed and returns them.
WITH active AS (
    SELECT company_id, id AS campaign_id FROM email_campaigns
    WHERE NOT is_deleted
      AND (campaign_status = 'sending'
           OR (campaign_status IN ('sent', 'completed')
               AND sent_date > now() - make_interval(secs => $1)))
    UNION
    SELECT DISTINCT company_id, campaign_id FROM tracking_events
    WHERE campaign_id IS NOT NULL AND at > now() - make_interval(secs => $2)
), queue AS (
    SELECT a.company_id, a.campaign_id,
           count(*) FILTER (WHERE r.state = 'delivered') AS delivered
    FROM active a
    JOIN messages m ON m.company_id = a.company_id AND m.campaign_id = a.campaign_id
    JOIN recipients r ON r.message_id = m.id
    GROUP BY a.company_id, a.campaign_id
), bounced AS (
    -- refused at delivery, or reported by a DSN after the MX had accepted the mail
    SELECT company_id, campaign_id, count(DISTINCT recipient_id) AS bounced
    FROM (SELECT a.company_id, a.campaign_id, r.id AS recipient_id
          FROM active a
          JOIN messages m ON m.company_id = a.company_id AND m.campaign_id = a.campaign_id
          JOIN recipients r ON r.message_id = m.id AND r.state = 'bounced'
          UNION
          SELECT a.company_id, a.campaign_id, b.recipient_id
          FROM active a
          JOIN bounce_events b ON b.campaign_id = a.campaign_id AND b.company_id = a.company_id
          WHERE b.kind = 'bounced' AND b.recipient_id IS NOT NULL) x
    GROUP BY company_id, campaign_id
), tracked AS (
    SELECT a.company_id, a.campaign_id,
           count(DISTINCT e.recipient_id) FILTER (WHERE e.kind = 'open' AND NOT e.machine)
             + count(*) FILTER (WHERE e.kind = 'open' AND NOT e.machine
                                  AND e.recipient_id IS NULL) AS opened,
           count(DISTINCT e.recipient_id) FILTER (WHERE e.kind = 'click' AND NOT e.machine)
             + count(*) FILTER (WHERE e.kind = 'click' AND NOT e.machine
                                  AND e.recipient_id IS NULL) AS clicked,
           count(*) FILTER (WHERE e.kind = 'unsubscribe'
                              AND e.recipient_id IS NULL) AS anonymous_unsubscribes
    FROM active a
    JOIN tracking_events e ON e.company_id = a.company_id AND e.campaign_id = a.campaign_id
    GROUP BY a.company_id, a.campaign_id
), unsubscribers AS (
    -- through the tracker's page or one-click POST, or by mail to the mailto: address
    SELECT company_id, campaign_id, count(DISTINCT recipient_id) AS unsubscribed
    FROM (SELECT a.company_id, a.campaign_id, e.recipient_id
          FROM active a
          JOIN tracking_events e
            ON e.company_id = a.company_id AND e.campaign_id = a.campaign_id
          WHERE e.kind = 'unsubscribe' AND e.recipient_id IS NOT NULL
          UNION
          SELECT a.company_id, a.campaign_id, b.recipient_id
          FROM active a
          JOIN bounce_events b ON b.campaign_id = a.campaign_id AND b.company_id = a.company_id
          WHERE b.kind = 'unsubscribed' AND b.recipient_id IS NOT NULL) x
    GROUP BY company_id, campaign_id
), counted AS (
    SELECT a.company_id, a.campaign_id,
           coalesce(q.delivered, 0) AS delivered, coalesce(b.bounced, 0) AS bounced,
           coalesce(t.opened, 0) AS opened, coalesce(t.clicked, 0) AS clicked,
           coalesce(u.unsubscribed, 0) + coalesce(t.anonymous_unsubscribes, 0) AS unsubscribed
    FROM active a
    LEFT JOIN queue q USING (company_id, campaign_id)
    LEFT JOIN bounced b USING (company_id, campaign_id)
    LEFT JOIN tracked t USING (company_id, campaign_id)
    LEFT JOIN unsubscribers u USING (company_id, campaign_id)
)
UPDATE email_campaigns c SET
    delivered_count = n.delivered, bounced_count = n.bounced, opened_count = n.opened,
    clicked_count = n.clicked, unsubscribed_count = n.unsubscribed
FROM counted n
WHERE c.company_id = n.company_id AND c.id = n.campaign_id
  AND (c.delivered_count, c.bounced_count, c.opened_count, c.clicked_count,
       c.unsubscribed_count)
      IS DISTINCT FROM (n.delivered::int, n.bounced::int, n.opened::int, n.clicked::int,
                        n.unsubscribed::int)
RETURNING c.id, c.company_id, c.campaign_code, c.campaign_name, c.campaign_status,
          c.total_recipients, c.delivered_count, c.bounced_count, c.opened_count,
          c.clicked_count, c.unsubscribed_count;
