-- depends: 0013_quotas
-- The last integrity check of each scope (a namespace, or '*' for a check of every
-- namespace) with its report as JSON, so AdminService.GetIntegrityStatus answers
-- the same on every server process, whichever one ran the check.
CREATE TABLE integrity_runs (
    namespace TEXT NOT NULL PRIMARY KEY,
    finish_time INTEGER NOT NULL,
    report TEXT NOT NULL
) WITHOUT ROWID;
