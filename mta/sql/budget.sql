-- Per-site send budgets (token buckets) shared by every daemon on the database.

-- name: take-site-tokens
-- Takes up to $4 whole tokens from site $1's bucket (refilled at $2 tokens per second, holding
-- at most $3), creating the bucket full on first use. Returns how many were granted and what
-- is left; the row lock serialises concurrent takers across daemons.
INSERT INTO site_budgets AS b (site, tokens, last_granted, updated_at)
VALUES ($1, $3 - least($4, floor($3)), least($4, floor($3)), clock_timestamp())
ON CONFLICT (site) DO UPDATE SET
    last_granted = least($4, floor(least($3, b.tokens
        + extract(epoch FROM clock_timestamp() - b.updated_at) * $2))),
    tokens = least($3, b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * $2)
        - least($4, floor(least($3, b.tokens
        + extract(epoch FROM clock_timestamp() - b.updated_at) * $2))),
    updated_at = clock_timestamp()
RETURNING last_granted, tokens;
