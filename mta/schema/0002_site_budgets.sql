-- Shared delivery budgets: one token bucket per destination site with a rate limit, so the
-- limit holds across every delivery process and daemon on this database.
CREATE TABLE site_budgets (
    site          text PRIMARY KEY,
    tokens        float8 NOT NULL,
    last_granted  integer NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
