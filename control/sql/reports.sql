-- Campaign reports (issue 15): delivery outcomes, bounces by reason, complaints and mailto
-- unsubscribes, and results per recipient domain (control/campaign_report.py).

-- name: campaign-report-states
-- The mail queue's recipient rows of campaign $2 (company $1) by state.
SELECT r.state::text AS state, count(*) AS count
FROM messages m JOIN recipients r ON r.message_id = m.id
WHERE m.company_id = $1 AND m.campaign_id = $2
GROUP BY r.state ORDER BY r.state;

-- name: campaign-report-bounces
-- Bounces of campaign $2 (company $1) by hard/soft and reason: events, and recipients (a
-- recipient row, else an address, counted once).
SELECT coalesce(hard, false) AS hard, reason, count(*) AS events,
       count(DISTINCT coalesce(recipient_id::text, address)) AS recipients
FROM bounce_events
WHERE company_id = $1 AND campaign_id = $2 AND kind = 'bounced'
GROUP BY 1, reason
ORDER BY recipients DESC, reason, hard;

-- name: campaign-report-feedback
-- Complaints, deferrals and mailto: unsubscribes of campaign $2 (company $1): events and
-- distinct addresses per kind.
SELECT kind::text, count(*) AS events, count(DISTINCT address) AS addresses
FROM bounce_events
WHERE company_id = $1 AND campaign_id = $2 AND kind <> 'bounced'
GROUP BY kind ORDER BY kind;

-- name: campaign-report-domains
-- Campaign $2 (company $1) per recipient domain: recipient rows by outcome, the MX host most
-- delivered to (the mailbox provider is read from it), and the recipients who opened or
-- clicked as people (machine events left out).
WITH rows AS (
    SELECT r.id, r.domain, r.state, r.last_mx
    FROM messages m JOIN recipients r ON r.message_id = m.id
    WHERE m.company_id = $1 AND m.campaign_id = $2
), engaged AS (
    SELECT recipient_id,
           bool_or(kind = 'open' AND NOT machine) AS opened,
           bool_or(kind = 'click' AND NOT machine) AS clicked
    FROM tracking_events
    WHERE company_id = $1 AND campaign_id = $2 AND recipient_id IS NOT NULL
      AND kind IN ('open', 'click')
    GROUP BY recipient_id
)
SELECT rows.domain, mode() WITHIN GROUP (ORDER BY rows.last_mx) AS mx,
       count(*) AS recipients,
       count(*) FILTER (WHERE rows.state = 'delivered') AS delivered,
       count(*) FILTER (WHERE rows.state = 'bounced') AS bounced,
       count(*) FILTER (WHERE rows.state = 'deferred') AS deferred,
       count(*) FILTER (WHERE e.opened) AS human_opened,
       count(*) FILTER (WHERE e.clicked) AS human_clicked
FROM rows LEFT JOIN engaged e ON e.recipient_id = rows.id
GROUP BY rows.domain
ORDER BY recipients DESC, rows.domain;
