-- depends: 0013_quotas
-- SearchService.Search (PostgreSQL): an index of artifacts for one search across kinds.
--
-- Records and transcript entries are searched through their existing tsvector
-- columns and GIN indexes (0001, 0003). Each artifact gets a row in
-- artifact_search, inserted by the trigger below in the transaction that inserts
-- the artifact and deleted with it (the foreign key cascades): its name, its
-- labels flattened to "key value ...", and (set after upload by
-- services/search_service.py) the first STRATA_SEARCH_TEXT_MAX_BYTES of a text
-- artifact's content. A tsvector must stay under 1 MB, which bounds that setting.

CREATE TABLE artifact_search (
    namespace text COLLATE "C" NOT NULL,
    artifact_id text COLLATE "C" NOT NULL,
    name text NOT NULL,
    labels text NOT NULL,
    body text NULL,
    -- SEARCH_KIND_ARTIFACT: name and labels, whole and split at punctuation: the
    -- parser keeps "build.log" as one file token, and a search for "build" should
    -- find it (as FTS5 does on SQLite).
    meta_search tsvector GENERATED ALWAYS AS (
        to_tsvector(
            'simple'::regconfig,
            name || ' ' || labels || ' '
                || regexp_replace(name || ' ' || labels, '[^[:alnum:]_]+', ' ', 'g')
        )
    ) STORED,
    -- SEARCH_KIND_ARTIFACT_TEXT: the text content.
    body_search tsvector GENERATED ALWAYS AS (
        to_tsvector('simple'::regconfig, coalesce(body, ''))
    ) STORED,
    PRIMARY KEY (namespace, artifact_id),
    FOREIGN KEY (namespace, artifact_id) REFERENCES artifacts (namespace, id) ON DELETE CASCADE
);

CREATE INDEX artifact_search_meta ON artifact_search USING gin (meta_search);
CREATE INDEX artifact_search_body ON artifact_search USING gin (body_search);

CREATE FUNCTION strata_artifact_labels_text(labels jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(string_agg(key || ' ' || value, ' '), '') FROM jsonb_each_text(labels)
$$;

CREATE FUNCTION strata_artifact_search_insert() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO artifact_search (namespace, artifact_id, name, labels)
    VALUES (NEW.namespace, NEW.id, NEW.name, strata_artifact_labels_text(NEW.labels));
    RETURN NULL;
END
$$;

CREATE TRIGGER artifacts_search_insert AFTER INSERT ON artifacts
    FOR EACH ROW EXECUTE FUNCTION strata_artifact_search_insert();

-- The artifacts stored before this migration: searchable by name and labels (their
-- text is not read back from the blob store here).
INSERT INTO artifact_search (namespace, artifact_id, name, labels)
SELECT namespace, id, name, strata_artifact_labels_text(labels) FROM artifacts;
