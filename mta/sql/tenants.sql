-- Tenants: companies, their sending domains and their SMTP/API credentials.

-- name: ensure-company
-- Returns the id of company $1, creating it when missing.
WITH ins AS (
    INSERT INTO companies (name) VALUES ($1)
    ON CONFLICT (name) DO NOTHING
    RETURNING id
)
SELECT id FROM ins UNION ALL SELECT id FROM companies WHERE name = $1
LIMIT 1;

-- name: company-by-name
SELECT id, name FROM companies WHERE name = $1;

-- name: upsert-sending-domain
-- Declares domain $2 as company $1's, delivered from pool $3. The config is authoritative for
-- the domains it lists, so a domain moved to another company in the config moves here too.
INSERT INTO sending_domains (company_id, domain, pool) VALUES ($1, lower($2), $3)
ON CONFLICT (domain) DO UPDATE
SET company_id = EXCLUDED.company_id, pool = EXCLUDED.pool, origin = 'config'
RETURNING id;

-- name: company-of-domain
-- The company that owns sending domain $1, if any.
SELECT company_id FROM sending_domains WHERE domain = lower($1);

-- name: insert-credential
-- $1 company, $2 kind, $3 username (smtp) or NULL, $4 key prefix (api) or NULL,
-- $5 secret hash, $6 description
INSERT INTO credentials (company_id, kind, username, key_prefix, secret_hash, description)
VALUES ($1, $2::credential_kind, $3, $4, $5, $6)
RETURNING id;

-- name: smtp-credential
-- The live SMTP credential for login $1.
SELECT id, company_id, secret_hash FROM credentials
WHERE kind = 'smtp' AND username = $1 AND revoked_at IS NULL;

-- name: api-credential
-- The live API key with prefix $1.
SELECT id, company_id, secret_hash FROM credentials
WHERE kind = 'api' AND key_prefix = $1 AND revoked_at IS NULL;

-- name: revoke-credential
UPDATE credentials SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id;

-- name: list-credentials
SELECT c.id, co.name AS company, c.kind::text, c.username, c.key_prefix, c.description,
       c.created_at, c.revoked_at
FROM credentials c JOIN companies co ON co.id = c.company_id
ORDER BY c.id;
