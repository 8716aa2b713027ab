-- Undo 0024_audit_batches: each batch row becomes the per-record rows it stands
-- for (same namespace, time, actor, action and transaction, one per listed id,
-- new seqs in the list's order), so no removal leaves the audit log.
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id, xact)
SELECT a.namespace, a.time, a.actor, a.action, a.entity, listed.entity_id, listed.version,
       '[]'::jsonb, a.request_id, a.xact
FROM audit_log AS a
CROSS JOIN LATERAL unnest(a.entity_ids, a.entity_versions)
    WITH ORDINALITY AS listed (entity_id, version, position)
WHERE a.entity_ids IS NOT NULL
ORDER BY a.seq, listed.position;
DELETE FROM audit_log WHERE entity_ids IS NOT NULL;
DROP INDEX audit_log_batches;
ALTER TABLE audit_log DROP CONSTRAINT audit_log_batch_lists;
ALTER TABLE audit_log DROP COLUMN entity_versions;
ALTER TABLE audit_log DROP COLUMN entity_ids;
