-- Erased addresses (GDPR): kept as hashes so they are never mailed again.

-- name: suppress-erased-address
-- Company $1 must never mail address $2 again, which is about to be erased: its SHA-256 (of the
-- lower-cased address) goes on the hashed suppression list with reason $3. Idempotent.
INSERT INTO suppression_hashes (company_id, address_hash, reason)
VALUES ($1, sha256(convert_to(lower($2), 'UTF8')), $3)
ON CONFLICT (company_id, address_hash) DO NOTHING;

-- name: erased-address-suppressed
-- Whether address $2 is on company $1's hashed suppression list.
SELECT EXISTS (
    SELECT 1 FROM suppression_hashes
    WHERE company_id = $1 AND address_hash = sha256(convert_to(lower($2), 'UTF8')));
