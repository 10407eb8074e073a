-- A campaign's mail in the queue: the control API's analytics count the recipients of a
-- campaign and how many were delivered (the denominators of its open and click rates).
-- Partial: transactional mail, most of the queue, carries no campaign and pays nothing.
CREATE INDEX messages_campaign ON messages (company_id, campaign_id)
    WHERE campaign_id IS NOT NULL;
