-- Announce every change that can alter who a credential stands for, so each control API
-- process can drop the principals it cached (control/principal_cache.py). Statement-level
-- triggers: one notification per statement, however many rows it touched, and PostgreSQL
-- folds identical notifications of one transaction into one, delivered at commit.
CREATE FUNCTION announce_principal_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sendmill_principal_changes', TG_TABLE_NAME);
    RETURN NULL;
END $$;

-- Sessions: revocation (logout, family revoked, user disabled). Inserts need no notice:
-- a new session has nothing cached yet.
CREATE TRIGGER sessions_principal_change AFTER UPDATE OF revoked_at, mfa, user_id OR DELETE
    ON sessions FOR EACH STATEMENT EXECUTE FUNCTION announce_principal_change();

-- Users: role, activity, deletion, company. Not last_login_at, written on every login.
CREATE TRIGGER users_principal_change
    AFTER UPDATE OF role, is_active, is_deleted, company_id OR DELETE
    ON users FOR EACH STATEMENT EXECUTE FUNCTION announce_principal_change();

-- API keys: revocation and scope. Not last_used_at.
CREATE TRIGGER api_keys_principal_change
    AFTER UPDATE OF revoked_at, permissions, company_id, created_by_user_id OR DELETE
    ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION announce_principal_change();
