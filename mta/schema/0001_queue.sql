-- The mail path's data model: tenants, their credentials and sending domains, the queue
-- (messages stored once, one row per envelope recipient), delivery attempts, suppressions.

-- Tenants -----------------------------------------------------------------------------------

CREATE TABLE companies (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sending_domains (
    id          bigserial PRIMARY KEY,
    company_id  bigint NOT NULL REFERENCES companies(id),
    domain      text NOT NULL UNIQUE,            -- a From domain belongs to one company
    pool        text NOT NULL DEFAULT 'default', -- source-address pool used to deliver its mail
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TYPE credential_kind AS ENUM ('smtp', 'api');

-- An SMTP login or an HTTP API key. Secrets are random 256-bit values, stored as SHA-256.
CREATE TABLE credentials (
    id           bigserial PRIMARY KEY,
    company_id   bigint NOT NULL REFERENCES companies(id),
    kind         credential_kind NOT NULL,
    username     text UNIQUE,                    -- SMTP login name; NULL for API keys
    key_prefix   text UNIQUE,                    -- API key id shown to operators; NULL for SMTP
    secret_hash  bytea NOT NULL,
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

-- The queue ---------------------------------------------------------------------------------

CREATE TYPE recipient_state AS ENUM
    ('queued', 'deferred', 'sending', 'delivered', 'bounced', 'expired', 'suppressed', 'held');

-- A message body, stored once however many recipients it has.
CREATE TABLE messages (
    id            bigserial PRIMARY KEY,
    company_id    bigint NOT NULL REFERENCES companies(id),
    -- NULL when submitted by the CLI or an internal producer rather than a credential
    credential_id bigint REFERENCES credentials(id),
    mail_from     text NOT NULL,                 -- envelope sender as submitted
    from_domain   text NOT NULL,                 -- sending domain: DKIM signer and pool
    message_id    text,                          -- the Message-ID header
    body          bytea NOT NULL,
    size          integer NOT NULL,
    smtputf8      boolean NOT NULL DEFAULT false,
    eight_bit     boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE recipients (
    id               bigserial PRIMARY KEY,
    message_id       bigint NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    company_id       bigint NOT NULL REFERENCES companies(id),
    recipient        text NOT NULL,
    domain           text NOT NULL,              -- lower-cased recipient domain
    -- 0 = transactional, 1 = bulk: transactional mail is claimed first
    priority         smallint NOT NULL DEFAULT 0,
    state            recipient_state NOT NULL DEFAULT 'queued',
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    -- set while a daemon holds the row in 'sending'; past it, any daemon may retake the row
    lease_until      timestamptz,
    leased_by        text,
    last_reply       text,
    last_mx          text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
-- The claim path: due rows per company in priority order.
CREATE INDEX recipients_due ON recipients (company_id, priority, next_attempt_at)
    WHERE state IN ('queued', 'deferred');
CREATE INDEX recipients_leased ON recipients (lease_until) WHERE state = 'sending';
CREATE INDEX recipients_message ON recipients (message_id);
CREATE INDEX recipients_domain_state ON recipients (domain, state);

-- Every delivery attempt, successful or not.
CREATE TABLE attempts (
    id            bigserial PRIMARY KEY,
    recipient_id  bigint NOT NULL REFERENCES recipients(id) ON DELETE CASCADE,
    at            timestamptz NOT NULL DEFAULT now(),
    mx            text,                           -- host:port tried; NULL when none was reached
    code          integer,                        -- SMTP reply code; NULL on connection failure
    reply         text NOT NULL,
    outcome       recipient_state NOT NULL,       -- delivered, deferred, bounced, expired...
    duration_ms   integer NOT NULL DEFAULT 0,
    node          text
);
CREATE INDEX attempts_recipient ON attempts (recipient_id);

-- Suppressions: addresses a company must never send to again.
CREATE TABLE suppressions (
    company_id  bigint NOT NULL REFERENCES companies(id),
    address     text NOT NULL,                    -- lower-cased
    reason      text NOT NULL,
    evidence    text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, address)
);

-- Mail received for the bounce domain (DSNs, complaints), kept raw until the bounce processor
-- has read it, so nothing accepted is lost even when it cannot be parsed.
CREATE TABLE inbound_messages (
    id             bigserial PRIMARY KEY,
    -- the recipient row named by the VERP token; NULL when the token was missing or forged
    recipient_id   bigint REFERENCES recipients(id) ON DELETE SET NULL,
    envelope_from  text NOT NULL,
    envelope_to    text NOT NULL,
    body           bytea NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    processed_at   timestamptz
);
CREATE INDEX inbound_messages_unprocessed ON inbound_messages (id) WHERE processed_at IS NULL;
