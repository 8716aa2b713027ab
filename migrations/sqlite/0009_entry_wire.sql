-- depends: 0008_retention_targets
-- Each entry's protobuf wire form, stored when it is appended, so that a
-- ReadTranscript batch is its entries' stored bytes joined (core/entry_wire.py
-- says what the bytes are). NULL for entries appended before this migration:
-- reads encode those in the server.
ALTER TABLE transcript_entries ADD COLUMN wire BLOB NULL;
