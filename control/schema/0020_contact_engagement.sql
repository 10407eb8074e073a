-- Who engaged with what, per contact: the facts segments ask about ("opened campaign 7",
-- "clicked anything in the last 30 days", "never opened"), kept current from tracking_events
-- by control/engagement.py (issue 15). Reading 20 million events per segment preview cannot
-- answer in 500 ms; these rows can. Each row keeps the LAST time of each kind, people and
-- machines apart, so folding the same event in twice changes nothing (greatest() upserts):
-- the catch-up may re-read a margin of events safely.

-- Per contact and campaign: "opened / clicked campaign N".
CREATE TABLE contact_campaign_engagement (
    company_id           bigint NOT NULL,
    campaign_id          bigint NOT NULL,
    contact_id           bigint NOT NULL,
    last_open_at         timestamptz,               -- any open, machines' included (raw)
    last_human_open_at   timestamptz,               -- an open not flagged machine
    last_click_at        timestamptz,
    last_human_click_at  timestamptz,
    PRIMARY KEY (company_id, campaign_id, contact_id),
    FOREIGN KEY (company_id, contact_id) REFERENCES contacts (company_id, id)
);

-- Per contact over every campaign: "opened any campaign in the last N days", "never opened".
CREATE TABLE contact_engagement (
    company_id           bigint NOT NULL,
    contact_id           bigint NOT NULL,
    last_open_at         timestamptz,
    last_human_open_at   timestamptz,
    last_click_at        timestamptz,
    last_human_click_at  timestamptz,
    PRIMARY KEY (company_id, contact_id),
    FOREIGN KEY (company_id, contact_id) REFERENCES contacts (company_id, id)
);
-- Range lookups of "in the last N days", human figures first (what segments use by default).
CREATE INDEX contact_engagement_human_open ON contact_engagement (company_id, last_human_open_at)
    WHERE last_human_open_at IS NOT NULL;
CREATE INDEX contact_engagement_human_click
    ON contact_engagement (company_id, last_human_click_at)
    WHERE last_human_click_at IS NOT NULL;

-- How far the catch-up has read tracking_events (by id). One row.
CREATE TABLE engagement_progress (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_event_id  bigint NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO engagement_progress DEFAULT VALUES;

-- Segment conditions on custom attributes: equality is `attributes @> {"k": v}`, which this
-- index answers without reading every contact.
CREATE INDEX contacts_attributes ON contacts USING gin (attributes jsonb_path_ops)
    WHERE NOT is_deleted;
