-- The durable job queue (PostgreSQL): jobs, per-queue settings, reclaimed leases.
-- depends: 0001_records
--
-- As in 0001, every primary key starts with namespace and names use the "C"
-- collation. A job's stored state is one of core.queue.Stored; what callers see
-- (AVAILABLE, SCHEDULED, ...) is derived from it and the time at read time.

CREATE TABLE jobs (
    namespace text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    queue text COLLATE "C" NOT NULL,
    state text NOT NULL
        CHECK (state IN ('ready', 'leased', 'completed', 'dead', 'cancelled')),
    payload jsonb NOT NULL,
    priority integer NOT NULL,
    run_time timestamptz NOT NULL,
    attempt integer NOT NULL,
    max_attempts integer NOT NULL,
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL,
    lease_expire_time timestamptz NULL,
    finish_time timestamptz NULL,
    retry_backoff_us bigint NULL,
    unique_key text COLLATE "C" NULL,
    lease_token text NULL,
    last_error text NULL,
    result jsonb NULL,
    PRIMARY KEY (namespace, id)
);

-- LeaseJobs, ready branch: due jobs in lease order straight off the index.
CREATE INDEX jobs_ready ON jobs (namespace, queue, priority DESC, run_time, create_time, id)
    WHERE state = 'ready';

-- LeaseJobs, reclaim branch: leases that ran out, by expiry.
CREATE INDEX jobs_leased ON jobs (namespace, queue, lease_expire_time)
    WHERE state = 'leased';

-- ListJobs keyset order.
CREATE INDEX jobs_list ON jobs (namespace, queue, create_time, id);

-- At most one unfinished job per unique_key and queue; Enqueue inserts with
-- ON CONFLICT ... DO NOTHING against exactly this index.
CREATE UNIQUE INDEX jobs_unique ON jobs (namespace, queue, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('ready', 'leased');

-- purge_completed walks completed jobs oldest first.
CREATE INDEX jobs_purge ON jobs (finish_time) WHERE state = 'completed';

CREATE TABLE queue_settings (
    namespace text COLLATE "C" NOT NULL,
    queue text COLLATE "C" NOT NULL,
    paused boolean NOT NULL,
    PRIMARY KEY (namespace, queue)
);

-- One row per expired lease a LeaseJobs reclaimed (GetQueueStats counts those of
-- the last core.queue.EXPIRY_WINDOW); purge_completed deletes older rows.
CREATE TABLE lease_expiries (
    namespace text COLLATE "C" NOT NULL,
    queue text COLLATE "C" NOT NULL,
    time timestamptz NOT NULL,
    job_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (namespace, queue, time, job_id)
);

CREATE INDEX lease_expiries_time ON lease_expiries (time);
