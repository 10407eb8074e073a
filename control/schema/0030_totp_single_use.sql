-- A second factor that cannot be replaced or replayed (issue 12.3): a new TOTP secret waits in
-- totp_pending_secret until a code from it is confirmed (the enabled one stays in force
-- meanwhile), and the last time step a code was accepted for is kept, so each code counts once.
ALTER TABLE users
    ADD COLUMN totp_pending_secret text,             -- base32; NULL when no set-up is under way
    ADD COLUMN totp_last_step      bigint;           -- RFC 6238 T of the last code accepted
