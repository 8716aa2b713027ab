-- Undo 0002_queue: drop everything it created (indexes go with their tables).

DROP TABLE IF EXISTS lease_expiries;
DROP TABLE IF EXISTS queue_settings;
DROP TABLE IF EXISTS jobs;
