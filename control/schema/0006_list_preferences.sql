-- The tracker's preference page (/p/TOKEN) lets a recipient choose which of a company's lists
-- to stay on. These two functions are the seam it uses, so the tracker reads and writes no
-- control table itself. Mail goes out only to a subscribed membership that mta's
-- unsubscriptions do not stop; the page changes both (this file: the membership).
-- (Arguments are written with the function's name: a bare `address` would be the column.)

-- The lists to show `address` of `company`: the live lists its contact is on (or was: one may
-- rejoin a list one left), the company's active public lists, and list `list` (the one the
-- message came from) when it is a live list of the company. `member`: the membership is
-- subscribed; `unsubscribed`: mta's unsubscriptions hold one for this very list.
CREATE FUNCTION list_preferences(company bigint, address text, list bigint)
RETURNS TABLE (list_id bigint, list_name text, description text, member boolean,
               unsubscribed boolean)
LANGUAGE sql STABLE AS $$
    WITH contact AS (
        SELECT c.id FROM contacts c
        WHERE c.company_id = list_preferences.company
          AND c.email = lower(list_preferences.address) AND NOT c.is_deleted
    )
    SELECT l.id, l.list_name::text, l.description,
           coalesce(m.state = 'subscribed', false),
           EXISTS (SELECT 1 FROM unsubscriptions u
                   WHERE u.company_id = list_preferences.company
                     AND u.address = lower(list_preferences.address) AND u.list_id = l.id)
    FROM email_lists l
    LEFT JOIN list_members m ON m.list_id = l.id AND m.contact_id = (SELECT id FROM contact)
    WHERE l.company_id = list_preferences.company AND NOT l.is_deleted
      AND (m.contact_id IS NOT NULL
           OR l.id = list_preferences.list
           OR (l.is_public AND l.is_active AND EXISTS (SELECT 1 FROM contact)))
    ORDER BY l.list_name, l.id
$$;

-- `address` (its live contact of `company`) joins list `list` through the preference page: a
-- membership is created, or a past one subscribed again. True when something changed; NULL
-- when there is no such contact or list, or nothing to change.
CREATE FUNCTION join_list(company bigint, address text, list bigint)
RETURNS boolean
LANGUAGE sql AS $$
    INSERT INTO list_members (company_id, list_id, contact_id)
    SELECT join_list.company, l.id, c.id
    FROM email_lists l
    JOIN contacts c ON c.company_id = l.company_id
    WHERE l.company_id = join_list.company AND l.id = join_list.list AND NOT l.is_deleted
      AND c.email = lower(join_list.address) AND NOT c.is_deleted
    ON CONFLICT (list_id, contact_id) DO UPDATE
        SET state = 'subscribed', subscribed_at = now(), unsubscribed_at = NULL
        WHERE list_members.state <> 'subscribed'
    RETURNING true
$$;
