-- depends: 0002_queue
-- Retention policies (AdminService.SetRetentionPolicy): how long a namespace
-- keeps the records of a collection, or the completed or dead jobs of a queue
-- ('' selector: of every queue). core/retention.py has the rules.
CREATE TABLE retention_policies (
    namespace TEXT NOT NULL,
    target TEXT NOT NULL CHECK (target IN ('records', 'completed_jobs', 'dead_jobs')),
    selector TEXT NOT NULL,
    max_age_us INTEGER NOT NULL CHECK (max_age_us > 0),
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    PRIMARY KEY (namespace, target, selector)
);

-- Dead jobs by age (completed ones have jobs_completed), for their cleanup.
CREATE INDEX jobs_dead ON jobs (finish_time) WHERE state = 'dead';
