-- CSV contact imports (progress, set-wise insert of a batch) and list exports.

-- name: start-import
-- A running import into list $2 of company $1 by user $3 of a body of $4 bytes (NULL: unknown).
INSERT INTO contact_imports (company_id, list_id, created_by_user_id, bytes_total)
VALUES ($1, $2, $3, $4)
RETURNING *;

-- name: import-progress
-- Progress of import $1: bytes and rows so far; the first refused rows appended to `errors`
-- (up to 1000 kept).
UPDATE contact_imports SET
    bytes_read = $2, rows_seen = $3, rows_imported = rows_imported + $4, rows_failed = $5,
    errors = CASE WHEN jsonb_array_length(errors) >= 1000 THEN errors
                  ELSE errors || $6::jsonb END
WHERE id = $1;

-- name: finish-import
-- Import $1 ends in state $2 with message $3.
UPDATE contact_imports SET state = $2::import_state, message = $3, finished_at = now()
WHERE id = $1 RETURNING *;

-- name: get-import
SELECT * FROM contact_imports WHERE id = $1 AND company_id = $2;

-- name: list-imports
-- Imports into list $2 of company $1, newest first; $3 limit, $4 offset.
SELECT *, count(*) OVER () AS total FROM contact_imports
WHERE company_id = $1 AND list_id = $2 ORDER BY id DESC LIMIT $3 OFFSET $4;

-- name: erased-among
-- Which addresses of $2 (text[]) were erased from company $1.
SELECT e FROM unnest($2::text[]) AS e
WHERE EXISTS (SELECT 1 FROM erased_addresses x
              WHERE x.company_id = $1 AND x.address_hash = sha256(convert_to(e, 'UTF8')));

-- name: import-contacts
-- One batch of an import into list $2 of company $1: contacts upserted by address (names and
-- consent filled in where the file has them, attributes merged), then subscribed to the list.
-- A member who had left the list stays unsubscribed: an import is not a new opt-in.
-- Arrays: $3 addresses, $4 first names, $5 last names, $6 attributes, $7 consent sources,
-- $8 consent times, $9 consent IPs, $10 opt-in states. Returns the contacts subscribed now.
WITH input AS (
    SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::jsonb[], $7::text[],
                         $8::timestamptz[], $9::inet[], $10::opt_in_state[])
        AS t(email, first_name, last_name, attributes, consent_source, consent_at, consent_ip,
             opt_in_state)
), up AS (
    INSERT INTO contacts AS c
        (company_id, email, first_name, last_name, attributes, consent_source, consent_at,
         consent_ip, opt_in_state, confirmed_at)
    SELECT $1, i.email, nullif(i.first_name, ''), nullif(i.last_name, ''), i.attributes,
           i.consent_source, coalesce(i.consent_at, now()), i.consent_ip, i.opt_in_state,
           CASE WHEN i.opt_in_state = 'confirmed' THEN coalesce(i.consent_at, now()) END
    FROM input i
    ON CONFLICT (company_id, email) WHERE NOT is_deleted AND email IS NOT NULL DO UPDATE SET
        first_name = coalesce(EXCLUDED.first_name, c.first_name),
        last_name = coalesce(EXCLUDED.last_name, c.last_name),
        attributes = c.attributes || EXCLUDED.attributes,
        updated_at = now()
    RETURNING c.id
)
INSERT INTO list_members (company_id, list_id, contact_id)
SELECT $1, $2, id FROM up
ON CONFLICT (list_id, contact_id) DO NOTHING
RETURNING contact_id;

-- name: export-list
-- Every live member of list $2 of company $1 with the effective state, for CSV export.
SELECT c.email, c.first_name, c.last_name, c.consent_source, c.consent_at, c.consent_ip,
       c.opt_in_state::text AS opt_in_state,
       CASE WHEN m.state = 'subscribed' AND NOT EXISTS (
                SELECT 1 FROM unsubscriptions u WHERE u.company_id = m.company_id
                  AND u.address = c.email AND u.list_id IN (0, m.list_id))
            THEN 'subscribed' ELSE 'unsubscribed' END AS state,
       m.subscribed_at, c.attributes
FROM list_members m JOIN contacts c ON c.id = m.contact_id
WHERE m.list_id = $2 AND m.company_id = $1 AND NOT c.is_deleted AND c.email IS NOT NULL
ORDER BY c.id;
