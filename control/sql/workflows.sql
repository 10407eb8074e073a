-- Automation workflows: CRUD and the campaigns they link.

-- name: list-workflow
-- Company $1's workflows filtered by $2 is_active, $3 workflow_type, $4 text in name/code;
-- $5 limit, $6 offset.
SELECT *, count(*) OVER () AS total FROM email_workflows
WHERE company_id = $1 AND NOT is_deleted
  AND ($2::boolean IS NULL OR is_active = $2)
  AND ($3::text IS NULL OR workflow_type = $3)
  AND ($4::text IS NULL OR strpos(lower(workflow_name), lower($4)) > 0
       OR strpos(lower(workflow_code), lower($4)) > 0)
ORDER BY id DESC LIMIT $5 OFFSET $6;

-- name: get-workflow
SELECT * FROM email_workflows WHERE id = $1 AND company_id = $2 AND NOT is_deleted;

-- name: lock-workflow
SELECT * FROM email_workflows WHERE id = $1 AND company_id = $2 AND NOT is_deleted FOR UPDATE;

-- name: insert-workflow
INSERT INTO email_workflows
    (company_id, created_by_user_id, updated_by_user_id, workflow_name, workflow_code,
     description, workflow_type, trigger_conditions, workflow_steps, trigger_timing,
     delay_settings, is_active, is_default)
SELECT $1, $2::bigint, $2::bigint, r.workflow_name, r.workflow_code, r.description, r.workflow_type,
       coalesce(r.trigger_conditions, '{}'), coalesce(r.workflow_steps, '[]'),
       r.trigger_timing, coalesce(r.delay_settings, '{}'), coalesce(r.is_active, true),
       coalesce(r.is_default, false)
FROM jsonb_populate_record(NULL::email_workflows, $3::jsonb) r
RETURNING *;

-- name: update-workflow
UPDATE email_workflows t SET
    (workflow_name, workflow_code, description, workflow_type, trigger_conditions,
     workflow_steps, trigger_timing, delay_settings, is_active, is_default, updated_by_user_id,
     updated_at) =
    (SELECT r.workflow_name, r.workflow_code, r.description, r.workflow_type,
            r.trigger_conditions, r.workflow_steps, r.trigger_timing, r.delay_settings,
            r.is_active, r.is_default, $3::bigint, now()
     FROM jsonb_populate_record(t, $4::jsonb) r)
WHERE t.id = $1 AND t.company_id = $2 AND NOT t.is_deleted
RETURNING t.*;

-- name: delete-workflow
UPDATE email_workflows SET is_deleted = true, deleted_at = now(), is_active = false,
                           updated_at = now()
WHERE id = $1 AND company_id = $2 AND NOT is_deleted RETURNING *;

-- name: clear-workflow-campaigns
DELETE FROM workflow_campaigns WHERE workflow_id = $1;

-- name: add-workflow-campaigns
-- Records that workflow $2 of company $1 sends campaigns $3 (bigint[]).
INSERT INTO workflow_campaigns (company_id, workflow_id, campaign_id)
SELECT $1, $2, unnest($3::bigint[]) ON CONFLICT DO NOTHING;

-- name: live-campaigns
-- Which of campaigns $2 (bigint[]) exist, undeleted, in company $1.
SELECT id FROM email_campaigns WHERE company_id = $1 AND id = ANY($2) AND NOT is_deleted;

-- name: workflows-using-campaign
-- Active workflows of company $2 whose steps send campaign $1.
SELECT w.id, w.workflow_code FROM workflow_campaigns wc
JOIN email_workflows w ON w.id = wc.workflow_id
WHERE wc.campaign_id = $1 AND wc.company_id = $2 AND w.is_active AND NOT w.is_deleted
ORDER BY w.id LIMIT 20;
