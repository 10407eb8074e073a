-- Tracking events: counts per campaign and recipient, timelines, retention purges.

-- name: campaign-counts
-- Opens, clicks and unsubscribes of campaign $2 of company $1: raw and human-only, totals and
-- unique recipients, one row per event kind.
SELECT kind::text, total, unique_recipients, human_total, human_unique_recipients,
       machine_total
FROM tracking_campaign_counts
WHERE company_id = $1 AND campaign_id = $2
ORDER BY kind;

-- name: recipient-counts
-- Event counts of recipient row $2 (company $1), one row per kind.
SELECT kind::text, total, human_total, first_at, last_at
FROM tracking_recipient_counts
WHERE company_id = $1 AND recipient_id = $2
ORDER BY kind;

-- name: company-settings
-- The tracking settings documents of companies $1 (ids): privacy and defaults, read by the
-- event writer (IP anonymisation) and submission preparation (defaults).
SELECT id, COALESCE(settings -> 'tracking', '{}'::jsonb) AS tracking
FROM companies WHERE id = ANY ($1::bigint[]);

-- name: recipient-address
-- The address of recipient row $1 if it belongs to company $2 (the unsubscribe and
-- preference pages name the address they act on).
SELECT recipient FROM recipients WHERE id = $1 AND company_id = $2;

-- name: recipient-message
-- The stored message of recipient row $1 if it belongs to company $2 ("view in browser").
SELECT m.body
FROM recipients r JOIN messages m ON m.id = r.message_id
WHERE r.id = $1 AND r.company_id = $2;

-- name: campaigns-counts
-- Opens, clicks and unsubscribes summed over campaigns $2 (ids) of company $1, one row per
-- kind. Unique recipients add up: a recipient row belongs to one campaign's message.
SELECT kind::text,
       sum(total)::bigint AS total,
       sum(unique_recipients)::bigint AS unique_recipients,
       sum(human_total)::bigint AS human_total,
       sum(human_unique_recipients)::bigint AS human_unique_recipients,
       sum(machine_total)::bigint AS machine_total
FROM tracking_campaign_counts
WHERE company_id = $1 AND campaign_id = ANY ($2::bigint[])
GROUP BY kind
ORDER BY kind;

-- name: campaign-machine-reasons
-- Machine-made events of campaign $2 (company $1) by kind and rule reason, most frequent first.
SELECT kind::text, machine_reason AS reason, count(*) AS count
FROM tracking_events
WHERE company_id = $1 AND campaign_id = $2 AND machine
GROUP BY kind, machine_reason
ORDER BY count DESC, kind, reason;

-- name: campaign-timeline
-- Events of campaign $2 (company $1) per time bucket $3 ('hour' or 'day', UTC) and kind:
-- totals and human-only totals; buckets without events are left out.
SELECT date_trunc($3, at, 'UTC') AS at, kind::text,
       count(*) AS total, count(*) FILTER (WHERE NOT machine) AS human_total
FROM tracking_events
WHERE company_id = $1 AND campaign_id = $2
GROUP BY 1, kind
ORDER BY 1, kind;

-- name: try-purge-lock
-- Whether this transaction may purge: one daemon at a time (the others skip their turn).
SELECT pg_try_advisory_xact_lock(7411005);

-- name: purge-events
-- Deletes up to $2 tracking events that arrived before $1, oldest first (ids grow with time,
-- so the primary key finds them without scanning the table).
WITH doomed AS (
    SELECT id FROM tracking_events WHERE at < $1 ORDER BY id LIMIT $2
)
DELETE FROM tracking_events e USING doomed WHERE e.id = doomed.id;
