-- Transcripts (SQLite): append-only logs of entries, with full-text search.
-- depends: 0002_queue
--
-- Times are INTEGER microseconds since the Unix epoch (UTC); JSON is TEXT.
-- An entry's start_offset is the sum of the sizes of the entries before it
-- (core.transcripts): strictly increasing with seq, so a reader takes "the
-- entries starting within the next N bytes" as one range of the offset index.

CREATE TABLE transcripts (
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    labels TEXT NOT NULL CHECK (json_valid(labels)),
    -- The seq the next entry gets: entries are 1..next_seq-1, with no gap.
    next_seq INTEGER NOT NULL CHECK (next_seq >= 1),
    -- Sum of the entries' sizes: the next entry's start_offset.
    size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    seal_time INTEGER NULL,
    PRIMARY KEY (namespace, id)
) WITHOUT ROWID;

-- ListTranscripts, newest first, of every owner or of one.
CREATE INDEX transcripts_list ON transcripts (namespace, create_time, id);
CREATE INDEX transcripts_owner ON transcripts (namespace, owner, create_time, id);

CREATE TABLE transcript_entries (
    -- Declared INTEGER PRIMARY KEY so the rowid is stable across VACUUM: the
    -- full-text index below is keyed by it.
    rowid INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    transcript_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    start_offset INTEGER NOT NULL,
    size INTEGER NOT NULL CHECK (size > 0),
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    data TEXT NULL CHECK (data IS NULL OR json_valid(data)),
    create_time INTEGER NOT NULL,
    UNIQUE (namespace, transcript_id, seq)
);

-- ReadTranscript batches: entries starting within a byte range, in seq order.
CREATE UNIQUE INDEX transcript_entries_offset
    ON transcript_entries (namespace, transcript_id, start_offset);

-- SearchTranscripts over content. External content: the text stays in
-- transcript_entries (snippet() reads it from there by rowid). Entries never
-- change; storage/sqlite/transcripts.py indexes each append's entries with one
-- INSERT ... SELECT and unindexes a transcript's entries before deleting them
-- (as set operations: per-row triggers made appends five times slower).
CREATE VIRTUAL TABLE transcript_entries_fts USING fts5 (
    content, content = 'transcript_entries', content_rowid = 'rowid', tokenize = 'unicode61'
);
