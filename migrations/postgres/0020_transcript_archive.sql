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
ALTER TABLE transcripts ADD COLUMN archive_time timestamptz NULL;

-- Entries first_seq..next_seq-1 of an archived transcript, in blob `sha256`; the
-- first starts at start_offset (so a read from any seq finds its segment).
CREATE TABLE transcript_segments (
    namespace text COLLATE "C" NOT NULL,
    transcript_id text COLLATE "C" NOT NULL,
    first_seq bigint NOT NULL CHECK (first_seq >= 1),
    next_seq bigint NOT NULL,
    start_offset bigint NOT NULL CHECK (start_offset >= 0),
    sha256 text COLLATE "C" NOT NULL,
    compression text NOT NULL,
    size bigint NOT NULL CHECK (size > 0),
    stored_size bigint NOT NULL CHECK (stored_size > 0),
    CHECK (next_seq > first_seq),
    PRIMARY KEY (namespace, transcript_id, first_seq),
    FOREIGN KEY (namespace, transcript_id) REFERENCES transcripts (namespace, id)
        ON DELETE CASCADE
);
CREATE INDEX transcript_segments_blob ON transcript_segments (sha256);

-- What search needs of an archived entry (SearchTranscripts, SearchService).
CREATE TABLE archived_entries (
    namespace text COLLATE "C" NOT NULL,
    transcript_id text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    role text NOT NULL,
    content text NOT NULL,
    create_time timestamptz NOT NULL,
    search tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, content)) STORED,
    PRIMARY KEY (namespace, transcript_id, seq),
    FOREIGN KEY (namespace, transcript_id) REFERENCES transcripts (namespace, id)
        ON DELETE CASCADE
);
CREATE INDEX archived_entries_search ON archived_entries USING gin (search);

ALTER TABLE retention_policies DROP CONSTRAINT retention_policies_target_check;
ALTER TABLE retention_policies ADD CONSTRAINT retention_policies_target_check CHECK (
    target IN (
        'records', 'completed_jobs', 'dead_jobs', 'sealed_transcripts', 'artifacts',
        'audit_log', 'request_log', 'archive_transcripts'
    )
);
