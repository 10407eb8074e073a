-- What the delivery processes read to render campaign mail: the frozen version and the
-- contacts of a batch (control/campaign_delivery.py).

-- name: campaign-version-for-delivery
-- Version $1 of company $2, with the company's tracking settings (the tracker's decision).
SELECT v.*, coalesce(co.settings -> 'tracking', '{}'::jsonb) AS tracking
FROM campaign_versions v
JOIN companies co ON co.id = v.company_id
WHERE v.id = $1 AND v.company_id = $2;

-- name: campaign-contacts
-- Contacts $2 (ids) of company $1, for personalisation; deleted ones are absent.
SELECT id, email, first_name, last_name, attributes
FROM contacts
WHERE company_id = $1 AND id = ANY ($2::bigint[]) AND NOT is_deleted;
