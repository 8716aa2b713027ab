-- depends: 0016_retention_of_everything
-- The archive tier of sealed transcripts (docs/transcripts.md, "Tiers"). An
-- archived transcript keeps its row (archive_time set) and its search rows
-- (archived_entries, indexed like transcript_entries); its entries live in
-- compressed segment objects in the blob store, listed in transcript_segments,
-- and its transcript_entries rows are gone. A segment's blob is published before
-- the transaction that inserts its row, and the orphan-blob sweep keeps every blob
-- a segment names. Deleting the transcript takes its segment and search rows with
-- it (the sweep then takes the blobs no segment names). Retention gains the
-- target that archives sealed transcripts.
ALTER TABLE transcripts ADD COLUMN archive_time INTEGER NULL;

-- Entries first_seq..next_seq-1 of an archived transcript, in blob `sha256`; the
-- first starts at start_offset (so a read from any seq finds its segment).
CREATE TABLE transcript_segments (
    namespace TEXT NOT NULL,
    transcript_id TEXT NOT NULL,
    first_seq INTEGER NOT NULL CHECK (first_seq >= 1),
    next_seq INTEGER NOT NULL,
    start_offset INTEGER NOT NULL CHECK (start_offset >= 0),
    sha256 TEXT NOT NULL,
    compression TEXT NOT NULL,
    size INTEGER NOT NULL CHECK (size > 0),
    stored_size INTEGER NOT NULL CHECK (stored_size > 0),
    CHECK (next_seq > first_seq),
    PRIMARY KEY (namespace, transcript_id, first_seq),
    FOREIGN KEY (namespace, transcript_id) REFERENCES transcripts (namespace, id)
        ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX transcript_segments_blob ON transcript_segments (sha256);

-- What search needs of an archived entry (SearchTranscripts, SearchService).
CREATE TABLE archived_entries (
    rowid INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    transcript_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    UNIQUE (namespace, transcript_id, seq),
    FOREIGN KEY (namespace, transcript_id) REFERENCES transcripts (namespace, id)
        ON DELETE CASCADE
);
CREATE VIRTUAL TABLE archived_entries_fts USING fts5 (
    content, content = 'archived_entries', content_rowid = 'rowid', tokenize = 'unicode61'
);
-- Archiving indexes its rows in bulk; any delete (of the transcript, by cascade, or
-- by a restore) takes them out of the index here.
CREATE TRIGGER archived_entries_fts_delete AFTER DELETE ON archived_entries
BEGIN
    INSERT INTO archived_entries_fts (archived_entries_fts, rowid, content)
    VALUES ('delete', old.rowid, old.content);
END;

CREATE TABLE retention_policies_0020 (
    namespace TEXT NOT NULL,
    target TEXT NOT NULL CHECK (
        target IN (
            'records', 'completed_jobs', 'dead_jobs', 'sealed_transcripts', 'artifacts',
            'audit_log', 'request_log', 'archive_transcripts'
        )
    ),
    selector TEXT NOT NULL,
    max_age_us INTEGER NOT NULL CHECK (max_age_us > 0),
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    PRIMARY KEY (namespace, target, selector)
);
INSERT INTO retention_policies_0020 SELECT * FROM retention_policies;
DROP TABLE retention_policies;
ALTER TABLE retention_policies_0020 RENAME TO retention_policies;
