-- The subscription preference page: a contact's lists and joining one.

-- name: list-preferences
-- The lists to offer address $2 of company $1 on the preference page (list $3: the message's),
-- by name, with its membership and list unsubscription (control/schema/0006).
SELECT list_id, list_name, description, member, unsubscribed
FROM list_preferences($1, $2, $3);

-- name: join-list
-- Address $2 of company $1 joins list $3 (its membership subscribed; control/schema/0006).
SELECT join_list($1, $2, $3);
