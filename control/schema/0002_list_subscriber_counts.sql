-- A list's subscriber counts, in one place for every query that shows a list. Deleted contacts
-- are left out; whoever unsubscribed through mail (mta's unsubscriptions, from this list or
-- from all lists) counts as unsubscribed. A plain STABLE SQL function: PostgreSQL inlines it
-- into the calling query.
CREATE FUNCTION list_subscriber_counts(list bigint)
RETURNS TABLE (total_subscribers bigint, active_subscribers bigint, unsubscribed_count bigint)
LANGUAGE sql STABLE AS $$
    SELECT count(*),
           count(*) FILTER (WHERE m.state = 'subscribed' AND NOT u.unsubscribed),
           count(*) FILTER (WHERE m.state = 'unsubscribed' OR u.unsubscribed)
    FROM list_members m
    JOIN contacts c ON c.id = m.contact_id AND NOT c.is_deleted
    CROSS JOIN LATERAL (SELECT EXISTS (
        SELECT 1 FROM unsubscriptions x WHERE x.company_id = m.company_id
          AND x.address = c.email AND x.list_id IN (0, m.list_id)) AS unsubscribed) u
    WHERE m.list_id = list
$$;
