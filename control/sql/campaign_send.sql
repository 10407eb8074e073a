-- Campaigns going out (control/campaign_send.py, control/campaign_runner.py): the version
-- frozen at send, the enqueue in chunks, scheduled campaigns coming due, completion, progress.

-- name: freeze-campaign-version
-- Freezes campaign $1 of company $2 as it is now (subject, preheader, template, sender
-- profile, audience rules; consent required $3) into a new campaign_versions row, with the
-- mail queue's message row its recipients will point at (marketing, tagged with campaign and
-- list, no body: rendered per recipient at delivery). Returns the version.
WITH vid AS (
    SELECT nextval(pg_get_serial_sequence('campaign_versions', 'id')) AS id
), src AS (
    SELECT c.id AS campaign_id, c.company_id, c.campaign_name, c.campaign_code, c.subject_line,
           c.preheader_text, c.target_list_id, c.suppression_list_id, c.segment_criteria,
           t.html_content, t.text_content, t.css_styles, c.sending_rate_per_hour,
           s.from_name, lower(s.from_address) AS from_address, s.reply_to
    FROM email_campaigns c
    JOIN email_templates t ON t.id = c.email_template_id AND t.company_id = c.company_id
    JOIN sender_profiles s ON s.id = c.sender_profile_id AND s.company_id = c.company_id
    WHERE c.id = $1 AND c.company_id = $2 AND NOT c.is_deleted
), m AS (
    INSERT INTO messages (company_id, mail_from, from_domain, body, size, category,
                          campaign_id, list_id, campaign_version_id)
    SELECT src.company_id, src.from_address, split_part(src.from_address, '@', 2), ''::bytea, 0,
           'marketing', src.campaign_id, src.target_list_id, vid.id
    FROM src, vid
    RETURNING id, campaign_version_id
)
INSERT INTO campaign_versions
    (id, company_id, campaign_id, message_id, campaign_name, campaign_code, subject,
     preheader, from_name, from_address, reply_to, html, text_part, css, list_id,
     suppression_list_id, segment_criteria, require_consent, rate_per_hour)
SELECT m.campaign_version_id, src.company_id, src.campaign_id, m.id, src.campaign_name,
       src.campaign_code, src.subject_line, src.preheader_text, src.from_name,
       src.from_address, src.reply_to, src.html_content, src.text_content, src.css_styles,
       src.target_list_id, src.suppression_list_id, src.segment_criteria, $3,
       src.sending_rate_per_hour
FROM src, m
RETURNING *;

-- name: lock-enqueuing-version
-- The next campaign version still being enqueued whose campaign is sending, locked for this
-- transaction; versions another daemon is enqueuing right now are skipped (SKIP LOCKED), so
-- each chunk is written once. Versions of cancelled campaigns are finished as they are.
SELECT v.*
FROM campaign_versions v
JOIN email_campaigns c ON c.id = v.campaign_id AND c.company_id = v.company_id
WHERE v.enqueued_at IS NULL AND c.campaign_status = 'sending'
ORDER BY v.id
LIMIT 1
FOR UPDATE OF v SKIP LOCKED;

-- name: enqueue-campaign-chunk
-- Writes the queue rows of the next $2 list members (by contact id, after the version's
-- cursor) of version $1 that the audience rules keep, moves the cursor past every member
-- considered and counts what was written, in one statement (one commit with the caller's
-- lock). The version is finished when fewer than $2 members were left. Rows are bulk mail
-- (priority 1), due now (with a sending rate: the n-th row of the version n/rate hours after
-- it was frozen), expiring after $3 seconds. When the version is finished the
-- campaign's total_recipients becomes the number of rows written (until then it shows the
-- audience counted at send).
-- Notifies sendmill_queue so idle delivery nodes wake at once.
WITH v AS (
    SELECT * FROM campaign_versions WHERE id = $1 AND enqueued_at IS NULL
), scanned AS (
    SELECT a.contact_id, a.email, a.excluded_by
    FROM v, campaign_audience(v.company_id, v.list_id, v.suppression_list_id,
                              v.require_consent) a
    WHERE a.contact_id > v.audience_cursor AND TRUE /* segment */
    ORDER BY a.contact_id
    LIMIT $2
), written AS (
    INSERT INTO recipients (message_id, company_id, recipient, domain, priority, state,
                            next_attempt_at, expires_at, contact_id)
    SELECT v.message_id, v.company_id, s.email, lower(split_part(s.email, '@', 2)), 1,
           'queued',
           CASE WHEN v.rate_per_hour IS NULL THEN now()
                ELSE v.created_at + make_interval(
                    secs => (v.enqueued + s.n - 1) * 3600.0 / v.rate_per_hour) END,
           now() + make_interval(secs => $3), s.contact_id
    FROM v, (SELECT *, row_number() OVER (ORDER BY contact_id) AS n
             FROM scanned WHERE excluded_by IS NULL) s
    RETURNING 1
), moved AS (
    UPDATE campaign_versions cv
    SET audience_cursor = coalesce((SELECT max(contact_id) FROM scanned), cv.audience_cursor),
        enqueued = cv.enqueued + (SELECT count(*) FROM written),
        enqueued_at = CASE WHEN (SELECT count(*) FROM scanned) < $2 THEN now() END
    FROM v
    WHERE cv.id = v.id
    RETURNING cv.id, cv.campaign_id, cv.company_id, cv.enqueued, cv.enqueued_at
)
UPDATE email_campaigns c
SET total_recipients = CASE WHEN moved.enqueued_at IS NULL THEN c.total_recipients
                            ELSE moved.enqueued END,
    updated_at = now()
FROM moved, (SELECT pg_notify('sendmill_queue', '')) AS wake
WHERE c.id = moved.campaign_id AND c.company_id = moved.company_id
RETURNING moved.id, moved.enqueued, moved.enqueued_at IS NOT NULL AS done,
          (SELECT count(*) FROM written) AS written;

-- name: lock-due-scheduled-campaign
-- The scheduled campaign most overdue (scheduled_send_date at or before now), locked for
-- this transaction: the caller freezes its version and moves it to sending in the same
-- transaction, and other daemons skip it (SKIP LOCKED), so it fires exactly once. A daemon
-- that was down when it came due takes it when it starts.
SELECT * FROM email_campaigns
WHERE campaign_status = 'scheduled' AND scheduled_send_date <= now() AND NOT is_deleted
ORDER BY scheduled_send_date, id
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: start-campaign-sending
-- Campaign $1 of company $2 moves to sending now (a scheduled campaign that came due).
UPDATE email_campaigns
SET campaign_status = 'sending', sent_date = coalesce(sent_date, now()), updated_at = now()
WHERE id = $1 AND company_id = $2
RETURNING *;

-- name: finish-sent-campaigns
-- Campaigns being sent whose every version is enqueued and whose every queue row is final
-- become sent. Returns them.
UPDATE email_campaigns c
SET campaign_status = 'sent', updated_at = now()
WHERE c.campaign_status = 'sending' AND NOT c.is_deleted
  AND EXISTS (SELECT 1 FROM campaign_versions v WHERE v.campaign_id = c.id)
  AND NOT EXISTS (SELECT 1 FROM campaign_versions v
                  WHERE v.campaign_id = c.id AND v.enqueued_at IS NULL)
  AND NOT EXISTS (SELECT 1 FROM campaign_versions v
                  JOIN recipients r ON r.message_id = v.message_id
                  WHERE v.campaign_id = c.id
                    AND r.state IN ('queued', 'deferred', 'sending', 'held'))
RETURNING c.*;

-- name: lock-campaign-versions
-- Locks the versions of campaign $1 (company $2): waits for a chunk being enqueued to commit,
-- so the statement that follows (in a new snapshot) sees its rows.
SELECT id FROM campaign_versions WHERE campaign_id = $1 AND company_id = $2 ORDER BY id
FOR UPDATE;

-- name: campaign-has-version
-- Whether campaign $1 (company $2) was already frozen for sending (paused mid-send).
SELECT EXISTS (SELECT 1 FROM campaign_versions WHERE campaign_id = $1 AND company_id = $2);

-- name: hold-campaign-recipients
-- Pause: the campaign's recipients waiting in the queue are held (never claimed while held).
-- Rows being delivered right now finish. Returns how many were held.
WITH held AS (
    UPDATE recipients r SET state = 'held', updated_at = now()
    FROM campaign_versions v
    WHERE v.campaign_id = $1 AND v.company_id = $2 AND r.message_id = v.message_id
      AND r.state IN ('queued', 'deferred')
    RETURNING 1
)
SELECT count(*) FROM held;

-- name: release-campaign-recipients
-- Resume: the campaign's held recipients are due now (with a sending rate: spread from now
-- at that pace again). Returns how many; wakes delivery.
WITH held AS (
    SELECT r.id, v.rate_per_hour, row_number() OVER (PARTITION BY v.id ORDER BY r.id) AS n
    FROM campaign_versions v
    JOIN recipients r ON r.message_id = v.message_id AND r.state = 'held'
    WHERE v.campaign_id = $1 AND v.company_id = $2
), released AS (
    UPDATE recipients r
    SET state = 'queued', updated_at = now(),
        next_attempt_at = CASE WHEN held.rate_per_hour IS NULL THEN now()
                               ELSE now() + make_interval(
                                   secs => (held.n - 1) * 3600.0 / held.rate_per_hour) END
    FROM held
    WHERE r.id = held.id AND r.state = 'held'
    RETURNING 1
)
SELECT count(*) FROM released, (SELECT pg_notify('sendmill_queue', '')) AS wake;

-- name: cancel-campaign-recipients
-- Cancel: the campaign's recipients not attempted yet become final ('cancelled', with a
-- reply saying so) and its versions stop enqueueing. Returns how many were cancelled.
WITH stopped AS (
    UPDATE campaign_versions SET enqueued_at = coalesce(enqueued_at, now())
    WHERE campaign_id = $1 AND company_id = $2
    RETURNING message_id
), cancelled AS (
    UPDATE recipients r
    SET state = 'cancelled', last_reply = 'campaign cancelled before this recipient was sent',
        finished_at = now(), updated_at = now()
    FROM stopped
    WHERE r.message_id = stopped.message_id AND r.state IN ('queued', 'deferred', 'held')
    RETURNING 1
)
SELECT count(*) FROM cancelled;

-- name: campaign-progress
-- Campaign $1 (company $2): its queue rows by state, and the versions' enqueue progress.
SELECT coalesce(sum(v.enqueued), 0)::bigint AS enqueued,
       bool_and(v.enqueued_at IS NOT NULL) AS enqueue_done,
       (SELECT coalesce(jsonb_object_agg(state, n), '{}'::jsonb) FROM (
            SELECT r.state::text AS state, count(*) AS n
            FROM campaign_versions w JOIN recipients r ON r.message_id = w.message_id
            WHERE w.campaign_id = $1 AND w.company_id = $2
            GROUP BY r.state) s) AS states
FROM campaign_versions v
WHERE v.campaign_id = $1 AND v.company_id = $2;

-- name: campaigns-in-flight
-- Campaigns being sent (any company), for the progress events.
SELECT id, company_id, campaign_code, campaign_name, campaign_status, total_recipients
FROM email_campaigns
WHERE campaign_status = 'sending' AND NOT is_deleted;

-- name: announce-campaign-move
-- Tells every delivery node (on commit) that campaign $1 (company $2) was paused ($3 'hold'),
-- cancelled ('cancel') or resumed ('release'): jobs of its messages leased and not started
-- are taken back (mta/delivery.py, channel sendmill_withdraw).
SELECT count(pg_notify('sendmill_withdraw', $3 || ':' || message_id))
FROM campaign_versions WHERE campaign_id = $1 AND company_id = $2;

-- name: set-campaign-sending-rate
-- Campaign $1 (company $2) is sent at $3 messages per hour (NULL: no pace of its own).
UPDATE email_campaigns SET sending_rate_per_hour = $3 WHERE id = $1 AND company_id = $2;
