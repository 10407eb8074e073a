-- Lookups the bounce processor makes on the mail path's tables when a report lacks its VERP
-- token (issue 4, listmonk#946): by the original Message-ID, and by address for provider
-- webhooks. Partial on non-NULL Message-IDs; the address index is on the lower-cased form the
-- queries compare.
CREATE INDEX IF NOT EXISTS messages_message_id ON messages (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS recipients_lower_recipient ON recipients (lower(recipient));
