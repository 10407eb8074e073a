-- Company profiles: settings, MFA requirements and campaign code numbering.

-- name: mfa-required-for
-- The actions company $1 requires a TOTP-verified session for.
SELECT mfa_required_for FROM company_profiles WHERE company_id = $1;

-- name: get-profile
-- Company $1's profile; defaults when it has no row yet.
SELECT c.id AS company_id, c.name AS company_name,
       coalesce(p.code_prefix, 'EC') AS code_prefix,
       coalesce(p.mfa_required_for, '{}') AS mfa_required_for
FROM companies c LEFT JOIN company_profiles p ON p.company_id = c.id
WHERE c.id = $1;

-- name: ensure-profile
INSERT INTO company_profiles (company_id) VALUES ($1) ON CONFLICT DO NOTHING;

-- name: update-profile
-- Writes the fields of jsonb $2 into company $1's profile (run ensure-profile first).
UPDATE company_profiles p SET
    (code_prefix, mfa_required_for, updated_at) =
    (SELECT r.code_prefix, r.mfa_required_for, now() FROM jsonb_populate_record(p, $2::jsonb) r)
WHERE company_id = $1;

-- name: next-campaign-code
-- Hands out company $1's next campaign number with its prefix. The number comes from the
-- company's sequence (control/schema/0005): concurrent creates do not wait for one another.
SELECT coalesce((SELECT code_prefix FROM company_profiles WHERE company_id = $1), 'EC')
           AS code_prefix,
       next_campaign_number($1) AS campaign_seq;

-- name: company-settings
-- Company $1's shared settings document (`companies.settings`; {} when absent).
SELECT settings FROM companies WHERE id = $1;

-- name: merge-company-settings
-- Replaces the top-level sections given in jsonb $2 of company $1's settings document.
UPDATE companies SET settings = settings || $2::jsonb WHERE id = $1;
