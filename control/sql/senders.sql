-- Sender profiles (from/reply-to identities); whether their domain may send is mta's answer
-- (mta/sending_domains.may_send_from).

-- name: list-sender
-- Company $1's sender profiles, $2 text in name/address; $3 limit, $4 offset.
SELECT *, count(*) OVER () AS total FROM sender_profiles
WHERE company_id = $1 AND NOT is_deleted
  AND ($2::text IS NULL OR strpos(lower(profile_name), lower($2)) > 0
       OR strpos(from_address, lower($2)) > 0)
ORDER BY id DESC LIMIT $3 OFFSET $4;

-- name: get-sender
SELECT * FROM sender_profiles WHERE id = $1 AND company_id = $2 AND NOT is_deleted;

-- name: lock-sender
SELECT * FROM sender_profiles WHERE id = $1 AND company_id = $2 AND NOT is_deleted FOR UPDATE;

-- name: insert-sender
INSERT INTO sender_profiles
    (company_id, created_by_user_id, profile_name, from_name, from_address, reply_to)
SELECT $1, $2::bigint, r.profile_name, coalesce(r.from_name, ''), r.from_address, r.reply_to
FROM jsonb_populate_record(NULL::sender_profiles, $3::jsonb) r
RETURNING *;

-- name: update-sender
UPDATE sender_profiles t SET
    (profile_name, from_name, from_address, reply_to, updated_by_user_id, updated_at) =
    (SELECT r.profile_name, r.from_name, r.from_address, r.reply_to, $3::bigint, now()
     FROM jsonb_populate_record(t, $4::jsonb) r)
WHERE t.id = $1 AND t.company_id = $2 AND NOT t.is_deleted
RETURNING t.*;

-- name: delete-sender
UPDATE sender_profiles SET is_deleted = true, deleted_at = now(), updated_at = now()
WHERE id = $1 AND company_id = $2 AND NOT is_deleted RETURNING *;

-- name: campaigns-using-sender
SELECT id, campaign_code FROM email_campaigns
WHERE sender_profile_id = $1 AND company_id = $2 AND NOT is_deleted
  AND campaign_status IN ('draft', 'scheduled', 'sending', 'paused')
ORDER BY id LIMIT 20;
