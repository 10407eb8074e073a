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
-- Extends by $2 seconds every slot node $1 holds (its connections are still open).
UPDATE site_connection_slots SET lease_until = clock_timestamp() + make_interval(secs => $2)
WHERE node = $1;

-- name: release-node-connection-slots
-- Frees every slot node $1 holds: at start-up (a restarted node holds no connection) and at stop.
DELETE FROM site_connection_slots WHERE node = $1;
