-- The login throttle that an attacker cannot turn into a lockout (control/login_throttle.py).

-- Failures now count under three kinds of key (0001's comment named two).
COMMENT ON COLUMN login_failures.key IS
    '"user-ip:<login> <address>" (an account from one client address), "ip:<address>" '
    '(an address over every account) or "user:<login>" (an account from everywhere); an IPv6 '
    'address is counted by its /64';

-- Every session of a user, revoked ones included: past the per-account limit, the throttle
-- still lets in an address the user logged in from before, and a session ended by logout
-- proves that as well as a live one. sessions_user covers live sessions only.
CREATE INDEX sessions_user_address ON sessions (user_id, ip);
