-- depends: 0012_tokens
-- Per-namespace storage quotas (AdminService SetQuota; core/quotas.py says what
-- counts). used_bytes is kept by the triggers below, in the transaction of each
-- write, and only for namespaces that have a row here; a statement that grows a
-- namespace past max_bytes fails with SQLSTATE SQ001 (storage/postgres/pool.py
-- turns it into QuotaExceeded) and its transaction rolls back.
--
-- The triggers are per statement, with transition tables: one call however many
-- rows the statement writes, so a Commit of 100 records or an import's COPY of a
-- million pays once, not per row. Measured with PostgreSQL 15 on the shared 2-core
-- host: a namespace without a quota pays one planned semi-join of the statement's
-- rows against this small table, about 20-60 us per statement (single-row INSERTs
-- in a server-side loop); end to end, CreateRecord's p50 stayed within the noise
-- of the same server with the triggers disabled (3.48 vs 3.45 ms; 4.85 vs 4.64 ms
-- in a second run at load 5). A COPY of 200k records took the same time with and
-- without the trigger (5.7 s vs 5.8 s), where a per-row trigger added 4-5 s. A
-- namespace with a quota pays the counter's UPDATE as well: about 0.2 ms more per
-- INSERT statement.
--
-- Every write of a namespace that has a quota updates its row, so such writes
-- queue on that row lock until they commit: exact accounting at the price of
-- serializing that namespace's writers (other namespaces are not affected).
CREATE TABLE namespace_quotas (
    namespace text COLLATE "C" PRIMARY KEY,
    max_bytes bigint NOT NULL CHECK (max_bytes > 0),
    used_bytes bigint NOT NULL,
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL
);

-- Add each namespace's change to its used_bytes; refuse one that grows past its
-- quota, unless the transaction set strata.quota_exempt (a counter repair of
-- CheckIntegrity, which only makes the figure true).
CREATE FUNCTION strata_quota_charge(names text[], deltas bigint[]) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    charged record;
BEGIN
    FOR charged IN
        UPDATE namespace_quotas AS q
        SET used_bytes = q.used_bytes + d.delta
        FROM unnest(names, deltas) AS d (namespace, delta)
        WHERE q.namespace = d.namespace AND d.delta <> 0
        RETURNING q.namespace, q.used_bytes, q.max_bytes, d.delta
    LOOP
        IF charged.delta > 0 AND charged.used_bytes > charged.max_bytes
           AND current_setting('strata.quota_exempt', true) IS DISTINCT FROM 'on' THEN
            RAISE EXCEPTION 'namespace % would store more than its quota of % bytes',
                charged.namespace, charged.max_bytes
                USING ERRCODE = 'SQ001', DETAIL = charged.namespace;
        END IF;
    END LOOP;
END $$;

-- Record data counts as GetUsage counts it: the bytes of its JSON text.
CREATE FUNCTION strata_quota_records() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    names text[];
    deltas bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(c.namespace), array_agg(c.bytes) INTO names, deltas
        FROM (SELECT a.namespace, sum(octet_length(a.data::text))::bigint AS bytes
              FROM added AS a
              WHERE a.namespace IN (SELECT namespace FROM namespace_quotas)
              GROUP BY a.namespace) AS c;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT array_agg(c.namespace), array_agg(c.bytes) INTO names, deltas
        FROM (SELECT r.namespace, sum(r.bytes)::bigint AS bytes
              FROM (SELECT a.namespace, octet_length(a.data::text) AS bytes FROM added AS a
                    UNION ALL
                    SELECT o.namespace, -octet_length(o.data::text) FROM removed AS o) AS r
              WHERE r.namespace IN (SELECT namespace FROM namespace_quotas)
              GROUP BY r.namespace) AS c;
    ELSE
        SELECT array_agg(c.namespace), array_agg(c.bytes) INTO names, deltas
        FROM (SELECT o.namespace, -sum(octet_length(o.data::text))::bigint AS bytes
              FROM removed AS o
              WHERE o.namespace IN (SELECT namespace FROM namespace_quotas)
              GROUP BY o.namespace) AS c;
    END IF;
    IF names IS NOT NULL THEN
        PERFORM strata_quota_charge(names, deltas);
    END IF;
    RETURN NULL;
END $$;

-- Transcript entries count through their transcript's size_bytes counter.
CREATE FUNCTION strata_quota_transcripts() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    names text[];
    deltas bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(c.namespace), array_agg(c.bytes) INTO names, deltas
        FROM (SELECT a.namespace, sum(a.size_bytes)::bigint AS bytes
              FROM added AS a
              WHERE a.namespace IN (SELECT namespace FROM namespace_quotas)
              GROUP BY a.namespace) AS c;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT array_agg(c.namespace), array_agg(c.bytes) INTO names, deltas
        FROM (SELECT r.namespace, sum(r.bytes)::bigint AS bytes
              FROM (SELECT a.namespace, a.size_bytes AS bytes FROM added AS a
                    UNION ALL
                    SELECT o.namespace, -o.size_bytes FROM removed AS o) AS r
              WHERE r.namespace IN (SELECT namespace FROM namespace_quotas)
              GROUP BY r.namespace) AS c;
    ELSE
        SELECT array_agg(c.namespace), array_agg(c.bytes) INTO names, deltas
        FROM (SELECT o.namespace, -sum(o.size_bytes)::bigint AS bytes
              FROM removed AS o
              WHERE o.namespace IN (SELECT namespace FROM namespace_quotas)
              GROUP BY o.namespace) AS c;
    END IF;
    IF names IS NOT NULL THEN
        PERFORM strata_quota_charge(names, deltas);
    END IF;
    RETURN NULL;
END $$;

-- Artifacts count as stored (compressed or not).
CREATE FUNCTION strata_quota_artifacts() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    names text[];
    deltas bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(c.namespace), array_agg(c.bytes) INTO names, deltas
        FROM (SELECT a.namespace, sum(a.stored_size)::bigint AS bytes
              FROM added AS a
              WHERE a.namespace IN (SELECT namespace FROM namespace_quotas)
              GROUP BY a.namespace) AS c;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT array_agg(c.namespace), array_agg(c.bytes) INTO names, deltas
        FROM (SELECT r.namespace, sum(r.bytes)::bigint AS bytes
              FROM (SELECT a.namespace, a.stored_size AS bytes FROM added AS a
                    UNION ALL
                    SELECT o.namespace, -o.stored_size FROM removed AS o) AS r
              WHERE r.namespace IN (SELECT namespace FROM namespace_quotas)
              GROUP BY r.namespace) AS c;
    ELSE
        SELECT array_agg(c.namespace), array_agg(c.bytes) INTO names, deltas
        FROM (SELECT o.namespace, -sum(o.stored_size)::bigint AS bytes
              FROM removed AS o
              WHERE o.namespace IN (SELECT namespace FROM namespace_quotas)
              GROUP BY o.namespace) AS c;
    END IF;
    IF names IS NOT NULL THEN
        PERFORM strata_quota_charge(names, deltas);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER records_quota_insert AFTER INSERT ON records
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION strata_quota_records();
CREATE TRIGGER records_quota_update AFTER UPDATE ON records
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION strata_quota_records();
CREATE TRIGGER records_quota_delete AFTER DELETE ON records
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION strata_quota_records();

CREATE TRIGGER transcripts_quota_insert AFTER INSERT ON transcripts
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION strata_quota_transcripts();
CREATE TRIGGER transcripts_quota_update AFTER UPDATE ON transcripts
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION strata_quota_transcripts();
CREATE TRIGGER transcripts_quota_delete AFTER DELETE ON transcripts
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION strata_quota_transcripts();

CREATE TRIGGER artifacts_quota_insert AFTER INSERT ON artifacts
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION strata_quota_artifacts();
CREATE TRIGGER artifacts_quota_update AFTER UPDATE ON artifacts
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION strata_quota_artifacts();
CREATE TRIGGER artifacts_quota_delete AFTER DELETE ON artifacts
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION strata_quota_artifacts();
