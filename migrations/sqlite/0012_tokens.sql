-- depends: 0011_server_secrets
-- Bearer tokens (AdminService.CreateToken, `strata token create`; core/tokens.py).
--
-- A global table, the one exception to "every primary key starts with the
-- namespace": a token belongs to no namespace (it lists the ones it covers, or
-- '*'), and every server must find any token by its hash. The secret itself is
-- never stored: secret_hash is its SHA-256 in hex. namespaces is a JSON array of
-- names; times are microseconds since the epoch, as everywhere in this schema.
CREATE TABLE tokens (
    name TEXT NOT NULL PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('reader', 'writer', 'admin')),
    namespaces TEXT NOT NULL CHECK (json_array_length(namespaces) > 0),
    create_time INTEGER NOT NULL,
    expire_time INTEGER NULL,
    revoke_time INTEGER NULL,
    rate_limit REAL NOT NULL CHECK (rate_limit >= 0),
    burst INTEGER NOT NULL CHECK (burst >= 0),
    created_by TEXT NOT NULL
);
