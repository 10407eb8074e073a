-- name: campaign-counts
-- Opens, clicks and unsubscribes of campaign $2 of company $1: raw and human-only, totals and
-- unique recipients, one row per event kind.
SELECT kind::text, total, unique_recipients, human_total, human_unique_recipients,
       machine_total
FROM tracking_campaign_counts
WHERE company_id = $1 AND campaign_id = $2
ORDER BY kind;

-- name: recipient-counts
-- Event counts of recipient row $2 (company $1), one row per kind.
SELECT kind::text, total, human_total, first_at, last_at
FROM tracking_recipient_counts
WHERE company_id = $1 AND recipient_id = $2
ORDER BY kind;

-- name: company-settings
-- The tracking settings documents of companies $1 (ids): privacy and defaults, read by the
-- event writer (IP anonymisation) and submission preparation (defaults).
SELECT id, COALESCE(settings -> 'tracking', '{}'::jsonb) AS tracking
FROM companies WHERE id = ANY ($1::bigint[]);

-- name: recipient-address
-- The address of recipient row $1 if it belongs to company $2 (the unsubscribe and
-- preference pages name the address they act on).
SELECT recipient FROM recipients WHERE id = $1 AND company_id = $2;

-- name: recipient-message
-- The stored message of recipient row $1 if it belongs to company $2 ("view in browser").
SELECT m.body
FROM recipients r JOIN messages m ON m.id = r.message_id
WHERE r.id = $1 AND r.company_id = $2;
