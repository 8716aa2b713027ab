"""SQL that several SQLite modules write with: the audit log and the request log
(records' commit and the queue both append to them in their own transactions)."""

SELECT_REQUEST = """
SELECT fingerprint, result FROM request_log WHERE namespace = ? AND request_id = ?
"""

INSERT_REQUEST = """
INSERT INTO request_log (namespace, request_id, fingerprint, result, create_time)
VALUES (?, ?, ?, ?, ?)
"""

INSERT_AUDIT = """
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
