-- Records, their full-text index, idempotent-retry log and audit log (SQLite).
--
-- Times are INTEGER microseconds since the Unix epoch (UTC); JSON is TEXT.

CREATE TABLE records (
    -- Declared INTEGER PRIMARY KEY so the rowid is stable across VACUUM: the
    -- full-text index below is keyed by it.
    rowid INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL CHECK (json_valid(data)),
    version INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    expire_time INTEGER NULL,
    UNIQUE (namespace, collection, id)
);

CREATE INDEX records_expire_time ON records (expire_time) WHERE expire_time IS NOT NULL;

-- Contentless: the text lives in records.data; the triggers feed the index the
-- string values of data, and delete with the same (deterministic) text.
CREATE VIRTUAL TABLE records_fts USING fts5 (body, content = '', tokenize = 'unicode61');

CREATE TRIGGER records_fts_insert AFTER INSERT ON records
BEGIN
    INSERT INTO records_fts (rowid, body)
    VALUES (
        new.rowid,
        (SELECT group_concat(value, ' ') FROM json_tree(new.data) WHERE type = 'text')
    );
END;

CREATE TRIGGER records_fts_delete AFTER DELETE ON records
BEGIN
    INSERT INTO records_fts (records_fts, rowid, body)
    VALUES (
        'delete',
        old.rowid,
        (SELECT group_concat(value, ' ') FROM json_tree(old.data) WHERE type = 'text')
    );
END;

CREATE TRIGGER records_fts_update AFTER UPDATE OF data ON records
WHEN old.data IS NOT new.data
BEGIN
    INSERT INTO records_fts (records_fts, rowid, body)
    VALUES (
        'delete',
        old.rowid,
        (SELECT group_concat(value, ' ') FROM json_tree(old.data) WHERE type = 'text')
    );
    INSERT INTO records_fts (rowid, body)
    VALUES (
        new.rowid,
        (SELECT group_concat(value, ' ') FROM json_tree(new.data) WHERE type = 'text')
    );
END;

CREATE TABLE request_log (
    namespace TEXT NOT NULL,
    request_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    result TEXT NOT NULL CHECK (json_valid(result)),
    create_time INTEGER NOT NULL,
    PRIMARY KEY (namespace, request_id)
) WITHOUT ROWID;

CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    time INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    changed_fields TEXT NOT NULL CHECK (json_valid(changed_fields)),
    request_id TEXT NULL
);

CREATE INDEX audit_log_entity ON audit_log (namespace, entity, entity_id);
