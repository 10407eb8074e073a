-- Bounce processing: claiming stored inbound mail, the events and suppressions it yields, the
-- per-tenant policy's inputs, reputation signals, and the suppressions API.

-- name: claim-inbound
-- Locks up to $1 unprocessed inbound messages, oldest first. SKIP LOCKED: several daemons
-- process the same table without taking the same message; the caller's transaction marks
-- them processed before it commits.
SELECT id, recipient_id, envelope_to, body
FROM inbound_messages
WHERE processed_at IS NULL
ORDER BY id
LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: mark-inbound-processed
-- Marks inbound messages $1 (ids) processed and records what each turned out to be:
-- $2 kinds, $3 numbers of events, $4 errors (parallel arrays).
WITH done AS (
    UPDATE inbound_messages SET processed_at = now()
    WHERE id = ANY ($1::bigint[])
)
INSERT INTO inbound_reports (inbound_id, kind, recipients, error)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[])
ON CONFLICT (inbound_id) DO NOTHING;

-- name: recipient-rows
-- The recipient rows $1 (ids) with what events need: company, address, message, campaign.
SELECT r.id, r.company_id, lower(r.recipient) AS address, r.domain, r.message_id,
       m.campaign_id, m.message_id AS header_message_id
FROM recipients r JOIN messages m ON m.id = r.message_id
WHERE r.id = ANY ($1::bigint[]);

-- name: recipients-of-message
-- The rows of the message whose Message-ID header is $1 (with or without angle brackets),
-- newest message first: finds the row when a DSN lost its VERP token.
SELECT r.id, r.company_id, lower(r.recipient) AS address
FROM messages m JOIN recipients r ON r.message_id = m.id
WHERE m.message_id IN ($1, '<' || $1 || '>')
ORDER BY m.id DESC
LIMIT 1000;

-- name: insert-events
-- Records events, one per array element (parallel arrays): $1 company ids, $2 recipient ids,
-- $3 campaign ids, $4 addresses, $5 domains, $6 kinds, $7 reasons, $8 hard, $9 statuses,
-- $10 diagnostics, $11 remote MTAs, $12 sources, $13 inbound ids.
INSERT INTO bounce_events (company_id, recipient_id, campaign_id, address, domain, kind, reason,
                           hard, status, diagnostic, remote_mta, source, inbound_id)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                     $6::bounce_event_kind[], $7::text[], $8::boolean[], $9::text[],
                     $10::text[], $11::text[], $12::text[], $13::bigint[]);

-- name: company-settings
-- The bounce section of the settings of companies $1 (ids).
SELECT id, settings -> 'bounce' AS bounce FROM companies WHERE id = ANY ($1::bigint[]);

-- name: recent-soft-bounces
-- How many soft bounces address $2 of company $1 had in the last $3 days (this one included).
SELECT count(*) FROM bounce_events
WHERE company_id = $1 AND address = $2 AND kind = 'bounced' AND hard IS FALSE
  AND created_at > now() - make_interval(days => $3);

-- name: suppress
-- Suppresses address $2 for company $1 with reason $3 and evidence $4; an existing suppression
-- keeps its first reason and evidence. Returns a row only when the suppression is new.
INSERT INTO suppressions (company_id, address, reason, evidence)
VALUES ($1, lower($2), $3, $4)
ON CONFLICT (company_id, address) DO NOTHING
RETURNING address;

-- name: list-suppressions
-- Suppressions, newest first, optionally of company name $1 and/or address $2; at most $3.
SELECT c.name AS company, s.address, s.reason, s.evidence, s.created_at
FROM suppressions s JOIN companies c ON c.id = s.company_id
WHERE ($1::text IS NULL OR c.name = $1) AND ($2::text IS NULL OR s.address = lower($2))
ORDER BY s.created_at DESC
LIMIT $3;

-- name: lift-suppression
-- Removes the suppression of address $2 for company name $1; returns it when there was one.
DELETE FROM suppressions s USING companies c
WHERE c.id = s.company_id AND c.name = $1 AND s.address = lower($2)
RETURNING s.address;

-- name: raise-signal
-- Counts reputation/policy refusals $3 (counts) by destination domains $1 and reasons $2,
-- keeping the latest evidence $4.
INSERT INTO bounce_signals AS s (domain, reason, count, last_evidence)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])
ON CONFLICT (domain, reason) DO UPDATE SET
    count = s.count + excluded.count, last_at = now(), last_evidence = excluded.last_evidence;

-- name: list-signals
-- Destinations unhappy with our mail lately: reputation/policy refusals in the last $1 hours.
SELECT domain, reason, count, first_at, last_at, last_evidence
FROM bounce_signals WHERE last_at > now() - make_interval(hours => $1)
ORDER BY last_at DESC;

-- name: recipient-for-webhook
-- The recipient row a provider's notification is about: address $1, in the message whose
-- Message-ID header is $2 when the provider echoes it, else that address's latest row of the
-- last 30 days.
SELECT r.id, r.company_id, m.campaign_id
FROM recipients r JOIN messages m ON m.id = r.message_id
WHERE lower(r.recipient) = $1
  AND (m.message_id IN ($2, '<' || $2 || '>') OR r.created_at > now() - interval '30 days')
ORDER BY (m.message_id IN ($2, '<' || $2 || '>')) DESC, r.id DESC
LIMIT 1;

-- name: company-suppressions
-- Suppressions of company $1, newest first, optionally only address $2; at most $3.
SELECT address, reason, evidence, created_at
FROM suppressions
WHERE company_id = $1 AND ($2::text IS NULL OR address = lower($2))
ORDER BY created_at DESC
LIMIT $3;

-- name: lift-company-suppression
-- Removes the suppression of address $2 for company $1; returns it when there was one.
DELETE FROM suppressions WHERE company_id = $1 AND address = lower($2) RETURNING address;
