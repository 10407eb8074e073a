-- Campaigns go out (issue 10): the company blocklist the audience leaves out, and the frozen
-- version of a campaign that its queue rows are rendered from.

-- Addresses and whole domains a company never mails from a campaign (blueprint §6.2
-- `is_compliant_with_blacklist`), managed through /api/blocklist/.
CREATE TABLE company_blocklist (
    id                  bigserial PRIMARY KEY,
    company_id          bigint NOT NULL REFERENCES companies(id),
    entry               text NOT NULL,              -- lower-cased address or domain
    kind                text NOT NULL CHECK (kind IN ('address', 'domain')),
    reason              text NOT NULL DEFAULT '',
    created_by_user_id  bigint,                     -- NULL when added by an API key
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, entry)
);

-- What a campaign sends, frozen when it is sent: later edits of the campaign, its template or
-- its sender profile never change mail already queued. The delivery processes render from
-- this row; the enqueue moves `audience_cursor` in the same transaction that writes each
-- chunk of queue rows, so a send interrupted by a crash resumes where it stopped.
CREATE TABLE campaign_versions (
    id                   bigserial PRIMARY KEY,
    company_id           bigint NOT NULL REFERENCES companies(id),
    campaign_id          bigint NOT NULL,
    -- mta's message row the queue rows point at (category marketing, no body)
    message_id           bigint NOT NULL REFERENCES messages(id),
    campaign_name        text NOT NULL,
    campaign_code        text NOT NULL,
    subject              text NOT NULL,
    preheader            text,                      -- NULL: no hidden preview text
    from_name            text NOT NULL DEFAULT '',
    from_address         text NOT NULL,
    reply_to             text,                      -- NULL: replies go to from_address
    html                 text NOT NULL,
    text_part            text,                      -- NULL: HTML only
    css                  text,                      -- inlined into the HTML at render
    -- the audience rules it was sent with
    list_id              bigint NOT NULL,
    suppression_list_id  bigint,                    -- NULL: no suppression list
    segment_criteria     jsonb NOT NULL DEFAULT '{}',
    require_consent      boolean NOT NULL DEFAULT false,
    -- enqueue progress: list members with contact id up to the cursor have been considered
    audience_cursor      bigint NOT NULL DEFAULT 0,
    enqueued             bigint NOT NULL DEFAULT 0,
    enqueued_at          timestamptz,               -- NULL while the enqueue is under way
    created_at           timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (company_id, campaign_id) REFERENCES email_campaigns (company_id, id)
);
CREATE INDEX campaign_versions_campaign ON campaign_versions (campaign_id, id);
CREATE INDEX campaign_versions_enqueuing ON campaign_versions (id) WHERE enqueued_at IS NULL;

-- A campaign's audience: every subscribed member of list `list` with the first rule that
-- excludes it (NULL: it is mailed). One definition for the audience preview, the approval
-- threshold and the enqueue; a plain STABLE SQL function, so PostgreSQL inlines it into the
-- calling query and a `contact_id > cursor ORDER BY contact_id LIMIT n` reads the list's
-- primary key in order. Exclusions, first match wins (so the counts add up):
--   erased            personal data removed, or the address's hash is kept as erased
--   suppressed        on the company's suppression list (bounce, complaint, manual)
--   unsubscribed      from this list or from all the company's lists (mta's unsubscriptions)
--   no_consent        the company requires confirmed opt-in and the contact has not confirmed
--   suppression_list  a member of the campaign's suppression list
--   blocklisted       the address or its domain is on the company's blocklist
-- Addresses are unique among a company's live contacts (contacts_email), so the audience is
-- deduplicated by address by construction.
CREATE FUNCTION campaign_audience(company bigint, list bigint, suppression_list bigint,
                                  require_consent boolean)
RETURNS TABLE (contact_id bigint, email text, excluded_by text)
LANGUAGE sql STABLE AS $$
    SELECT c.id, c.email,
           CASE
               WHEN c.email IS NULL OR c.erased_at IS NOT NULL OR EXISTS (
                   SELECT 1 FROM suppression_hashes h
                   WHERE h.company_id = campaign_audience.company
                     AND h.address_hash = sha256(convert_to(c.email, 'UTF8')))
                   THEN 'erased'
               WHEN EXISTS (
                   SELECT 1 FROM suppressions s
                   WHERE s.company_id = campaign_audience.company AND s.address = c.email)
                   THEN 'suppressed'
               WHEN EXISTS (
                   SELECT 1 FROM unsubscriptions u
                   WHERE u.company_id = campaign_audience.company AND u.address = c.email
                     AND u.list_id IN (0, campaign_audience.list))
                   THEN 'unsubscribed'
               WHEN campaign_audience.require_consent AND c.opt_in_state <> 'confirmed'
                   THEN 'no_consent'
               WHEN campaign_audience.suppression_list IS NOT NULL AND EXISTS (
                   SELECT 1 FROM list_members x
                   WHERE x.list_id = campaign_audience.suppression_list
                     AND x.contact_id = c.id)
                   THEN 'suppression_list'
               WHEN EXISTS (
                   SELECT 1 FROM company_blocklist b
                   WHERE b.company_id = campaign_audience.company
                     AND b.entry IN (c.email, split_part(c.email, '@', 2)))
                   THEN 'blocklisted'
           END
    FROM list_members m
    JOIN contacts c ON c.id = m.contact_id AND c.company_id = m.company_id
    WHERE m.list_id = campaign_audience.list AND m.company_id = campaign_audience.company
      AND m.state = 'subscribed' AND NOT c.is_deleted
$$;

-- An optional sending rate per campaign (messages per hour), for domains still warming up:
-- the enqueue spreads the rows' first attempts over time at this pace. NULL: as fast as the
-- destinations' limits allow.
ALTER TABLE email_campaigns
    ADD COLUMN sending_rate_per_hour integer CHECK (sending_rate_per_hour > 0);
ALTER TABLE campaign_versions
    ADD COLUMN rate_per_hour integer CHECK (rate_per_hour > 0);
