-- Durable job queue (SQLite): jobs, per-queue settings and reclaimed lease expiries.
-- depends: 0001_records
--
-- Times are INTEGER microseconds since the Unix epoch (UTC); JSON is TEXT.
-- States are core.queue.Stored; what callers see (available, scheduled, ...) is
-- derived at read time from state, run_time and lease_expire_time.

CREATE TABLE jobs (
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    queue TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('ready', 'leased', 'completed', 'dead', 'cancelled')),
    payload TEXT NOT NULL CHECK (json_valid(payload)),
    priority INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    run_time INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    lease_expire_time INTEGER NULL,
    finish_time INTEGER NULL,
    retry_backoff_us INTEGER NULL,
    unique_key TEXT NULL,
    lease_token TEXT NULL,
    last_error TEXT NULL,
    result TEXT NULL CHECK (result IS NULL OR json_valid(result)),
    PRIMARY KEY (namespace, id)
);

-- Ready jobs in lease order.
CREATE INDEX jobs_ready ON jobs (namespace, queue, priority DESC, run_time, create_time, id)
WHERE state = 'ready';

-- Leased jobs by expiry, so the lease query can reclaim expired leases.
CREATE INDEX jobs_leased ON jobs (namespace, queue, lease_expire_time)
WHERE state = 'leased';

-- ListJobs keyset order.
CREATE INDEX jobs_list ON jobs (namespace, queue, create_time, id);

-- At most one unfinished job per unique_key and queue.
CREATE UNIQUE INDEX jobs_unique_key ON jobs (namespace, queue, unique_key)
WHERE unique_key IS NOT NULL AND state IN ('ready', 'leased');

-- purge_completed.
CREATE INDEX jobs_completed ON jobs (finish_time) WHERE state = 'completed';

CREATE TABLE queue_settings (
    namespace TEXT NOT NULL,
    queue TEXT NOT NULL,
    paused INTEGER NOT NULL CHECK (paused IN (0, 1)),
    PRIMARY KEY (namespace, queue)
) WITHOUT ROWID;

-- One row per expired lease reclaimed, for GetQueueStats.
CREATE TABLE lease_expiries (
    namespace TEXT NOT NULL,
    queue TEXT NOT NULL,
    job_id TEXT NOT NULL,
    time INTEGER NOT NULL
);

CREATE INDEX lease_expiries_time ON lease_expiries (namespace, queue, time);
