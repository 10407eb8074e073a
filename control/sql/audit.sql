-- The audit log: one row per change made through the control API.

-- name: insert-audit
-- One audit row: $1 company, $2 user, $3 API key, $4 action, $5 resource, $6 resource id,
-- $7 before, $8 after, $9 client address, $10 request id.
INSERT INTO audit_log
    (company_id, user_id, api_key_id, action, resource, resource_id, before, after, ip,
     request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::inet, $10);

-- name: list-audit
-- Company $1's audit rows, newest first, filtered by $2 resource, $3 resource id,
-- $4 user, $5 action, $6 since; $7 limit, $8 offset. `total` counts every match.
SELECT id, at, user_id, api_key_id, action, resource, resource_id, before, after, ip,
       request_id, count(*) OVER () AS total
FROM audit_log
WHERE company_id = $1
  AND ($2::text IS NULL OR resource = $2)
  AND ($3::text IS NULL OR resource_id = $3)
  AND ($4::bigint IS NULL OR user_id = $4)
  AND ($5::text IS NULL OR action = $5)
  AND ($6::timestamptz IS NULL OR at >= $6)
ORDER BY id DESC
LIMIT $7 OFFSET $8;
