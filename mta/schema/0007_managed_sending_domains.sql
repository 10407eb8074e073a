-- Sending domains managed at run time through the control API and the CLI (issue 14), beside
-- the ones the config lists. Their DKIM keys live here, sealed with the server secret
-- (mta/domain_keys.py), so every daemon on the database signs with them without a restart.

CREATE TYPE sending_domain_origin AS ENUM ('config', 'api');

ALTER TABLE sending_domains
    -- config: written at start from the TOML (authoritative, sends at once); api: added by a
    -- tenant or the operator, sends once its DKIM record has been found correct in DNS
    ADD COLUMN origin       sending_domain_origin NOT NULL DEFAULT 'config',
    ADD COLUMN verified_at  timestamptz,          -- NULL: no DKIM record of it verified yet
    ADD COLUMN checked_at   timestamptz,          -- NULL: never checked in DNS
    ADD COLUMN last_check   jsonb;                -- that check's findings, per record

-- pending: generated, waiting for its record to be published and verified; active: signs;
-- retiring: replaced by a rotation, still published for the overlap (mail signed with it is
-- still in flight or in mailboxes being re-checked); retired: the private key is erased.
CREATE TYPE dkim_key_state AS ENUM ('pending', 'active', 'retiring', 'retired');

CREATE TABLE dkim_keys (
    id             bigserial PRIMARY KEY,
    domain_id      bigint NOT NULL REFERENCES sending_domains(id) ON DELETE CASCADE,
    selector       text NOT NULL,
    algorithm      text NOT NULL CHECK (algorithm IN ('rsa-sha256', 'ed25519-sha256')),
    public_record  text NOT NULL,                -- the TXT value: v=DKIM1; k=...; p=...
    sealed_key     bytea,                        -- AES-GCM sealed PEM; NULL once retired
    state          dkim_key_state NOT NULL DEFAULT 'pending',
    created_at     timestamptz NOT NULL DEFAULT now(),
    activated_at   timestamptz,
    retire_at      timestamptz,                  -- set when it starts retiring
    -- moved on every change: daemons reload their signers when the newest one moves
    changed_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (domain_id, selector)
);
CREATE INDEX dkim_keys_live ON dkim_keys (domain_id) WHERE state IN ('pending', 'active');
