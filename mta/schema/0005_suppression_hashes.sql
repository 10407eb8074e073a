-- Addresses a company must never mail again but may not keep in clear: people who asked to be
-- erased (GDPR Art. 17). Only the SHA-256 of the lower-cased address (UTF-8) is stored; the
-- queue checks it like the suppression list, for every kind of mail.
CREATE TABLE suppression_hashes (
    company_id    bigint NOT NULL REFERENCES companies(id),
    address_hash  bytea NOT NULL,
    reason        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, address_hash)
);
