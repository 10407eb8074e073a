-- The control API's data model: company profiles, users and their sessions, API keys, the
-- blueprint's marketing resources (templates, lists and contacts, sender profiles, campaigns,
-- workflows), CSV imports, erased addresses and the append-only audit log.
-- Companies themselves are mta's `companies` table. Every resource row carries company_id and
-- every query filters on it; composite foreign keys (company_id, id) make a cross-company
-- reference impossible in the database itself, not only in the code.

-- Company profiles --------------------------------------------------------------------------

-- What the control API keeps per company beyond `companies.settings` (the shared settings
-- document, which holds the approval and sending rules): campaign code generation and the
-- actions that need a TOTP-verified session. A company without a row uses the defaults.
CREATE TABLE company_profiles (
    company_id        bigint PRIMARY KEY REFERENCES companies(id),
    code_prefix       text NOT NULL DEFAULT 'EC',   -- generated campaign codes: EC-00001
    campaign_seq      bigint NOT NULL DEFAULT 0,    -- last number handed out
    mfa_required_for  text[] NOT NULL DEFAULT '{}', -- actions needing TOTP: send, approve
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Users and sessions ------------------------------------------------------------------------

CREATE TABLE users (
    id             bigserial PRIMARY KEY,
    company_id     bigint NOT NULL REFERENCES companies(id),
    email          text NOT NULL,                 -- login name, lower-cased
    full_name      text NOT NULL DEFAULT '',
    role           text NOT NULL,                 -- a role of control/permissions.toml
    password_hash  text NOT NULL,                 -- argon2id
    totp_secret    text,                          -- base32; NULL until TOTP set-up starts
    totp_enabled   boolean NOT NULL DEFAULT false,
    is_active      boolean NOT NULL DEFAULT true,
    is_deleted     boolean NOT NULL DEFAULT false,
    deleted_at     timestamptz,
    last_login_at  timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, id)
);
CREATE UNIQUE INDEX users_email ON users (email) WHERE NOT is_deleted;

-- A login session: one refresh-token family. Access tokens name their session, so revoking
-- the session (logout, refresh-token reuse) ends them at once.
CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES users(id),
    mfa             boolean NOT NULL DEFAULT false, -- TOTP verified at login
    ip              inet,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    revoked_reason  text
);
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- Refresh tokens, stored as SHA-256. Each is good once: using it issues the next one.
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES sessions(id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz                         -- set when rotated
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Failed logins per account and per client address, for throttling.
CREATE TABLE login_failures (
    key             text PRIMARY KEY,               -- "user:<email>" or "ip:<address>"
    failures        integer NOT NULL,
    window_started  timestamptz NOT NULL
);

-- API keys for applications: scoped to permissions, shown once, stored as SHA-256.
-- (mta's `credentials` are mail-submission logins; these act on the control API.)
CREATE TABLE api_keys (
    id                  bigserial PRIMARY KEY,
    company_id          bigint NOT NULL REFERENCES companies(id),
    created_by_user_id  bigint NOT NULL REFERENCES users(id),
    name                text NOT NULL,
    key_prefix          text NOT NULL UNIQUE,
    secret_hash         bytea NOT NULL,
    permissions         text[] NOT NULL,            -- "campaigns:read", ...
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_used_at        timestamptz,
    revoked_at          timestamptz
);
CREATE INDEX api_keys_company ON api_keys (company_id);

-- Sender profiles ---------------------------------------------------------------------------

CREATE TABLE sender_profiles (
    id                  bigserial PRIMARY KEY,
    company_id          bigint NOT NULL REFERENCES companies(id),
    profile_name        text NOT NULL,
    from_name           text NOT NULL DEFAULT '',
    from_address        text NOT NULL,              -- on one of the company's sending domains
    reply_to            text,                       -- NULL: replies go to from_address
    created_by_user_id  bigint,                     -- NULL when created by an API key or CLI
    updated_by_user_id  bigint,
    is_deleted          boolean NOT NULL DEFAULT false,
    deleted_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, id)
);

-- Templates ---------------------------------------------------------------------------------

CREATE TABLE email_templates (
    id                  bigserial PRIMARY KEY,
    company_id          bigint NOT NULL REFERENCES companies(id),
    created_by_user_id  bigint,                     -- NULL when created by an API key
    updated_by_user_id  bigint,
    template_name       varchar(100) NOT NULL,
    template_code       varchar(20) NOT NULL,
    description         text,
    template_type       text NOT NULL,
    category            text NOT NULL,
    html_content        text NOT NULL,
    text_content        text,
    css_styles          text,
    mjml_source         text,                       -- when set, html_content is compiled from it
    template_variables  jsonb NOT NULL DEFAULT '{}',
    is_active           boolean NOT NULL DEFAULT true,
    is_default          boolean NOT NULL DEFAULT false,
    usage_count         integer NOT NULL DEFAULT 0,
    is_deleted          boolean NOT NULL DEFAULT false,
    deleted_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, id)
);
CREATE UNIQUE INDEX email_templates_code ON email_templates (company_id, template_code)
    WHERE NOT is_deleted;
CREATE INDEX email_templates_list ON email_templates (company_id, id) WHERE NOT is_deleted;

-- Lists and contacts ------------------------------------------------------------------------

CREATE TABLE email_lists (
    id                  bigserial PRIMARY KEY,
    company_id          bigint NOT NULL REFERENCES companies(id),
    created_by_user_id  bigint,
    updated_by_user_id  bigint,
    list_name           varchar(100) NOT NULL,
    list_code           varchar(20) NOT NULL,
    description         text,
    list_type           text NOT NULL,
    source_type         text NOT NULL,
    segment_criteria    jsonb NOT NULL DEFAULT '{}',
    is_active           boolean NOT NULL DEFAULT true,
    is_public           boolean NOT NULL DEFAULT false,
    last_sync_date      timestamptz,
    is_deleted          boolean NOT NULL DEFAULT false,
    deleted_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, id)
);
CREATE UNIQUE INDEX email_lists_code ON email_lists (company_id, list_code) WHERE NOT is_deleted;

CREATE TYPE opt_in_state AS ENUM ('none', 'pending', 'confirmed');

-- A subscriber. The consent record (source, time, address, double opt-in) is what GDPR
-- Art. 7(1) asks a controller to be able to show.
CREATE TABLE contacts (
    id              bigserial PRIMARY KEY,
    company_id      bigint NOT NULL REFERENCES companies(id),
    email           text,                           -- lower-cased; NULL once erased
    first_name      text,
    last_name       text,
    attributes      jsonb NOT NULL DEFAULT '{}',
    consent_source  text NOT NULL DEFAULT 'api',   -- form, import, api, ...
    consent_at      timestamptz,
    consent_ip      inet,
    opt_in_state    opt_in_state NOT NULL DEFAULT 'none',
    confirmed_at    timestamptz,
    created_by_user_id  bigint,                 -- NULL when created by an API key or import
    updated_by_user_id  bigint,
    is_deleted      boolean NOT NULL DEFAULT false,
    deleted_at      timestamptz,
    erased_at       timestamptz,                    -- personal data removed (GDPR Art. 17)
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, id)
);
CREATE UNIQUE INDEX contacts_email ON contacts (company_id, email)
    WHERE NOT is_deleted AND email IS NOT NULL;
CREATE INDEX contacts_list ON contacts (company_id, id) WHERE NOT is_deleted;

CREATE TYPE membership_state AS ENUM ('subscribed', 'unsubscribed');

CREATE TABLE list_members (
    company_id       bigint NOT NULL,
    list_id          bigint NOT NULL,
    contact_id       bigint NOT NULL,
    state            membership_state NOT NULL DEFAULT 'subscribed',
    subscribed_at    timestamptz NOT NULL DEFAULT now(),
    unsubscribed_at  timestamptz,
    PRIMARY KEY (list_id, contact_id),
    FOREIGN KEY (company_id, list_id) REFERENCES email_lists (company_id, id),
    FOREIGN KEY (company_id, contact_id) REFERENCES contacts (company_id, id)
);
CREATE INDEX list_members_contact ON list_members (contact_id);

-- Addresses erased on request: only their SHA-256 is kept, so they are never mailed or
-- imported again without the address itself being stored.
CREATE TABLE erased_addresses (
    company_id    bigint NOT NULL REFERENCES companies(id),
    address_hash  bytea NOT NULL,
    erased_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, address_hash)
);

-- Campaigns ---------------------------------------------------------------------------------

CREATE TABLE email_campaigns (
    id                   bigserial PRIMARY KEY,
    company_id           bigint NOT NULL REFERENCES companies(id),
    campaign_id          bigint,                    -- parent marketing campaign (another system)
    created_by_user_id   bigint,                    -- NULL when created by an API key
    updated_by_user_id   bigint,
    approved_by_user_id  bigint,
    campaign_name        varchar(200) NOT NULL,
    campaign_code        varchar(50) NOT NULL,
    subject_line         varchar(200) NOT NULL,
    preheader_text       varchar(100),
    campaign_type        text NOT NULL,
    email_template_id    bigint NOT NULL,
    -- required to send, not to draft
    sender_profile_id    bigint,
    campaign_status      text NOT NULL DEFAULT 'draft',
    approval_status      text NOT NULL DEFAULT 'not_required',
    rejection_reason     text,
    scheduled_send_date  timestamptz,
    sent_date            timestamptz,
    target_list_id       bigint NOT NULL,
    segment_criteria     jsonb NOT NULL DEFAULT '{}',
    -- contacts of this list are excluded from the audience; NULL = none
    suppression_list_id  bigint,
    total_recipients     integer NOT NULL DEFAULT 0,
    delivered_count      integer NOT NULL DEFAULT 0,
    opened_count         integer NOT NULL DEFAULT 0,
    clicked_count        integer NOT NULL DEFAULT 0,
    bounced_count        integer NOT NULL DEFAULT 0,
    unsubscribed_count   integer NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    approved_at          timestamptz,
    is_deleted           boolean NOT NULL DEFAULT false,
    deleted_at           timestamptz,
    UNIQUE (company_id, id),
    FOREIGN KEY (company_id, email_template_id) REFERENCES email_templates (company_id, id),
    FOREIGN KEY (company_id, sender_profile_id) REFERENCES sender_profiles (company_id, id),
    FOREIGN KEY (company_id, target_list_id) REFERENCES email_lists (company_id, id),
    FOREIGN KEY (company_id, suppression_list_id) REFERENCES email_lists (company_id, id)
);
CREATE UNIQUE INDEX email_campaigns_code ON email_campaigns (company_id, campaign_code)
    WHERE NOT is_deleted;
CREATE INDEX email_campaigns_list ON email_campaigns (company_id, id) WHERE NOT is_deleted;
CREATE INDEX email_campaigns_status ON email_campaigns (company_id, campaign_status)
    WHERE NOT is_deleted;
CREATE INDEX email_campaigns_scheduled ON email_campaigns (scheduled_send_date)
    WHERE NOT is_deleted AND campaign_status = 'scheduled';
CREATE INDEX email_campaigns_template ON email_campaigns (email_template_id);

-- Workflows (definitions; the engine that runs them is another part) -----------------------

CREATE TABLE email_workflows (
    id                  bigserial PRIMARY KEY,
    company_id          bigint NOT NULL REFERENCES companies(id),
    created_by_user_id  bigint,
    updated_by_user_id  bigint,
    workflow_name       varchar(100) NOT NULL,
    workflow_code       varchar(20) NOT NULL,
    description         text,
    workflow_type       text NOT NULL,
    trigger_conditions  jsonb NOT NULL DEFAULT '{}',
    workflow_steps      jsonb NOT NULL DEFAULT '[]',
    trigger_timing      text NOT NULL,
    delay_settings      jsonb NOT NULL DEFAULT '{}',
    is_active           boolean NOT NULL DEFAULT true,
    is_default          boolean NOT NULL DEFAULT false,
    execution_count     integer NOT NULL DEFAULT 0,
    is_deleted          boolean NOT NULL DEFAULT false,
    deleted_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, id)
);
CREATE UNIQUE INDEX email_workflows_code ON email_workflows (company_id, workflow_code)
    WHERE NOT is_deleted;

-- The campaigns a workflow's steps send, kept in step with workflow_steps on every save, so
-- "is this campaign used by an active workflow" is an index lookup.
CREATE TABLE workflow_campaigns (
    company_id   bigint NOT NULL,
    workflow_id  bigint NOT NULL,
    campaign_id  bigint NOT NULL,
    PRIMARY KEY (workflow_id, campaign_id),
    FOREIGN KEY (company_id, workflow_id) REFERENCES email_workflows (company_id, id),
    FOREIGN KEY (company_id, campaign_id) REFERENCES email_campaigns (company_id, id)
);
CREATE INDEX workflow_campaigns_campaign ON workflow_campaigns (campaign_id);

-- CSV imports -------------------------------------------------------------------------------

CREATE TYPE import_state AS ENUM ('running', 'finished', 'failed');

CREATE TABLE contact_imports (
    id                  bigserial PRIMARY KEY,
    company_id          bigint NOT NULL REFERENCES companies(id),
    list_id             bigint NOT NULL,
    created_by_user_id  bigint,
    state               import_state NOT NULL DEFAULT 'running',
    bytes_total         bigint,                     -- Content-Length; NULL when chunked
    bytes_read          bigint NOT NULL DEFAULT 0,
    rows_seen           bigint NOT NULL DEFAULT 0,
    rows_imported       bigint NOT NULL DEFAULT 0,
    rows_failed         bigint NOT NULL DEFAULT 0,
    errors              jsonb NOT NULL DEFAULT '[]', -- the first rows refused, with reasons
    message             text,
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    FOREIGN KEY (company_id, list_id) REFERENCES email_lists (company_id, id)
);

-- Audit log ---------------------------------------------------------------------------------

-- Every write made through the API. Append-only: the triggers below refuse UPDATE, DELETE
-- and TRUNCATE, so not even the application's own database role can rewrite history.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    company_id   bigint NOT NULL,
    user_id      bigint,                            -- NULL when an API key acted
    api_key_id   bigint,                            -- NULL when a user acted
    action       text NOT NULL,                     -- "email_campaign.update", ...
    resource     text NOT NULL,
    resource_id  text,
    before       jsonb,
    after        jsonb,
    ip           inet,
    request_id   text NOT NULL
);
CREATE INDEX audit_log_company ON audit_log (company_id, id DESC);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
