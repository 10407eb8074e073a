-- A campaign's audience (control/audience.py): counts by exclusion, a sample, and the
-- company blocklist. Every query reads the SQL function campaign_audience
-- (control/schema/0010); `TRUE /* segment */` is where control/audience.py ANDs a segment's
-- condition over the audience row `a` (contact id a.contact_id).

-- name: audience-summary
-- Company $1, list $2, suppression list $3 (NULL: none), consent required $4: members by the
-- rule that excludes them (excluded_by NULL: mailed).
SELECT a.excluded_by, count(*) AS n
FROM campaign_audience($1, $2, $3, $4) a
WHERE TRUE /* segment */
GROUP BY a.excluded_by;

-- name: audience-sample
-- The first $5 mailed members (by contact id) of the same audience as audience-summary.
SELECT c.id, c.email, c.first_name, c.last_name
FROM campaign_audience($1, $2, $3, $4) a
JOIN contacts c ON c.id = a.contact_id
WHERE a.excluded_by IS NULL AND TRUE /* segment */
ORDER BY a.contact_id
LIMIT $5;

-- name: list-blocklist
-- Company $1's blocklist, newest first; $2 kind or NULL, $3 text in the entry or NULL,
-- $4 limit, $5 offset.
SELECT id, entry, kind, reason, created_by_user_id, created_at, count(*) OVER () AS total
FROM company_blocklist
WHERE company_id = $1 AND ($2::text IS NULL OR kind = $2)
  AND ($3::text IS NULL OR strpos(entry, lower($3)) > 0)
ORDER BY id DESC LIMIT $4 OFFSET $5;

-- name: insert-blocklist-entry
-- Adds entry $2 (lower-cased by the caller) of kind $3 with reason $4 for company $1 by user
-- $5; NULL when it is already there.
INSERT INTO company_blocklist (company_id, entry, kind, reason, created_by_user_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (company_id, entry) DO NOTHING
RETURNING id, entry, kind, reason, created_by_user_id, created_at;

-- name: delete-blocklist-entry
-- Removes entry $2 of company $1; the removed row, or nothing when there was none.
DELETE FROM company_blocklist WHERE id = $2 AND company_id = $1
RETURNING id, entry, kind, reason, created_by_user_id, created_at;
