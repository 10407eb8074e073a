-- Inbound mail to the bounce domain, stored before the bounce processor reads it.

-- name: store-inbound-message
-- Keeps one message received for the bounce domain. $1 recipient id or NULL, $2 envelope
-- sender, $3 envelope recipient, $4 raw message.
INSERT INTO inbound_messages (recipient_id, envelope_from, envelope_to, body)
VALUES ((SELECT id FROM recipients WHERE id = $1), $2, $3, $4::bytea)
RETURNING id;
