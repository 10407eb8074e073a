-- Shared connection limits: a site's `connections` limit holds across every delivery process and
-- daemon on this database. A connection holds one numbered slot under a short lease, renewed
-- while it is open; a killed node's slots come free when their leases run out.
CREATE TABLE site_connection_slots (
    site         text NOT NULL,
    slot         integer NOT NULL,
    node         text NOT NULL,
    lease_until  timestamptz NOT NULL,
    PRIMARY KEY (site, slot)
);
CREATE INDEX site_connection_slots_node ON site_connection_slots (node);
