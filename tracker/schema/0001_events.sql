-- Tracking events: every open, click and unsubscribe, append-only. Campaign and recipient
-- counters derive from this table (see tracker/sql/events.sql); rows are never updated.

CREATE TYPE tracking_event_kind AS ENUM ('open', 'click', 'unsubscribe');

CREATE TABLE tracking_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            tracking_event_kind NOT NULL,
    at              timestamptz NOT NULL,           -- when the request arrived (not written)
    company_id      bigint NOT NULL,
    -- recipients.id of the message; NULL when the tenant tracks in aggregate only. No FK: the
    -- queue may purge old recipient rows, and events must outlive them (and COPY needs no check).
    recipient_id    bigint,
    -- control's campaign and list ids; NULL for mail outside a campaign / list (no FK: mta and
    -- tracker do not know control's tables)
    campaign_id     bigint,
    list_id         bigint,
    link_index      integer,                        -- clicks: position of the link in the HTML
    url             text,                           -- clicks: the target redirected to
    user_agent      text NOT NULL DEFAULT '',
    ip              inet,                           -- anonymised per tenant; NULL in aggregate mode
    machine         boolean NOT NULL DEFAULT false, -- a proxy, prefetcher or scanner, not a person
    machine_reason  text,                           -- the rule that matched (machine_rules.toml)
    sent_at         timestamptz                     -- when the message was prepared for delivery
);
CREATE INDEX tracking_events_campaign ON tracking_events (company_id, campaign_id, kind)
    WHERE campaign_id IS NOT NULL;
CREATE INDEX tracking_events_recipient ON tracking_events (recipient_id)
    WHERE recipient_id IS NOT NULL;
-- BRIN: rows arrive in time order, and a B-tree per row would slow the batch writes down
CREATE INDEX tracking_events_at ON tracking_events USING brin (at);

-- Per campaign: raw totals, unique recipients, and the human-only figures side by side.
CREATE VIEW tracking_campaign_counts AS
SELECT company_id, campaign_id, kind,
       count(*)                                                  AS total,
       count(DISTINCT recipient_id)                              AS unique_recipients,
       count(*) FILTER (WHERE NOT machine)                       AS human_total,
       count(DISTINCT recipient_id) FILTER (WHERE NOT machine)   AS human_unique_recipients,
       count(*) FILTER (WHERE machine)                           AS machine_total
FROM tracking_events
WHERE campaign_id IS NOT NULL
GROUP BY company_id, campaign_id, kind;

-- Per recipient row: totals and human-only totals by kind.
CREATE VIEW tracking_recipient_counts AS
SELECT company_id, recipient_id, kind,
       count(*)                            AS total,
       count(*) FILTER (WHERE NOT machine) AS human_total,
       min(at)                             AS first_at,
       max(at)                             AS last_at
FROM tracking_events
WHERE recipient_id IS NOT NULL
GROUP BY company_id, recipient_id, kind;
