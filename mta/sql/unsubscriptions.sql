-- Unsubscribes per list or from all lists, as the tracker and bounce processor record them.

-- name: unsubscribe
-- Records that $2 (lower-cased) wants no more marketing mail from company $1 on list $3
-- (0 = all lists). Idempotent: the first record and its evidence are kept.
INSERT INTO unsubscriptions (company_id, address, list_id, source, evidence)
VALUES ($1, lower($2), $3, $4, $5)
ON CONFLICT (company_id, address, list_id) DO NOTHING
RETURNING created_at;

-- name: resubscribe
-- Lifts the unsubscription of $2 from list $3 of company $1 (the person opted in again).
DELETE FROM unsubscriptions
WHERE company_id = $1 AND address = lower($2) AND list_id = $3
RETURNING address;

-- name: unsubscribed-lists
-- The lists (0 = all) address $2 has left at company $1.
SELECT list_id, source, evidence, created_at FROM unsubscriptions
WHERE company_id = $1 AND address = lower($2)
ORDER BY list_id;
