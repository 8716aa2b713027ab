DROP TABLE IF EXISTS integrity_runs;
