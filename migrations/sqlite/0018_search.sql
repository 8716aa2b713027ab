-- depends: 0013_quotas
-- SearchService.Search (SQLite): an index of artifacts for one search across kinds.
--
-- Records and transcript entries are searched through their existing FTS5 indexes
-- (0001, 0003). Artifacts are WITHOUT ROWID, which FTS5 cannot key by, so each
-- artifact gets a row in artifact_search, kept by the triggers below in the
-- transaction that writes the artifact: its name, its labels flattened to
-- "key value ...", and (set after upload by services/search_service.py) the first
-- STRATA_SEARCH_TEXT_MAX_BYTES of a text artifact's content. The FTS5 index over
-- it is external-content: the text is stored once, here.

CREATE TABLE artifact_search (
    rowid INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    artifact_id TEXT NOT NULL,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    body TEXT NULL,
    UNIQUE (namespace, artifact_id)
);

CREATE VIRTUAL TABLE artifact_search_fts USING fts5 (
    name, labels, body, content = 'artifact_search', content_rowid = 'rowid',
    tokenize = 'unicode61'
);

CREATE TRIGGER artifact_search_fts_insert AFTER INSERT ON artifact_search
BEGIN
    INSERT INTO artifact_search_fts (rowid, name, labels, body)
    VALUES (new.rowid, new.name, new.labels, new.body);
END;

CREATE TRIGGER artifact_search_fts_delete AFTER DELETE ON artifact_search
BEGIN
    INSERT INTO artifact_search_fts (artifact_search_fts, rowid, name, labels, body)
    VALUES ('delete', old.rowid, old.name, old.labels, old.body);
END;

CREATE TRIGGER artifact_search_fts_update AFTER UPDATE ON artifact_search
BEGIN
    INSERT INTO artifact_search_fts (artifact_search_fts, rowid, name, labels, body)
    VALUES ('delete', old.rowid, old.name, old.labels, old.body);
    INSERT INTO artifact_search_fts (rowid, name, labels, body)
    VALUES (new.rowid, new.name, new.labels, new.body);
END;

CREATE TRIGGER artifacts_search_insert AFTER INSERT ON artifacts
BEGIN
    INSERT INTO artifact_search (namespace, artifact_id, name, labels)
    VALUES (
        new.namespace,
        new.id,
        new.name,
        coalesce((SELECT group_concat(key || ' ' || value, ' ') FROM json_each(new.labels)), '')
    );
END;

CREATE TRIGGER artifacts_search_delete AFTER DELETE ON artifacts
BEGIN
    DELETE FROM artifact_search WHERE namespace = old.namespace AND artifact_id = old.id;
END;

-- The artifacts stored before this migration: searchable by name and labels (their
-- text is not read back from the blob store here).
INSERT INTO artifact_search (namespace, artifact_id, name, labels)
SELECT
    namespace,
    id,
    name,
    coalesce((SELECT group_concat(key || ' ' || value, ' ') FROM json_each(artifacts.labels)), '')
FROM artifacts;
