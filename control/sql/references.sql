-- Ids that a request names, checked against the caller's company (issue 12.13).

-- name: company-lists
-- Which of lists $2 (bigint[]) exist, undeleted, in company $1.
SELECT id FROM email_lists WHERE company_id = $1 AND id = ANY($2) AND NOT is_deleted;

-- name: company-campaigns
-- Which of campaigns $2 (bigint[]) exist, undeleted, in company $1.
SELECT id FROM email_campaigns WHERE company_id = $1 AND id = ANY($2) AND NOT is_deleted;
