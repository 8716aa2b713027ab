-- depends: 0013_quotas
-- The last integrity check of each scope (a namespace, or '*' for a check of every
-- namespace) with its report as JSON, so AdminService.GetIntegrityStatus answers
-- the same on every replica, whichever one ran the check.
CREATE TABLE integrity_runs (
    namespace text NOT NULL PRIMARY KEY,
    finish_time timestamptz NOT NULL,
    report jsonb NOT NULL
);
