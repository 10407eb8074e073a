-- Campaign analytics: queue-side counts (recipients, delivered) and the summary across campaigns.

-- name: campaign-queue-counts
-- The mail queue's recipient rows of campaign $2 (company $1): all of them, and those
-- delivered (analytics take the larger of these and the campaign's own counters).
SELECT count(*) AS recipients, count(*) FILTER (WHERE r.state = 'delivered') AS delivered
FROM messages m JOIN recipients r ON r.message_id = m.id
WHERE m.company_id = $1 AND m.campaign_id = $2;

-- name: analytics-summary
-- Company $1's totals over campaigns sent since $2 (all when NULL). Recipients, delivered and
-- bounced: per campaign the larger of its counters and its rows in the mail queue. Opens and
-- clicks come from the tracking events of `campaign_ids` (tracker.events.campaigns_counts).
WITH sent AS (
    SELECT id, total_recipients, delivered_count, bounced_count, unsubscribed_count
    FROM email_campaigns
    WHERE company_id = $1 AND NOT is_deleted AND sent_date IS NOT NULL
      AND ($2::timestamptz IS NULL OR sent_date >= $2)
), queue AS (
    SELECT m.campaign_id, count(*) AS recipients,
           count(*) FILTER (WHERE r.state = 'delivered') AS delivered,
           count(*) FILTER (WHERE r.state = 'bounced') AS bounced
    FROM messages m JOIN recipients r ON r.message_id = m.id
    WHERE m.company_id = $1 AND m.campaign_id IN (SELECT id FROM sent)
    GROUP BY m.campaign_id
)
SELECT count(*) AS campaigns,
       coalesce(sum(greatest(s.total_recipients, q.recipients)), 0)::bigint AS recipients,
       coalesce(sum(greatest(s.delivered_count, q.delivered)), 0)::bigint AS delivered,
       coalesce(sum(greatest(s.bounced_count, q.bounced)), 0)::bigint AS bounced,
       coalesce(sum(s.unsubscribed_count), 0)::bigint AS unsubscribed,
       coalesce(array_agg(s.id) FILTER (WHERE s.id IS NOT NULL), '{}') AS campaign_ids
FROM sent s LEFT JOIN queue q ON q.campaign_id = s.id;
