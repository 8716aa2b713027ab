-- Transcripts (PostgreSQL): append-only logs of entries, with full-text search.
-- depends: 0002_queue
--
-- As in 0001, every primary key starts with namespace and names use the "C"
-- collation. An entry's start_offset is the sum of the sizes of the entries
-- before it (core.transcripts): strictly increasing with seq, so a reader takes
-- "the entries starting within the next N bytes" as one range of the offset
-- index. Appends lock only their transcript's row (UPDATE ... next_seq), so
-- appends to one transcript queue up and appends to others run in parallel.

CREATE TABLE transcripts (
    namespace text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    owner text COLLATE "C" NOT NULL,
    title text NOT NULL,
    labels jsonb NOT NULL,
    -- The seq the next entry gets: entries are 1..next_seq-1, with no gap.
    next_seq bigint NOT NULL CHECK (next_seq >= 1),
    -- Sum of the entries' sizes: the next entry's start_offset.
    size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL,
    seal_time timestamptz NULL,
    PRIMARY KEY (namespace, id)
);

-- ListTranscripts, newest first (scanned backwards), of every owner or of one.
CREATE INDEX transcripts_list ON transcripts (namespace, create_time, id);
CREATE INDEX transcripts_owner ON transcripts (namespace, owner, create_time, id);

CREATE TABLE transcript_entries (
    namespace text COLLATE "C" NOT NULL,
    transcript_id text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    start_offset bigint NOT NULL,
    size integer NOT NULL CHECK (size > 0),
    role text NOT NULL,
    content text NOT NULL,
    data jsonb NULL,
    create_time timestamptz NOT NULL,
    -- SearchTranscripts: `search @@ plainto_tsquery('simple', ...)`.
    search tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, content)) STORED,
    PRIMARY KEY (namespace, transcript_id, seq)
);

-- ReadTranscript batches: entries starting within a byte range, in seq order.
CREATE UNIQUE INDEX transcript_entries_offset
    ON transcript_entries (namespace, transcript_id, start_offset);

CREATE INDEX transcript_entries_search ON transcript_entries USING gin (search);
