-- Undo 0004_artifacts: drop everything it created.

DROP INDEX IF EXISTS blob_pins_sha256;
DROP TABLE IF EXISTS blob_pins;
DROP INDEX IF EXISTS artifacts_sha256;
DROP INDEX IF EXISTS artifacts_owner;
DROP TABLE IF EXISTS artifacts;
