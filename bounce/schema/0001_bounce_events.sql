-- The bounce processor's data: what became of each message received for the bounce domain,
-- the events (bounces, complaints, deferrals) for campaign and transactional analytics, and
-- the per-destination reputation signals.

CREATE TYPE bounce_event_kind AS ENUM ('bounced', 'deferred', 'complained', 'unsubscribed');

-- One row per failed (or delayed) recipient, complaint or mailto: unsubscribe, from any source.
CREATE TABLE bounce_events (
    id            bigserial PRIMARY KEY,
    -- NULL when the report could not be tied to one of our recipient rows
    company_id    bigint REFERENCES companies(id),
    recipient_id  bigint REFERENCES recipients(id) ON DELETE SET NULL,
    -- campaign of the message (messages.campaign_id); no foreign key: control owns campaigns
    campaign_id   bigint,
    address       text NOT NULL,                  -- lower-cased; '' when the report named none
    domain        text NOT NULL,                  -- of the address: per-destination signals
    kind          bounce_event_kind NOT NULL,
    reason        text NOT NULL,                  -- bounce/reasons.py vocabulary
    hard          boolean,                        -- NULL for complaints and auto-replies
    status        text NOT NULL DEFAULT '',       -- RFC 3463 code
    diagnostic    text NOT NULL DEFAULT '',       -- the reply or report text: the evidence
    remote_mta    text NOT NULL DEFAULT '',
    source        text NOT NULL,                  -- dsn, smtp, arf, mailto, webhook:<provider>
    -- the raw message this came from, when it came by mail
    inbound_id    bigint REFERENCES inbound_messages(id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- The soft-bounce count of the suppression policy: recent soft bounces of one address.
CREATE INDEX bounce_events_address ON bounce_events (company_id, address, created_at);
CREATE INDEX bounce_events_campaign ON bounce_events (campaign_id, kind) WHERE campaign_id IS NOT NULL;
CREATE INDEX bounce_events_recipient ON bounce_events (recipient_id);

-- What the processor made of each inbound message: unreadable ones are kept and listed here.
CREATE TABLE inbound_reports (
    inbound_id   bigint PRIMARY KEY REFERENCES inbound_messages(id) ON DELETE CASCADE,
    kind         text NOT NULL,                   -- bounce, complaint, vacation, unreadable...
    recipients   integer NOT NULL DEFAULT 0,      -- events recorded from it
    error        text NOT NULL DEFAULT '',
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- Reputation and policy refusals per destination domain and reason (blocked, badreputation,
-- spamdetected...): they never suppress a recipient, they tell the operator a site is unhappy.
CREATE TABLE bounce_signals (
    domain         text NOT NULL,
    reason         text NOT NULL,
    count          bigint NOT NULL DEFAULT 0,
    first_at       timestamptz NOT NULL DEFAULT now(),
    last_at        timestamptz NOT NULL DEFAULT now(),
    last_evidence  text NOT NULL DEFAULT '',
    PRIMARY KEY (domain, reason)
);
