-- Email templates: CRUD and the campaigns that use a template.

-- name: list-template
-- Company $1's templates filtered by $2 is_active, $3 template_type, $4 category, $5 text in
-- name/code; $6 limit, $7 offset. `total` counts every match.
SELECT t.*, template_usage_count(t.company_id, t.id) AS usage_count, count(*) OVER () AS total FROM email_templates t
WHERE company_id = $1 AND NOT is_deleted
  AND ($2::boolean IS NULL OR is_active = $2)
  AND ($3::text IS NULL OR template_type = $3)
  AND ($4::text IS NULL OR category = $4)
  AND ($5::text IS NULL OR strpos(lower(template_name), lower($5)) > 0
       OR strpos(lower(template_code), lower($5)) > 0)
ORDER BY id DESC LIMIT $6 OFFSET $7;

-- name: get-template
SELECT t.*, template_usage_count(t.company_id, t.id) AS usage_count FROM email_templates t
WHERE id = $1 AND company_id = $2 AND NOT is_deleted;

-- name: lock-template
SELECT t.*, template_usage_count(t.company_id, t.id) AS usage_count FROM email_templates t
WHERE id = $1 AND company_id = $2 AND NOT is_deleted FOR UPDATE;

-- name: insert-template
-- Creates a template for company $1 by user $2 from the fields of jsonb $3 (text_generated:
-- text_content was generated from the HTML, not written by the author).
INSERT INTO email_templates
    (company_id, created_by_user_id, updated_by_user_id, template_name, template_code,
     description, template_type, category, html_content, text_content, text_generated,
     css_styles, mjml_source, template_variables, is_active, is_default)
SELECT $1, $2::bigint, $2::bigint, r.template_name, r.template_code, r.description, r.template_type,
       r.category, r.html_content, r.text_content, coalesce(r.text_generated, false), r.css_styles,
       r.mjml_source,
       coalesce(r.template_variables, '{}'), coalesce(r.is_active, true),
       coalesce(r.is_default, false)
FROM jsonb_populate_record(NULL::email_templates, $3::jsonb) r
RETURNING *, 0::bigint AS usage_count;

-- name: update-template
-- Applies the fields of jsonb $4 to template $1 of company $2, by user $3.
UPDATE email_templates t SET
    (template_name, template_code, description, template_type, category, html_content,
     text_content, text_generated, css_styles, mjml_source, template_variables, is_active,
     is_default, updated_by_user_id, updated_at) =
    (SELECT r.template_name, r.template_code, r.description, r.template_type, r.category,
            r.html_content, r.text_content, r.text_generated, r.css_styles, r.mjml_source,
            r.template_variables, r.is_active, r.is_default, $3::bigint, now()
     FROM jsonb_populate_record(t, $4::jsonb) r)
WHERE t.id = $1 AND t.company_id = $2 AND NOT t.is_deleted
RETURNING t.*, template_usage_count(t.company_id, t.id) AS usage_count;

-- name: delete-template
UPDATE email_templates t SET is_deleted = true, deleted_at = now(), updated_at = now()
WHERE id = $1 AND company_id = $2 AND NOT is_deleted RETURNING t.*, template_usage_count(t.company_id, t.id) AS usage_count;

-- name: campaigns-using-template
-- Active campaigns (not finished, not deleted) of company $2 that use template $1.
SELECT id, campaign_code FROM email_campaigns
WHERE email_template_id = $1 AND company_id = $2 AND NOT is_deleted
  AND campaign_status IN ('draft', 'scheduled', 'sending', 'paused')
ORDER BY id LIMIT 20;
