-- Email campaigns: CRUD, the references they need, codes, audience size and approval.

-- name: list-campaign
-- Company $1's campaigns filtered by $2 campaign_status, $3 campaign_type, $4 approval_status,
-- $5 target_list_id, $6/$7 scheduled_send_date range (from, to), $8 text in name/code/subject;
-- $9 limit, $10 offset. `total` counts every match.
SELECT *, count(*) OVER () AS total FROM email_campaigns
WHERE company_id = $1 AND NOT is_deleted
  AND ($2::text IS NULL OR campaign_status = $2)
  AND ($3::text IS NULL OR campaign_type = $3)
  AND ($4::text IS NULL OR approval_status = $4)
  AND ($5::bigint IS NULL OR target_list_id = $5)
  AND ($6::timestamptz IS NULL OR scheduled_send_date >= $6)
  AND ($7::timestamptz IS NULL OR scheduled_send_date < $7)
  AND ($8::text IS NULL OR strpos(lower(campaign_name), lower($8)) > 0
       OR strpos(lower(campaign_code), lower($8)) > 0
       OR strpos(lower(subject_line), lower($8)) > 0)
ORDER BY id DESC LIMIT $9 OFFSET $10;

-- name: get-campaign
SELECT * FROM email_campaigns WHERE id = $1 AND company_id = $2 AND NOT is_deleted;

-- name: lock-campaign
SELECT * FROM email_campaigns WHERE id = $1 AND company_id = $2 AND NOT is_deleted FOR UPDATE;

-- name: insert-campaign
-- Creates a campaign for company $1 by user $2 from jsonb $3 (campaign_code and
-- approval_status already decided by the caller).
INSERT INTO email_campaigns
    (company_id, created_by_user_id, updated_by_user_id, campaign_id, campaign_name,
     campaign_code, subject_line, preheader_text, campaign_type, email_template_id,
     sender_profile_id, approval_status, scheduled_send_date, target_list_id,
     segment_criteria, suppression_list_id)
SELECT $1, $2::bigint, $2::bigint, r.campaign_id, r.campaign_name, r.campaign_code, r.subject_line,
       r.preheader_text, r.campaign_type, r.email_template_id, r.sender_profile_id,
       coalesce(r.approval_status, 'not_required'), r.scheduled_send_date, r.target_list_id,
       coalesce(r.segment_criteria, '{}'), r.suppression_list_id
FROM jsonb_populate_record(NULL::email_campaigns, $3::jsonb) r
RETURNING *;

-- name: update-campaign
-- Applies jsonb $4 to campaign $1 of company $2 by user $3 (status and approval fields
-- included, as decided by the caller).
UPDATE email_campaigns t SET
    (campaign_id, campaign_name, campaign_code, subject_line, preheader_text, campaign_type,
     email_template_id, sender_profile_id, campaign_status, approval_status, rejection_reason,
     approved_by_user_id, approved_at, scheduled_send_date, sent_date, target_list_id,
     segment_criteria, suppression_list_id, total_recipients, updated_by_user_id,
     updated_at) =
    (SELECT r.campaign_id, r.campaign_name, r.campaign_code, r.subject_line, r.preheader_text,
            r.campaign_type, r.email_template_id, r.sender_profile_id, r.campaign_status,
            r.approval_status, r.rejection_reason, r.approved_by_user_id, r.approved_at,
            r.scheduled_send_date, r.sent_date, r.target_list_id, r.segment_criteria,
            r.suppression_list_id, r.total_recipients, $3::bigint, now()
     FROM jsonb_populate_record(t, $4::jsonb) r)
WHERE t.id = $1 AND t.company_id = $2 AND NOT t.is_deleted
RETURNING t.*;

-- name: delete-campaign
UPDATE email_campaigns SET is_deleted = true, deleted_at = now(), updated_at = now()
WHERE id = $1 AND company_id = $2 AND NOT is_deleted RETURNING *;

-- name: campaign-refs
-- Whether each reference of a campaign is a live row of company $1: $2 template,
-- $3 target list, $4 sender profile (NULL: not given), $5 suppression list (NULL: none).
SELECT
    EXISTS (SELECT 1 FROM email_templates
            WHERE id = $2 AND company_id = $1 AND NOT is_deleted) AS template_ok,
    EXISTS (SELECT 1 FROM email_lists
            WHERE id = $3 AND company_id = $1 AND NOT is_deleted) AS list_ok,
    $4::bigint IS NULL OR EXISTS (SELECT 1 FROM sender_profiles
            WHERE id = $4 AND company_id = $1 AND NOT is_deleted) AS sender_ok,
    $5::bigint IS NULL OR EXISTS (SELECT 1 FROM email_lists
            WHERE id = $5 AND company_id = $1 AND NOT is_deleted) AS suppression_ok;

-- name: campaign-code-taken
SELECT EXISTS (SELECT 1 FROM email_campaigns
               WHERE company_id = $1 AND campaign_code = $2 AND NOT is_deleted);

-- name: audience-size
-- Recipients a campaign would reach: subscribed, live, not erased members of list $2 of
-- company $1, minus members of suppression list $3, the company's suppressions and the
-- addresses unsubscribed (mta's unsubscriptions) from this list or all lists.
SELECT count(*) FROM list_members m
JOIN contacts c ON c.id = m.contact_id
WHERE m.list_id = $2 AND m.company_id = $1 AND m.state = 'subscribed'
  AND NOT c.is_deleted AND c.email IS NOT NULL
  AND ($3::bigint IS NULL OR NOT EXISTS (
        SELECT 1 FROM list_members s WHERE s.list_id = $3 AND s.contact_id = c.id))
  AND NOT EXISTS (SELECT 1 FROM suppressions x
                  WHERE x.company_id = $1 AND x.address = c.email)
  AND NOT EXISTS (SELECT 1 FROM unsubscriptions u
                  WHERE u.company_id = $1 AND u.address = c.email AND u.list_id IN (0, $2));

-- name: recipients-scheduled-on
-- Recipients of company $1's campaigns scheduled or sent on the day starting at $2 (for the
-- daily limit), excluding campaign $3.
SELECT coalesce(sum(total_recipients), 0)::bigint FROM email_campaigns
WHERE company_id = $1 AND NOT is_deleted AND id <> $3
  AND campaign_status IN ('scheduled', 'sending', 'sent', 'completed')
  AND coalesce(scheduled_send_date, sent_date) >= $2
  AND coalesce(scheduled_send_date, sent_date) < $2 + interval '1 day';

-- name: mark-approval-pending
-- Campaign $1 needs approval after all (its audience grew past the company's threshold).
UPDATE email_campaigns SET approval_status = 'pending' WHERE id = $1;

-- name: subscribed-count
-- Members of list $1 (company $2) subscribed, before suppressions and unsubscriptions.
SELECT count(*) FROM list_members WHERE list_id = $1 AND company_id = $2 AND state = 'subscribed';
