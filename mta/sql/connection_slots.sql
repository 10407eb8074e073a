-- Connection slots: how many SMTP connections each daemon holds to a site, cluster-wide.

-- name: take-connection-slot
-- Takes the lowest free connection slot of site $1 (slots 0..$2-1) for node $3 for $4 seconds.
-- A slot whose lease ran out is free. Two nodes racing for one slot: the second finds it taken
-- (the conflict clause re-checks the lease under the row lock) and gets no row, so tries later.
WITH free AS (
    SELECT s.slot
    FROM generate_series(0, $2::int - 1) AS s(slot)
    WHERE NOT EXISTS (
        SELECT 1 FROM site_connection_slots c
        WHERE c.site = $1 AND c.slot = s.slot AND c.lease_until > clock_timestamp())
    ORDER BY s.slot
    LIMIT 1
)
INSERT INTO site_connection_slots AS c (site, slot, node, lease_until)
SELECT $1, free.slot, $3, clock_timestamp() + make_interval(secs => $4) FROM free
ON CONFLICT (site, slot) DO UPDATE
    SET node = excluded.node, lease_until = excluded.lease_until
    WHERE c.lease_until <= clock_timestamp()
RETURNING slot;

-- name: release-connection-slot
-- Gives back slot $2 of site $1 held by node $3 (the connection closed).
DELETE FROM site_connection_slots WHERE site = $1 AND slot = $2 AND node = $3;

-- name: renew-connection-slots
-- Extends by $2 seconds the slots of node $1 whose connections are open ($3 sites and $4 slots,
-- pairwise), and frees the node's other slots: releases lost to a database error, takes whose
-- answer never arrived (issue 11). A slot taken (or renewed) less than $5 seconds ago is left
-- alone: its take may be on its way back to the node.
WITH live AS (
    SELECT * FROM unnest($3::text[], $4::int[]) AS l(site, slot)
), freed AS (
    DELETE FROM site_connection_slots c
    WHERE c.node = $1
      AND c.lease_until < clock_timestamp() + make_interval(secs => $2::float8 - $5::float8)
      AND NOT EXISTS (SELECT 1 FROM live WHERE live.site = c.site AND live.slot = c.slot)
)
UPDATE site_connection_slots c SET lease_until = clock_timestamp() + make_interval(secs => $2)
FROM live
WHERE c.node = $1 AND c.site = live.site AND c.slot = live.slot;

-- name: release-node-connection-slots
-- Frees every slot node $1 holds: at start-up (a restarted node holds no connection) and at stop.
DELETE FROM site_connection_slots WHERE node = $1;
