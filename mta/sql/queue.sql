-- The mail queue: enqueue, claim with leases, outcomes, status, and the operator's actions.

-- name: enqueue-message
-- Stores one message body and a row per envelope recipient, in one statement (one commit).
-- Recipients already suppressed for the company (in clear, or as the hash of an erased address)
-- start as 'suppressed' and are never sent; so do marketing recipients unsubscribed from all
-- the company's lists or from the message's list.
-- $1 company_id, $2 credential_id, $3 mail_from, $4 from_domain, $5 message_id header,
-- $6 body, $7 smtputf8, $8 eight_bit, $9 recipients[], $10 domains[], $11 priority,
-- $12 max age (seconds), $13 initial state ('queued' or 'held'), $14 category,
-- $15 campaign_id, $16 list_id
-- Notifies channel sendmill_queue on commit so idle delivery nodes wake at once.
WITH m AS (
    INSERT INTO messages (company_id, credential_id, mail_from, from_domain, message_id,
                          body, size, smtputf8, eight_bit, category, campaign_id, list_id)
    VALUES ($1, $2, $3, $4, $5, $6::bytea, octet_length($6::bytea), $7, $8,
            $14::message_category, $15, $16)
    RETURNING id
)
INSERT INTO recipients (message_id, company_id, recipient, domain, priority, state, expires_at,
                        last_reply)
SELECT m.id, $1, r.recipient, r.domain, $11,
       CASE WHEN block.reason IS NULL THEN $13::recipient_state ELSE 'suppressed' END,
       now() + make_interval(secs => $12),
       CASE WHEN block.reason IS NULL THEN NULL ELSE 'suppressed: ' || block.reason END
FROM m, (SELECT pg_notify('sendmill_queue', '')) AS wake,
     unnest($9::text[], $10::text[]) WITH ORDINALITY AS r(recipient, domain, n)
LEFT JOIN LATERAL (
    SELECT s.reason FROM suppressions s
    WHERE s.company_id = $1 AND s.address = lower(r.recipient)
    UNION ALL
    SELECT h.reason FROM suppression_hashes h
    WHERE h.company_id = $1
      AND h.address_hash = sha256(convert_to(lower(r.recipient), 'UTF8'))
    UNION ALL
    SELECT 'unsubscribed' FROM unsubscriptions u
    WHERE $14 = 'marketing' AND u.company_id = $1 AND u.address = lower(r.recipient)
      AND u.list_id IN (0, coalesce($16, 0))
    LIMIT 1
) block ON true
ORDER BY r.n
RETURNING id, message_id, recipient, state::text;

-- name: claim-due-recipients
-- Leases up to $1 due recipients to node $4 for $3 seconds, fairly: at most $2 per company per
-- claim, transactional (priority 0) before bulk, oldest first. Rows locked by another node are
-- skipped (SKIP LOCKED), so several daemons on one database never claim the same row.
-- Domains in $5 (throttled or paused here) are left for later.
WITH due AS (
    SELECT d.id
    FROM companies c
    CROSS JOIN LATERAL (
        SELECT r.id
        FROM recipients r
        WHERE r.company_id = c.id
          AND r.state IN ('queued', 'deferred')
          AND r.next_attempt_at <= now()
          AND r.domain <> ALL ($5::text[])
        ORDER BY r.priority, r.next_attempt_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ) d
    LIMIT $1
)
UPDATE recipients r
SET state = 'sending', lease_until = now() + make_interval(secs => $3), leased_by = $4,
    updated_at = now()
FROM due
WHERE r.id = due.id
RETURNING r.id, r.message_id, r.company_id, r.recipient, r.domain, r.priority, r.attempts,
          r.expires_at, r.created_at, r.contact_id;

-- name: retake-expired-leases
-- Returns rows whose lease ran out (their node died or hung) to the queue, due now.
UPDATE recipients
SET state = 'deferred', lease_until = NULL, leased_by = NULL, next_attempt_at = now(),
    updated_at = now()
WHERE state = 'sending' AND lease_until < now()
RETURNING id;

-- name: renew-leases
-- Extends by $2 seconds the leases of the rows node $1 is working on ($3: claimed, outcome not
-- yet written), and gives back its other leased rows, due now: claims whose answer the node
-- never got, so never attempted. (Renewing every row of the node kept rows whose outcome was
-- lost leased forever, then sent them again: issue 11.)
WITH renewed AS (
    UPDATE recipients
    SET lease_until = now() + make_interval(secs => $2)
    WHERE state = 'sending' AND leased_by = $1 AND id = ANY ($3::bigint[])
)
UPDATE recipients
SET state = CASE WHEN attempts = 0 THEN 'queued'::recipient_state ELSE 'deferred' END,
    lease_until = NULL, leased_by = NULL, next_attempt_at = now(), updated_at = now()
WHERE state = 'sending' AND leased_by = $1 AND id <> ALL ($3::bigint[]);

-- name: release-leases
-- Gives back rows node $1 holds but has not attempted ($2 ids), without counting an attempt:
-- on shutdown or when a site is throttled. Optional delay $3 seconds.
UPDATE recipients
SET state = CASE WHEN attempts = 0 THEN 'queued'::recipient_state ELSE 'deferred' END,
    lease_until = NULL, leased_by = NULL,
    next_attempt_at = now() + make_interval(secs => $3), updated_at = now()
WHERE id = ANY ($2::bigint[]) AND state = 'sending' AND leased_by = $1;

-- name: fetch-messages
-- Bodies and envelope data of the messages $1 (ids), for delivery.
SELECT id, company_id, mail_from, from_domain, message_id, body, smtputf8, eight_bit,
       campaign_version_id
FROM messages
WHERE id = ANY ($1::bigint[]);

-- name: blocked-recipients
-- Which of the recipient rows $1 must not be contacted, and why: the address is suppressed for
-- the company (in clear, or as the hash of an erased address), or the mail is marketing and the
-- address left all lists or the message's list.
SELECT r.id, coalesce(s.reason, h.reason, 'unsubscribed') AS reason
FROM recipients r
JOIN messages m ON m.id = r.message_id
LEFT JOIN suppressions s ON s.company_id = r.company_id AND s.address = lower(r.recipient)
LEFT JOIN suppression_hashes h
    ON h.company_id = r.company_id
   AND h.address_hash = sha256(convert_to(lower(r.recipient), 'UTF8'))
WHERE r.id = ANY ($1::bigint[])
  AND (s.address IS NOT NULL
       OR h.address_hash IS NOT NULL
       OR (m.category = 'marketing' AND EXISTS (
               SELECT 1 FROM unsubscriptions u
               WHERE u.company_id = r.company_id AND u.address = lower(r.recipient)
                 AND u.list_id IN (0, coalesce(m.list_id, 0)))));

-- name: record-outcomes
-- Applies a batch of attempt outcomes and records each attempt. A row is updated only if no
-- attempt was made on it since it was claimed (its attempt count is still $10's) and it is
-- either still leased by node $1 or back in the queue unclaimed (its lease ran out while the
-- database was away and it was taken back); never while another node is attempting it. So an
-- outcome written twice (a retry after a lost acknowledgement, a replay from the journal) or
-- written late changes the row once.
-- $2 ids, $3 new states, $4 next attempt delays (seconds; NULL when final), $5 mx, $6 codes,
-- $7 replies, $8 durations (ms), $9 whether the attempt counts (false for suppression),
-- $10 attempt counts at claim time
WITH o AS (
    SELECT * FROM unnest($2::bigint[], $3::text[], $4::float8[], $5::text[], $6::int[],
                         $7::text[], $8::int[], $9::bool[], $10::int[])
        AS o(id, state, delay, mx, code, reply, duration_ms, counts, claimed_attempts)
), u AS (
    UPDATE recipients r
    SET state = o.state::recipient_state,
        attempts = r.attempts + CASE WHEN o.counts THEN 1 ELSE 0 END,
        next_attempt_at = CASE WHEN o.delay IS NULL THEN r.next_attempt_at
                               ELSE now() + make_interval(secs => o.delay) END,
        last_reply = o.reply, last_mx = COALESCE(o.mx, r.last_mx),
        lease_until = NULL, leased_by = NULL, updated_at = now(),
        finished_at = CASE WHEN o.state IN ('delivered', 'bounced', 'expired', 'suppressed')
                           THEN now() END
    FROM o
    WHERE r.id = o.id AND r.attempts = o.claimed_attempts
      AND ((r.state = 'sending' AND r.leased_by = $1)
           OR (r.state IN ('queued', 'deferred') AND r.leased_by IS NULL))
    RETURNING r.id
)
INSERT INTO attempts (recipient_id, mx, code, reply, outcome, duration_ms, node)
SELECT o.id, o.mx, o.code, o.reply, o.state::recipient_state, o.duration_ms, $1
FROM o JOIN u ON u.id = o.id
WHERE o.counts
RETURNING recipient_id;

-- name: queue-counts
-- Counts by state and destination domain, optionally for one domain ($1 NULL = all).
SELECT domain, state::text, count(*) AS n
FROM recipients
WHERE $1::text IS NULL OR domain = $1
GROUP BY domain, state
ORDER BY domain, state;

-- name: queue-state-totals
-- Totals by state, for the queue gauge.
SELECT state::text, count(*) AS n FROM recipients GROUP BY state;

-- name: recipient-status
-- The visible outcome of one recipient row, scoped to company $2.
SELECT r.id, r.recipient, r.state::text, r.attempts, r.last_reply, r.last_mx,
       r.next_attempt_at, r.created_at, r.finished_at, r.message_id
FROM recipients r
WHERE r.id = $1 AND r.company_id = $2;

-- name: recipient-attempts
-- Every attempt of recipient $1, oldest first.
SELECT at, mx, code, reply, outcome::text, duration_ms, node
FROM attempts WHERE recipient_id = $1 ORDER BY id;

-- Operator actions. Each handles at most $4 matching recipients per call (the CLI repeats
-- until a call returns fewer, showing progress), so a million-row action never holds one huge
-- transaction. Filters: $1 domain or NULL, $2 company or NULL, $3 ids or NULL.
-- Rows being delivered right now are skipped (SKIP LOCKED), never waited for.

-- name: queue-retry
-- Makes matching deferred/queued recipients due now (rows already due are left alone, which is
-- also what lets the batches end).
WITH batch AS (
    SELECT id FROM recipients
    WHERE state IN ('queued', 'deferred') AND next_attempt_at > now()
      AND ($1::text IS NULL OR domain = $1)
      AND ($2::bigint IS NULL OR company_id = $2)
      AND ($3::bigint[] IS NULL OR id = ANY ($3))
    ORDER BY id LIMIT $4
    FOR UPDATE SKIP LOCKED
)
UPDATE recipients r SET next_attempt_at = now(), updated_at = now()
FROM batch WHERE r.id = batch.id
RETURNING r.id;

-- name: queue-hold
-- Holds matching queued/deferred recipients: never attempted until released.
WITH batch AS (
    SELECT id FROM recipients
    WHERE state IN ('queued', 'deferred')
      AND ($1::text IS NULL OR domain = $1)
      AND ($2::bigint IS NULL OR company_id = $2)
      AND ($3::bigint[] IS NULL OR id = ANY ($3))
    ORDER BY id LIMIT $4
    FOR UPDATE SKIP LOCKED
)
UPDATE recipients r SET state = 'held', updated_at = now()
FROM batch WHERE r.id = batch.id
RETURNING r.id;

-- name: queue-release
-- Releases held recipients: due now.
WITH batch AS (
    SELECT id FROM recipients
    WHERE state = 'held'
      AND ($1::text IS NULL OR domain = $1)
      AND ($2::bigint IS NULL OR company_id = $2)
      AND ($3::bigint[] IS NULL OR id = ANY ($3))
    ORDER BY id LIMIT $4
    FOR UPDATE SKIP LOCKED
)
UPDATE recipients r SET state = 'queued', next_attempt_at = now(), updated_at = now()
FROM batch WHERE r.id = batch.id
RETURNING r.id;

-- name: queue-delete
-- Gives up on matching recipients that are not being delivered right now: the operator's
-- explicit decision, final as a bounce with a reply that says so.
WITH batch AS (
    SELECT id FROM recipients
    WHERE state IN ('queued', 'deferred', 'held')
      AND ($1::text IS NULL OR domain = $1)
      AND ($2::bigint IS NULL OR company_id = $2)
      AND ($3::bigint[] IS NULL OR id = ANY ($3))
    ORDER BY id LIMIT $4
    FOR UPDATE SKIP LOCKED
)
UPDATE recipients r
SET state = 'bounced', last_reply = '550 5.0.0 deleted from the queue by the operator',
    finished_at = now(), updated_at = now()
FROM batch WHERE r.id = batch.id
RETURNING r.id;

-- name: queue-action-candidates
-- How many recipients an operator action may touch (for its progress display).
-- $1 domain or NULL, $2 company or NULL, $3 ids or NULL, $4 states.
SELECT count(*) FROM recipients
WHERE state = ANY ($4::recipient_state[])
  AND ($1::text IS NULL OR domain = $1)
  AND ($2::bigint IS NULL OR company_id = $2)
  AND ($3::bigint[] IS NULL OR id = ANY ($3));

-- name: withdraw-leases
-- Rows node $1 holds but has not attempted ($2 ids) whose campaign was paused or cancelled
-- meanwhile: $3 'held' (paused) or 'cancelled' (final, with a reply saying so).
UPDATE recipients
SET state = $3::recipient_state, lease_until = NULL, leased_by = NULL, updated_at = now(),
    finished_at = CASE WHEN $3 = 'cancelled' THEN now() END,
    last_reply = CASE WHEN $3 = 'cancelled'
                      THEN 'campaign cancelled before this recipient was sent'
                      ELSE last_reply END
WHERE id = ANY ($2::bigint[]) AND state = 'sending' AND leased_by = $1;

-- name: release-message-held
-- Held rows of message $1 are due again (its campaign resumed), in case this node held some
-- after the resume itself ran.
UPDATE recipients SET state = 'queued', next_attempt_at = now(), updated_at = now()
WHERE message_id = $1 AND state = 'held';
