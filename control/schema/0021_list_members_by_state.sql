-- Segments' list conditions (issue 15) read a list's subscribed members with the company
-- check: from this index alone (an index-only scan), not from list_members rows scattered
-- over the table in the order contacts joined (1.8 s for 87,500 members of a list of a
-- company of 1,000,000 contacts, cold; bench/segments.py).
CREATE INDEX list_members_by_state ON list_members (list_id, state)
    INCLUDE (contact_id, company_id);
