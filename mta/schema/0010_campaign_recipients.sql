-- Campaign mail in the queue (issue 10): one message row per campaign version with no body of
-- its own, and one small recipient row per contact. The delivery processes render each
-- recipient's body from the version and the contact at delivery time (DESIGN.md, "The mail
-- path"), so a million-recipient campaign is a million small rows, not a million bodies.

-- The control API's frozen campaign version this message is rendered from; NULL for mail
-- submitted over SMTP or HTTP (no foreign key: mta does not know control's tables).
ALTER TABLE messages ADD COLUMN campaign_version_id bigint;

-- The control API's contact a campaign recipient row was written for (personalisation at
-- delivery); NULL for submitted mail (no foreign key, as above).
ALTER TABLE recipients ADD COLUMN contact_id bigint;

-- A message's recipients not final yet: whether a campaign is finished, and pausing,
-- resuming or cancelling it, read only these (rows leave the index as they finish).
CREATE INDEX recipients_message_pending ON recipients (message_id)
    WHERE state IN ('queued', 'deferred', 'sending', 'held');

-- A recipient whose campaign was cancelled before it was attempted: final, never sent, and
-- counted apart from bounces (a cancel is the sender's decision, not the receiver's).
ALTER TYPE recipient_state ADD VALUE 'cancelled';
