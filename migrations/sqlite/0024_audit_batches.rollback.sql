-- Undo 0024_audit_batches: each batch row becomes the per-record rows it stands
-- for (same namespace, time, actor and action, one per listed id, new seqs in the
-- list's order), so no removal leaves the audit log.
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
SELECT a.namespace, a.time, a.actor, a.action, a.entity, ids.value,
       json_extract(a.entity_versions, '$[' || ids.key || ']'), '[]', a.request_id
FROM audit_log AS a, json_each(a.entity_ids) AS ids
WHERE a.entity_ids IS NOT NULL
ORDER BY a.seq, ids.key;
DELETE FROM audit_log WHERE entity_ids IS NOT NULL;
DROP INDEX audit_log_batches;
ALTER TABLE audit_log DROP COLUMN entity_versions;
ALTER TABLE audit_log DROP COLUMN entity_ids;
