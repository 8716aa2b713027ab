-- Records, the idempotent-retry log and the audit log (PostgreSQL).
--
-- Every primary key starts with namespace, so a Citus deployment can distribute
-- every table by it without a schema change. Ids and names use the "C" collation:
-- byte order, the same order SQLite gives, and cheaper comparisons.

CREATE TABLE records (
    namespace text COLLATE "C" NOT NULL,
    collection text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    data jsonb NOT NULL,
    version bigint NOT NULL,
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL,
    expire_time timestamptz NULL,
    -- The string values of data (keys and numbers are not searchable), for
    -- SearchRecords: `search @@ websearch_to_tsquery('simple', ...)`.
    search tsvector GENERATED ALWAYS AS (
        jsonb_to_tsvector('simple'::regconfig, data, '["string"]'::jsonb)
    ) STORED,
    PRIMARY KEY (namespace, collection, id)
);

CREATE INDEX records_search ON records USING gin (search);

-- Filters compile `data.k = v` to `data @> '{"k": v}'`, which this index serves for
-- every key, so equality filters are indexed without declaring anything.
CREATE INDEX records_data ON records USING gin (data jsonb_path_ops);

-- purge_expired walks expiring rows oldest first; most rows never expire.
CREATE INDEX records_expire_time ON records (expire_time) WHERE expire_time IS NOT NULL;

CREATE TABLE request_log (
    namespace text COLLATE "C" NOT NULL,
    request_id text COLLATE "C" NOT NULL,
    fingerprint text NOT NULL,
    -- The Commit's results (core.codec.results_to_json); NULL only inside the
    -- transaction that claimed the request_id, never once committed.
    result jsonb NULL,
    create_time timestamptz NOT NULL,
    PRIMARY KEY (namespace, request_id)
);

CREATE TABLE audit_log (
    namespace text COLLATE "C" NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    time timestamptz NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    entity text NOT NULL,
    entity_id text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    changed_fields jsonb NOT NULL,
    request_id text NULL,
    PRIMARY KEY (namespace, seq)
);

CREATE INDEX audit_log_entity ON audit_log (namespace, entity, entity_id);
