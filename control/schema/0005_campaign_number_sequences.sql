-- Generated campaign codes take their number from a PostgreSQL sequence per company
-- (`campaign_numbers_<company id>`) instead of incrementing company_profiles.campaign_seq.
-- The increment locked the company's profile row until the creating transaction committed, so
-- a company's campaign creates ran one at a time; nextval() locks nothing that outlives the
-- call. A number taken by a transaction that then rolls back is skipped: codes may have gaps,
-- never duplicates.
--
-- A company's sequence is created at its first generated code, starting after the last
-- number company_profiles.campaign_seq handed out (which no longer moves), so codes continue
-- where they stopped.

COMMENT ON COLUMN company_profiles.campaign_seq IS
    'last campaign number handed out before 0005; the sequence campaign_numbers_<company_id> '
    'continues from it';

-- Company `company`'s next campaign number.
CREATE FUNCTION next_campaign_number(company bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    name constant text := 'campaign_numbers_' || company;
    numbers regclass := to_regclass(name);
BEGIN
    IF numbers IS NULL THEN
        -- First use: one creator at a time (held to commit; this happens once per company),
        -- and the others find the sequence once the lock is theirs.
        PERFORM pg_advisory_xact_lock(7411002, hashtext(name));
        numbers := to_regclass(name);
        IF numbers IS NULL THEN
            EXECUTE format(
                'CREATE SEQUENCE %I START WITH %s', name,
                coalesce((SELECT campaign_seq FROM company_profiles WHERE company_id = company), 0)
                + 1
            );
            numbers := to_regclass(name);
        END IF;
    END IF;
    RETURN nextval(numbers);
END
$$;
