-- Artifacts (PostgreSQL): metadata rows naming content-addressed blobs, and upload pins.
-- depends: 0002_queue
--
-- The bytes live in the blob store under blobs/sha256/ab/cd/<sha256>; many rows may
-- name one blob. Primary keys start with namespace (Citus distribution column).

CREATE TABLE artifacts (
    namespace text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    owner text COLLATE "C" NOT NULL,
    kind text COLLATE "C" NOT NULL,
    name text NOT NULL,
    content_type text NOT NULL,
    sha256 text COLLATE "C" NOT NULL,
    size bigint NOT NULL,
    stored_size bigint NOT NULL,
    compression text NOT NULL CHECK (compression IN ('none', 'zstd')),
    labels jsonb NOT NULL,
    create_time timestamptz NOT NULL,
    PRIMARY KEY (namespace, id)
);

-- ListArtifacts by owner (and kind), in id (= creation) order.
CREATE INDEX artifacts_owner ON artifacts (namespace, owner, kind, id);

-- Is a blob referenced (the sweep, FindMissingBlobs)?
CREATE INDEX artifacts_sha256 ON artifacts (sha256, namespace);

-- An upload between publishing its blob and inserting its row holds a pin, so the
-- orphan sweep leaves that blob alone; expired pins are left by crashed servers.
CREATE TABLE blob_pins (
    namespace text COLLATE "C" NOT NULL,
    upload_id text COLLATE "C" NOT NULL,
    sha256 text COLLATE "C" NOT NULL,
    expire_time timestamptz NOT NULL,
    PRIMARY KEY (namespace, upload_id)
);

CREATE INDEX blob_pins_sha256 ON blob_pins (sha256, expire_time);
