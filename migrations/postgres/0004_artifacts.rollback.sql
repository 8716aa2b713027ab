-- Undo 0004_artifacts: drop everything it created.

DROP TABLE IF EXISTS blob_pins;
DROP TABLE IF EXISTS artifacts;
