-- A template's usage is the number of live campaigns that use it, counted when read. A stored
-- counter went stale when a campaign changed template or was deleted, and incrementing it
-- locked the template's row until the creating transaction committed, so concurrent creates
-- sharing a template waited for each other. A plain SQL function: PostgreSQL inlines it.
ALTER TABLE email_templates DROP COLUMN usage_count;

CREATE INDEX email_campaigns_template_live ON email_campaigns (company_id, email_template_id)
    WHERE NOT is_deleted;

CREATE FUNCTION template_usage_count(company bigint, template bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM email_campaigns
    WHERE company_id = company AND email_template_id = template AND NOT is_deleted
$$;
