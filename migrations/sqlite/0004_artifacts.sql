-- Artifacts (SQLite): metadata rows naming content-addressed blobs, and upload pins.
-- depends: 0002_queue
--
-- Times are INTEGER microseconds since the Unix epoch (UTC); labels are JSON TEXT.
-- The bytes live in the blob store under blobs/sha256/ab/cd/<sha256>; many rows may
-- name one blob.

CREATE TABLE artifacts (
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    stored_size INTEGER NOT NULL,
    compression TEXT NOT NULL CHECK (compression IN ('none', 'zstd')),
    labels TEXT NOT NULL CHECK (json_valid(labels)),
    create_time INTEGER NOT NULL,
    PRIMARY KEY (namespace, id)
) WITHOUT ROWID;

-- ListArtifacts by owner (and kind), in id (= creation) order.
CREATE INDEX artifacts_owner ON artifacts (namespace, owner, kind, id);

-- Is a blob referenced (the sweep, FindMissingBlobs)?
CREATE INDEX artifacts_sha256 ON artifacts (sha256, namespace);

-- An upload between publishing its blob and inserting its row holds a pin, so the
-- orphan sweep leaves that blob alone; expired pins are left by crashed servers.
CREATE TABLE blob_pins (
    namespace TEXT NOT NULL,
    upload_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    expire_time INTEGER NOT NULL,
    PRIMARY KEY (namespace, upload_id)
) WITHOUT ROWID;

CREATE INDEX blob_pins_sha256 ON blob_pins (sha256, expire_time);
