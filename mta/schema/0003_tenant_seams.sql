-- Seams the other packages share with the mail path: per-tenant settings, the kind of mail a
-- message is (marketing mail honours unsubscriptions, transactional mail does not), and the
-- unsubscriptions themselves.

-- Per-tenant settings document. Each package reads the keys it owns and falls back to its
-- defaults when one is absent; the control API writes it. Documented in README.md.
ALTER TABLE companies ADD COLUMN settings jsonb NOT NULL DEFAULT '{}';

CREATE TYPE message_category AS ENUM ('transactional', 'marketing');

ALTER TABLE messages
    ADD COLUMN category message_category NOT NULL DEFAULT 'transactional',
    -- the control API's campaign and list; no foreign key: mta does not know those tables
    ADD COLUMN campaign_id bigint,
    ADD COLUMN list_id bigint;

-- People who asked to receive no more marketing mail from a company: from one list, or from all
-- of them (list_id 0). Transactional mail (receipts, password resets) still reaches them; the
-- suppressions table is what stops all mail.
CREATE TABLE unsubscriptions (
    company_id  bigint NOT NULL REFERENCES companies(id),
    address     text NOT NULL,                    -- lower-cased
    list_id     bigint NOT NULL DEFAULT 0,        -- 0: every list of the company
    source      text NOT NULL,                    -- one-click, page, mailto, complaint, api, import
    evidence    text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, address, list_id)
);
