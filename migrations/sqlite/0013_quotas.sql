-- depends: 0012_tokens
-- Per-namespace storage quotas (AdminService SetQuota; core/quotas.py says what
-- counts). used_bytes is kept by the triggers below, in the transaction of each
-- write, and only for namespaces that have a row here: the WHEN EXISTS probe of
-- this small table is all a namespace without a quota pays per written row.
CREATE TABLE namespace_quotas (
    namespace TEXT PRIMARY KEY,
    max_bytes INTEGER NOT NULL CHECK (max_bytes > 0),
    used_bytes INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL
) WITHOUT ROWID;

-- Holds a row only inside a transaction that must not be refused for a quota
-- (a counter repair of CheckIntegrity, which only makes the figure true): SQLite
-- has no session setting a trigger could read, and with one writer no other
-- transaction ever sees the row.
CREATE TABLE quota_exemptions (
    exempt INTEGER PRIMARY KEY CHECK (exempt = 1)
);

-- A statement that grows a namespace past its quota fails with this message
-- (storage/sqlite/errors.py turns it into QuotaExceeded) and the write's
-- transaction rolls back: nothing of it is stored.

CREATE TRIGGER records_quota_insert AFTER INSERT ON records
WHEN EXISTS (SELECT 1 FROM namespace_quotas WHERE namespace = new.namespace)
BEGIN
    UPDATE namespace_quotas SET used_bytes = used_bytes + length(CAST(new.data AS BLOB))
    WHERE namespace = new.namespace;
    SELECT RAISE(ABORT, 'STRATA_QUOTA_EXCEEDED')
    FROM namespace_quotas
    WHERE namespace = new.namespace AND used_bytes > max_bytes
      AND NOT EXISTS (SELECT 1 FROM quota_exemptions);
END;

CREATE TRIGGER records_quota_update AFTER UPDATE OF data ON records
WHEN EXISTS (SELECT 1 FROM namespace_quotas WHERE namespace = new.namespace)
BEGIN
    UPDATE namespace_quotas
    SET used_bytes = used_bytes + length(CAST(new.data AS BLOB)) - length(CAST(old.data AS BLOB))
    WHERE namespace = new.namespace;
    SELECT RAISE(ABORT, 'STRATA_QUOTA_EXCEEDED')
    FROM namespace_quotas
    WHERE namespace = new.namespace AND used_bytes > max_bytes
      AND length(CAST(new.data AS BLOB)) > length(CAST(old.data AS BLOB))
      AND NOT EXISTS (SELECT 1 FROM quota_exemptions);
END;

CREATE TRIGGER records_quota_delete AFTER DELETE ON records
WHEN EXISTS (SELECT 1 FROM namespace_quotas WHERE namespace = old.namespace)
BEGIN
    UPDATE namespace_quotas SET used_bytes = used_bytes - length(CAST(old.data AS BLOB))
    WHERE namespace = old.namespace;
END;

CREATE TRIGGER transcripts_quota_insert AFTER INSERT ON transcripts
WHEN new.size_bytes > 0
 AND EXISTS (SELECT 1 FROM namespace_quotas WHERE namespace = new.namespace)
BEGIN
    UPDATE namespace_quotas SET used_bytes = used_bytes + new.size_bytes
    WHERE namespace = new.namespace;
    SELECT RAISE(ABORT, 'STRATA_QUOTA_EXCEEDED')
    FROM namespace_quotas
    WHERE namespace = new.namespace AND used_bytes > max_bytes
      AND NOT EXISTS (SELECT 1 FROM quota_exemptions);
END;

CREATE TRIGGER transcripts_quota_update AFTER UPDATE OF size_bytes ON transcripts
WHEN new.size_bytes <> old.size_bytes
 AND EXISTS (SELECT 1 FROM namespace_quotas WHERE namespace = new.namespace)
BEGIN
    UPDATE namespace_quotas SET used_bytes = used_bytes + new.size_bytes - old.size_bytes
    WHERE namespace = new.namespace;
    SELECT RAISE(ABORT, 'STRATA_QUOTA_EXCEEDED')
    FROM namespace_quotas
    WHERE namespace = new.namespace AND used_bytes > max_bytes
      AND new.size_bytes > old.size_bytes
      AND NOT EXISTS (SELECT 1 FROM quota_exemptions);
END;

CREATE TRIGGER transcripts_quota_delete AFTER DELETE ON transcripts
WHEN old.size_bytes > 0
 AND EXISTS (SELECT 1 FROM namespace_quotas WHERE namespace = old.namespace)
BEGIN
    UPDATE namespace_quotas SET used_bytes = used_bytes - old.size_bytes
    WHERE namespace = old.namespace;
END;

CREATE TRIGGER artifacts_quota_insert AFTER INSERT ON artifacts
WHEN new.stored_size > 0
 AND EXISTS (SELECT 1 FROM namespace_quotas WHERE namespace = new.namespace)
BEGIN
    UPDATE namespace_quotas SET used_bytes = used_bytes + new.stored_size
    WHERE namespace = new.namespace;
    SELECT RAISE(ABORT, 'STRATA_QUOTA_EXCEEDED')
    FROM namespace_quotas
    WHERE namespace = new.namespace AND used_bytes > max_bytes
      AND NOT EXISTS (SELECT 1 FROM quota_exemptions);
END;

CREATE TRIGGER artifacts_quota_update AFTER UPDATE OF stored_size ON artifacts
WHEN new.stored_size <> old.stored_size
 AND EXISTS (SELECT 1 FROM namespace_quotas WHERE namespace = new.namespace)
BEGIN
    UPDATE namespace_quotas SET used_bytes = used_bytes + new.stored_size - old.stored_size
    WHERE namespace = new.namespace;
    SELECT RAISE(ABORT, 'STRATA_QUOTA_EXCEEDED')
    FROM namespace_quotas
    WHERE namespace = new.namespace AND used_bytes > max_bytes
      AND new.stored_size > old.stored_size
      AND NOT EXISTS (SELECT 1 FROM quota_exemptions);
END;

CREATE TRIGGER artifacts_quota_delete AFTER DELETE ON artifacts
WHEN old.stored_size > 0
 AND EXISTS (SELECT 1 FROM namespace_quotas WHERE namespace = old.namespace)
BEGIN
    UPDATE namespace_quotas SET used_bytes = used_bytes - old.stored_size
    WHERE namespace = old.namespace;
END;
