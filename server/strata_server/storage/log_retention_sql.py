"""Which audit and request log entries, and which idle open transcripts, a cleanup
takes, in SQL both dialects share (as `retention_sql.py` does for jobs).

A namespace's own policy for a log takes its old entries; the server default's
step (`OldLog.default`) takes those of every namespace without such a policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strata_server.core.retention_rules import Target
from strata_server.storage.ports.admin import OldLog
from strata_server.storage.sqlquery import Dialect

LOG_TABLES = {
    Target.AUDIT_LOG: ("audit_log", "time", "namespace, seq"),
    Target.REQUEST_LOG: ("request_log", "create_time", "namespace, request_id"),
}
"""Each log's table, the column its age is read from (indexed, migration 0016) and
its primary key."""


def old_log(log: Target, default: bool, param: Callable[[str], str], optional: str = "") -> str:
    """FROM and WHERE of the entries of `log` that `log_params` selects; `param` and
    `optional` as in `retention_sql.old_jobs`."""
    table, age, _ = LOG_TABLES[log]
    namespace = param("namespace")
    sql = (
        f"FROM {table} WHERE {age} < {param('before')}"
        f" AND ({namespace}{optional} IS NULL OR namespace = {namespace})"
    )
    if default:
        sql += (
            " AND NOT EXISTS (SELECT 1 FROM retention_policies AS p"
            f" WHERE p.namespace = {table}.namespace AND p.target = '{log.value}')"
        )
    return sql


def log_params(old: OldLog, dialect: Dialect) -> dict[str, Any]:
    """The parameters of `old_log`, with `before` as the engine stores a time."""
    return {"namespace": old.namespace, "before": dialect.time_param(old.before)}


def idle_transcripts(param: Callable[[str], str], optional: str = "") -> str:
    """FROM and WHERE of the open transcripts (of `namespace`, or NULL: of every
    namespace) last written before `before`. No index serves it (one on
    update_time would cost every append): the pass reads the transcripts table,
    not their entries."""
    namespace = param("namespace")
    return (
        f"FROM transcripts WHERE seal_time IS NULL AND update_time < {param('before')}"
        f" AND ({namespace}{optional} IS NULL OR namespace = {namespace})"
    )


HORIZON_COLUMNS = "namespace, seq, time"
"""What a purge of the audit log returns of each entry it deleted: what raises its
namespace's horizon (migration 0017), past which WatchRecords refuses a cursor."""


def purge_log(log: Target, default: bool, param: Callable[[str], str]) -> str:
    """Delete up to `limit` of `old_log`'s entries, oldest first, by primary key;
    returns a row per entry deleted (HORIZON_COLUMNS for the audit log). (PostgreSQL
    builds its own with SKIP LOCKED.)"""
    table, age, keys = LOG_TABLES[log]
    returning = HORIZON_COLUMNS if log is Target.AUDIT_LOG else "1"
    return (
        f"DELETE FROM {table} WHERE ({keys}) IN (SELECT {keys} "
        + old_log(log, default, param)
        + f" ORDER BY {age} LIMIT {param('limit')}) RETURNING {returning}"
    )
