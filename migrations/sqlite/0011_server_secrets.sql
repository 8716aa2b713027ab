-- depends: 0010_record_deletes
-- Secrets that every server process on this database shares, made by the first
-- process that needs one (the others read it): `page_token_key` signs page tokens
-- (core/paging.py) when STRATA_PAGE_TOKEN_KEY is not set. Server-wide, not
-- tenant data, so no namespace; never exported.
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL CHECK (length(value) >= 16),
    create_time INTEGER NOT NULL
);
