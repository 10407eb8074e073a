-- Email lists: CRUD and the campaigns that target a list.

-- name: list-list
-- Company $1's lists filtered by $2 is_active, $3 list_type, $4 text in name/code; $5 limit,
-- $6 offset. Subscriber counts: list_subscriber_counts (control/schema).
SELECT l.*, s.total_subscribers, s.active_subscribers, s.unsubscribed_count,
       count(*) OVER () AS total
FROM email_lists l
CROSS JOIN LATERAL list_subscriber_counts(l.id) s
WHERE l.company_id = $1 AND NOT l.is_deleted
  AND ($2::boolean IS NULL OR l.is_active = $2)
  AND ($3::text IS NULL OR l.list_type = $3)
  AND ($4::text IS NULL OR strpos(lower(l.list_name), lower($4)) > 0
       OR strpos(lower(l.list_code), lower($4)) > 0)
ORDER BY l.id DESC LIMIT $5 OFFSET $6;

-- name: get-list
SELECT l.*, s.total_subscribers, s.active_subscribers, s.unsubscribed_count
FROM email_lists l
CROSS JOIN LATERAL list_subscriber_counts(l.id) s
WHERE l.id = $1 AND l.company_id = $2 AND NOT l.is_deleted;

-- name: lock-list
SELECT l.*, 0::bigint AS total_subscribers, 0::bigint AS active_subscribers,
       0::bigint AS unsubscribed_count
FROM email_lists l WHERE id = $1 AND company_id = $2 AND NOT is_deleted FOR UPDATE;

-- name: insert-list
-- Creates a list for company $1 by user $2 from the fields of jsonb $3.
INSERT INTO email_lists
    (company_id, created_by_user_id, list_name, list_code, description, list_type, source_type,
     segment_criteria, is_active, is_public)
SELECT $1, $2::bigint, r.list_name, r.list_code, r.description, r.list_type, r.source_type,
       coalesce(r.segment_criteria, '{}'), coalesce(r.is_active, true),
       coalesce(r.is_public, false)
FROM jsonb_populate_record(NULL::email_lists, $3::jsonb) r
RETURNING *, 0::bigint AS total_subscribers, 0::bigint AS active_subscribers,
          0::bigint AS unsubscribed_count;

-- name: update-list
-- Applies the fields of jsonb $4 to list $1 of company $2 by user $3.
WITH upd AS (
    UPDATE email_lists t SET
        (list_name, list_code, description, list_type, source_type, segment_criteria,
         is_active, is_public, updated_by_user_id, updated_at) =
        (SELECT r.list_name, r.list_code, r.description, r.list_type, r.source_type,
                r.segment_criteria, r.is_active, r.is_public, $3::bigint, now()
         FROM jsonb_populate_record(t, $4::jsonb) r)
    WHERE t.id = $1 AND t.company_id = $2 AND NOT t.is_deleted
    RETURNING t.*
)
SELECT upd.*, s.total_subscribers, s.active_subscribers, s.unsubscribed_count
FROM upd CROSS JOIN LATERAL list_subscriber_counts(upd.id) s;

-- name: delete-list
UPDATE email_lists SET is_deleted = true, deleted_at = now(), updated_at = now()
WHERE id = $1 AND company_id = $2 AND NOT is_deleted
RETURNING *, 0::bigint AS total_subscribers, 0::bigint AS active_subscribers,
          0::bigint AS unsubscribed_count;

-- name: campaigns-using-list
-- Active campaigns of company $2 that target or suppress list $1.
SELECT id, campaign_code FROM email_campaigns
WHERE (target_list_id = $1 OR suppression_list_id = $1) AND company_id = $2 AND NOT is_deleted
  AND campaign_status IN ('draft', 'scheduled', 'sending', 'paused')
ORDER BY id LIMIT 20;
