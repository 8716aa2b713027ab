-- depends: 0011_server_secrets
-- Bearer tokens (AdminService.CreateToken, `strata token create`; core/tokens.py).
--
-- A global table, the one exception to "every primary key starts with the
-- namespace": a token belongs to no namespace (it lists the ones it covers, or
-- '*'), and every replica must find any token by its hash. On Citus it would be a
-- reference table (copied to every node), which small tables read everywhere are.
-- The secret itself is never stored: secret_hash is its SHA-256 in hex.
CREATE TABLE tokens (
    name text COLLATE "C" NOT NULL PRIMARY KEY,
    secret_hash text COLLATE "C" NOT NULL UNIQUE,
    role text NOT NULL CHECK (role IN ('reader', 'writer', 'admin')),
    namespaces text[] NOT NULL CHECK (cardinality(namespaces) > 0),
    create_time timestamptz NOT NULL,
    expire_time timestamptz NULL,
    revoke_time timestamptz NULL,
    rate_limit double precision NOT NULL CHECK (rate_limit >= 0),
    burst integer NOT NULL CHECK (burst >= 0),
    created_by text NOT NULL
);
