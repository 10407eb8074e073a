-- Users' credentials, sessions, refresh tokens, login throttling, TOTP and API keys.

-- name: insert-user
-- Creates user $2 (lower-cased email) in company $1 with role $4 and argon2 hash $5.
INSERT INTO users (company_id, email, full_name, role, password_hash)
VALUES ($1, lower($2), $3, $4, $5)
RETURNING id, company_id, email, full_name, role, totp_enabled, is_active, created_at,
          updated_at, last_login_at;

-- name: user-for-login
-- The live user with login $1, with what the login check needs.
SELECT id, company_id, role, password_hash, totp_secret, totp_enabled, is_active
FROM users WHERE email = lower($1) AND NOT is_deleted;

-- name: user-by-id
SELECT id, company_id, role, password_hash, totp_secret, totp_enabled, is_active, email
FROM users WHERE id = $1 AND NOT is_deleted;

-- name: update-password-hash
-- Rehash on login when argon2's parameters changed.
UPDATE users SET password_hash = $2 WHERE id = $1;

-- name: touch-last-login
UPDATE users SET last_login_at = now() WHERE id = $1;

-- name: insert-session
-- $1 session id, $2 user, $3 TOTP verified, $4 client address
INSERT INTO sessions (id, user_id, mfa, ip) VALUES ($1, $2, $3, $4::inet);

-- name: insert-refresh-token
-- $1 token hash, $2 session, $3 lifetime in seconds
INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3));

-- name: use-refresh-token
-- Marks refresh token $1 used and returns its session; `reused` is true when it had already
-- been used (theft: the caller revokes the family), `live` when the session still stands.
WITH token AS (
    SELECT token_hash, session_id, expires_at, used_at FROM refresh_tokens
    WHERE token_hash = $1 FOR UPDATE
), mark AS (
    UPDATE refresh_tokens r SET used_at = now() FROM token
    WHERE r.token_hash = token.token_hash AND token.used_at IS NULL
)
SELECT t.session_id, t.used_at IS NOT NULL AS reused, t.expires_at < now() AS expired,
       s.revoked_at IS NULL AND u.is_active AND NOT u.is_deleted AS live,
       s.mfa, u.id AS user_id, u.company_id
FROM token t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id;

-- name: revoke-session
-- Revokes session (refresh-token family) $1 for reason $2; its access tokens stop working.
UPDATE sessions SET revoked_at = now(), revoked_reason = $2
WHERE id = $1 AND revoked_at IS NULL;

-- name: revoke-user-sessions
-- Revokes every session of user $1 (deactivated, deleted, password changed).
UPDATE sessions SET revoked_at = now(), revoked_reason = $2
WHERE user_id = $1 AND revoked_at IS NULL;

-- name: session-principal
-- Who holds live session $1: the per-request check behind every access token, so logout
-- and revocation take effect at once, as do role changes.
SELECT u.id AS user_id, u.company_id, u.role, s.mfa
FROM sessions s JOIN users u ON u.id = s.user_id
WHERE s.id = $1 AND s.revoked_at IS NULL AND u.is_active AND NOT u.is_deleted;

-- name: login-failures
-- Failures recorded for throttle keys $1 (text[]) in the current window of $2 seconds. Keys
-- (control/login_throttle.py): "user-ip:<login> <address>", "ip:<address>", "user:<login>".
SELECT key, failures,
       extract(epoch FROM window_started + make_interval(secs => $2) - now()) AS remaining
FROM login_failures
WHERE key = ANY($1) AND window_started > now() - make_interval(secs => $2);

-- name: record-login-failure
-- Counts one failure for each key of $1 (text[]); a window older than $2 seconds restarts.
INSERT INTO login_failures (key, failures, window_started)
SELECT k, 1, now() FROM unnest($1::text[]) AS k
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN login_failures.window_started > now() - make_interval(secs => $2)
                    THEN login_failures.failures + 1 ELSE 1 END,
    window_started = CASE WHEN login_failures.window_started > now() - make_interval(secs => $2)
                          THEN login_failures.window_started ELSE now() END;

-- name: clear-login-failures
DELETE FROM login_failures WHERE key = $1;

-- name: logged-in-from
-- Whether the user with login $1 opened a session from network $2 (cidr) in the last $3
-- seconds: such an address is the owner's, and the per-account login limit spares it.
SELECT EXISTS (
    SELECT 1 FROM users u JOIN sessions s ON s.user_id = u.id
    WHERE u.email = lower($1) AND NOT u.is_deleted
      AND s.ip <<= $2::cidr AND s.created_at > now() - make_interval(secs => $3)
);

-- name: set-totp-secret
-- Starts TOTP set-up for user $1: a new secret, not enforced until confirmed.
UPDATE users SET totp_secret = $2, totp_enabled = false, updated_at = now() WHERE id = $1;

-- name: enable-totp
UPDATE users SET totp_enabled = true, updated_at = now() WHERE id = $1;

-- name: insert-api-key
-- $1 company, $2 creator, $3 name, $4 prefix, $5 secret hash, $6 permissions
INSERT INTO api_keys (company_id, created_by_user_id, name, key_prefix, secret_hash, permissions)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, name, key_prefix, permissions, created_at, last_used_at, revoked_at;

-- name: api-key-principal
-- The live API key with prefix $1 and the role of the user who created it: a key never
-- holds more than its creator currently may.
SELECT k.id, k.company_id, k.secret_hash, k.permissions, u.role, u.id AS user_id
FROM api_keys k JOIN users u ON u.id = k.created_by_user_id
WHERE k.key_prefix = $1 AND k.revoked_at IS NULL AND u.is_active AND NOT u.is_deleted;

-- name: touch-api-key
-- Records a use of API key $1 now, unless its recorded use is younger than $2 seconds (another
-- daemon wrote it): control/key_usage.py calls it at most once a minute per key.
UPDATE api_keys SET last_used_at = now()
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2));

-- name: list-api-keys
-- Company $1's API keys, revoked ones included; $2 limit, $3 offset. `total` counts them all.
SELECT id, name, key_prefix, permissions, created_by_user_id, created_at, last_used_at, revoked_at,
       count(*) OVER () AS total
FROM api_keys WHERE company_id = $1 ORDER BY id LIMIT $2 OFFSET $3;

-- name: revoke-api-key
UPDATE api_keys SET revoked_at = now()
WHERE id = $1 AND company_id = $2 AND revoked_at IS NULL
RETURNING id, name, key_prefix, permissions, created_at, last_used_at, revoked_at;

-- name: get-api-key
SELECT id, name, key_prefix, permissions, created_by_user_id, created_at, last_used_at, revoked_at
FROM api_keys WHERE id = $1 AND company_id = $2;
