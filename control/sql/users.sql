-- Users of a company as the users API manages them (roles, passwords, admins).

-- name: list-user
-- Company $1's users filtered by $2 role, $3 is_active, $4 text in email/name; $5 limit,
-- $6 offset.
SELECT *, count(*) OVER () AS total FROM users
WHERE company_id = $1 AND NOT is_deleted
  AND ($2::text IS NULL OR role = $2)
  AND ($3::boolean IS NULL OR is_active = $3)
  AND ($4::text IS NULL OR strpos(email, lower($4)) > 0
       OR strpos(lower(full_name), lower($4)) > 0)
ORDER BY id LIMIT $5 OFFSET $6;

-- name: get-user
SELECT * FROM users WHERE id = $1 AND company_id = $2 AND NOT is_deleted;

-- name: lock-user
SELECT * FROM users WHERE id = $1 AND company_id = $2 AND NOT is_deleted FOR UPDATE;

-- name: insert-user-record
-- Creates a user of company $1 from jsonb $2 with password hash $3.
INSERT INTO users (company_id, email, full_name, role, password_hash, is_active)
SELECT $1, lower(r.email), coalesce(r.full_name, ''), r.role, $3, coalesce(r.is_active, true)
FROM jsonb_populate_record(NULL::users, $2::jsonb) r
RETURNING *;

-- name: update-user
UPDATE users t SET (full_name, role, is_active, updated_at) =
    (SELECT r.full_name, r.role, r.is_active, now() FROM jsonb_populate_record(t, $3::jsonb) r)
WHERE t.id = $1 AND t.company_id = $2 AND NOT t.is_deleted
RETURNING t.*;

-- name: set-password
UPDATE users SET password_hash = $3, updated_at = now()
WHERE id = $1 AND company_id = $2 AND NOT is_deleted;

-- name: delete-user
UPDATE users SET is_deleted = true, deleted_at = now(), is_active = false, updated_at = now()
WHERE id = $1 AND company_id = $2 AND NOT is_deleted RETURNING *;

-- name: count-admins
-- Live, active admins of company $1 other than user $2.
SELECT count(*) FROM users
WHERE company_id = $1 AND role = 'admin' AND is_active AND NOT is_deleted AND id <> $2;
