-- Segment previews and the references segment criteria make (control/segments.py). The
-- marker `/* segment */ true` is where segments.with_condition puts the compiled criteria
-- (placeholders from $2 on); as written, the queries match every contact. Criteria read the
-- contact as `c` and its engagement over all campaigns as `ce` (segments.FROM_CONTACTS: a
-- LEFT JOIN on its primary key, which PostgreSQL drops when the criteria do not use it).

-- name: segment-count
-- How many live (not deleted, not erased) contacts of company $1 the criteria match.
SELECT count(*)
FROM contacts c
LEFT JOIN contact_engagement ce ON ce.company_id = c.company_id AND ce.contact_id = c.id
WHERE c.company_id = $1 AND NOT c.is_deleted AND c.email IS NOT NULL
  AND /* segment */ true;

-- name: segment-sample
-- The first 20 of them by id.
SELECT c.*
FROM contacts c
LEFT JOIN contact_engagement ce ON ce.company_id = c.company_id AND ce.contact_id = c.id
WHERE c.company_id = $1 AND NOT c.is_deleted AND c.email IS NOT NULL
  AND /* segment */ true
ORDER BY c.id LIMIT 20;

-- name: segment-missing-references
-- Of lists $2 and campaigns $3 (bigint[]), those that are not live rows of company $1.
SELECT ARRAY(SELECT unnest($2::bigint[])
             EXCEPT SELECT id FROM email_lists
                    WHERE company_id = $1 AND NOT is_deleted AND id = ANY($2::bigint[]))
           AS lists,
       ARRAY(SELECT unnest($3::bigint[])
             EXCEPT SELECT id FROM email_campaigns
                    WHERE company_id = $1 AND NOT is_deleted AND id = ANY($3::bigint[]))
           AS campaigns;
