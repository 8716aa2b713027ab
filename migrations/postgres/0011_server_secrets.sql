-- depends: 0010_record_deletes
-- Secrets that every replica on this database shares, made by the first one that
-- needs one (the others read it): `page_token_key` signs page tokens
-- (core/paging.py) when STRATA_PAGE_TOKEN_KEY is not set. Server-wide, not
-- tenant data, so no namespace (a Citus deployment keeps it as a reference
-- table); never exported.
CREATE TABLE server_secrets (
    name text PRIMARY KEY,
    value bytea NOT NULL CHECK (octet_length(value) >= 16),
    create_time timestamptz NOT NULL DEFAULT now()
);
