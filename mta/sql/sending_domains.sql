-- Sending domains managed at run time and their DKIM keys (mta/sending_domains.py): who may
-- send From what, the keys to sign with, and the state of each DNS check and rotation.

-- name: company-may-send-from
-- Whether company $1 may send From domain $2: a domain of the config always; one added at run
-- time once a DKIM key of it is active (verified in DNS), or at once when $3 is false (the
-- operator relaxed the rule for development).
SELECT EXISTS (
    SELECT 1 FROM sending_domains d
    WHERE d.company_id = $1 AND d.domain = lower($2)
      AND (d.origin = 'config' OR NOT $3
           OR EXISTS (SELECT 1 FROM dkim_keys k WHERE k.domain_id = d.id AND k.state = 'active'))
);

-- name: company-sendable-domains
-- The domains company $1 may send from ($2: verification required), alphabetically.
SELECT d.domain FROM sending_domains d
WHERE d.company_id = $1
  AND (d.origin = 'config' OR NOT $2
       OR EXISTS (SELECT 1 FROM dkim_keys k WHERE k.domain_id = d.id AND k.state = 'active'))
ORDER BY d.domain;

-- name: insert-managed-domain
-- Adds domain $2 for company $1, delivered from pool $3; nothing when the domain is taken.
INSERT INTO sending_domains (company_id, domain, pool, origin) VALUES ($1, lower($2), $3, 'api')
ON CONFLICT (domain) DO NOTHING
RETURNING id;

-- name: insert-dkim-key
-- $1 domain id, $2 selector, $3 algorithm, $4 TXT value, $5 sealed private key.
INSERT INTO dkim_keys (domain_id, selector, algorithm, public_record, sealed_key)
VALUES ($1, $2, $3, $4, $5)
RETURNING id;

-- name: list-domains
-- Sending domains of company $1 (NULL: every company, for the operator), by name.
SELECT d.id, d.domain, d.company_id, c.name AS company, d.pool, d.origin::text, d.verified_at,
       d.checked_at, d.last_check, d.created_at
FROM sending_domains d JOIN companies c ON c.id = d.company_id
WHERE $1::bigint IS NULL OR d.company_id = $1
ORDER BY d.domain;

-- name: get-domain
-- Sending domain $2 of company $1 (NULL: any company); FOR UPDATE: verification, rotation and
-- deletion of one domain take turns.
SELECT d.id, d.domain, d.company_id, c.name AS company, d.pool, d.origin::text, d.verified_at,
       d.checked_at, d.last_check, d.created_at
FROM sending_domains d JOIN companies c ON c.id = d.company_id
WHERE d.domain = lower($2) AND ($1::bigint IS NULL OR d.company_id = $1)
FOR UPDATE OF d;

-- name: get-domain-by-id
-- Sending domain with id $2 of company $1 (NULL: any company), locked like get-domain.
SELECT d.id, d.domain, d.company_id, c.name AS company, d.pool, d.origin::text, d.verified_at,
       d.checked_at, d.last_check, d.created_at
FROM sending_domains d JOIN companies c ON c.id = d.company_id
WHERE d.id = $2 AND ($1::bigint IS NULL OR d.company_id = $1)
FOR UPDATE OF d;

-- name: domain-keys
-- The keys of domain $1 still published (not retired), oldest first.
SELECT id, selector, algorithm, public_record, state::text, created_at, activated_at, retire_at
FROM dkim_keys WHERE domain_id = $1 AND state <> 'retired'
ORDER BY created_at, id;

-- name: retire-active-keys
-- A rotation's new keys verified: the active keys of domain $1 stay published until $2.
UPDATE dkim_keys SET state = 'retiring', retire_at = $2, changed_at = clock_timestamp()
WHERE domain_id = $1 AND state = 'active';

-- name: activate-pending-keys
-- The pending keys of domain $1 verified in DNS: they sign from now on.
UPDATE dkim_keys SET state = 'active', activated_at = now(), changed_at = clock_timestamp()
WHERE domain_id = $1 AND state = 'pending';

-- name: drop-pending-keys
-- A new rotation replaces the keys of domain $1 that were never published and verified.
DELETE FROM dkim_keys WHERE domain_id = $1 AND state = 'pending';

-- name: finish-retirements
-- Keys past their overlap are retired and their private half erased. Returns their selectors.
UPDATE dkim_keys SET state = 'retired', sealed_key = NULL, changed_at = clock_timestamp()
WHERE state = 'retiring' AND retire_at <= now()
RETURNING domain_id, selector;

-- name: record-domain-check
-- Stores the DNS check of domain $1 (findings $2); $3 true: its DKIM has verified.
UPDATE sending_domains
SET checked_at = now(), last_check = $2,
    verified_at = CASE WHEN $3 THEN coalesce(verified_at, now()) ELSE verified_at END
WHERE id = $1;

-- name: delete-domain
-- Removes sending domain $1 and its keys; mail already queued from it is still delivered.
DELETE FROM sending_domains WHERE id = $1;

-- name: domains-due-for-check
-- API-managed domains not checked within $1 seconds, least recently checked first, at most $2.
SELECT domain FROM sending_domains
WHERE origin = 'api' AND (checked_at IS NULL OR checked_at < now() - make_interval(secs => $1))
ORDER BY checked_at NULLS FIRST
LIMIT $2;

-- name: managed-keys-version
-- Moves whenever a key is added, changes state or is deleted: daemons poll it to reload.
SELECT count(*) AS n, max(changed_at) AS newest FROM dkim_keys;

-- name: managed-signing-keys
-- The keys daemons sign with: every active key; with $1 (verification not required), also a
-- domain's pending keys while it has no active one.
SELECT d.domain, k.selector, k.algorithm, k.sealed_key
FROM dkim_keys k JOIN sending_domains d ON d.id = k.domain_id
WHERE k.state = 'active'
   OR ($1 AND k.state = 'pending' AND NOT EXISTS (
        SELECT 1 FROM dkim_keys a WHERE a.domain_id = k.domain_id AND a.state = 'active'));
