"""Storage quotas on SQLite: the quota rows (namespace_quotas), set and listed.

The figure itself is kept by the triggers of migrations/sqlite/0013_quotas.sql in
each write's transaction. With one writer, setting a quota is one transaction that
counts what the namespace stores and saves the row: no write can slip between the
count and the row, so the figure is exact from the start.
"""

from __future__ import annotations

from datetime import UTC, datetime

from strata_server.core.models import Actor
from strata_server.core.quota_rules import Quota
from strata_server.storage.sqlite.connection import Connections, Transaction
from strata_server.storage.sqlite.dialect import to_micros
from strata_server.storage.sqlite.shared_sql import INSERT_AUDIT

USAGE = """
SELECT (SELECT coalesce(sum(length(CAST(data AS BLOB))), 0) FROM records
        WHERE namespace = :namespace)
     + (SELECT coalesce(sum(size_bytes), 0) FROM transcripts WHERE namespace = :namespace)
     + (SELECT coalesce(sum(stored_size), 0) FROM artifacts WHERE namespace = :namespace)
"""
"""What a namespace stores, as core/quota_rules.py counts it (expired records included:
they take room until cleanup removes them)."""

UPSERT = f"""
INSERT INTO namespace_quotas (namespace, max_bytes, used_bytes, create_time, update_time)
VALUES (:namespace, :max_bytes, ({USAGE}), :now, :now)
ON CONFLICT (namespace) DO UPDATE SET
    max_bytes = excluded.max_bytes,
    used_bytes = excluded.used_bytes,
    update_time = excluded.update_time
RETURNING used_bytes
"""

DELETE = "DELETE FROM namespace_quotas WHERE namespace = ? RETURNING 1"

LIST = """
SELECT namespace, max_bytes, used_bytes FROM namespace_quotas
WHERE :namespace IS NULL OR namespace = :namespace
ORDER BY namespace
"""


async def _audit(tx: Transaction, namespace: str, now: int, actor: Actor, action: str) -> None:
    await tx.execute(
        INSERT_AUDIT, (namespace, now, actor.name, action, "quota", namespace, 0, "[]", None)
    )


class SqliteQuotas:
    """`QuotaStore` over SQLite."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    async def set_quota(self, namespace: str, max_bytes: int, *, actor: Actor) -> Quota:
        """Save (or with 0 remove) the quota, recounting what the namespace stores, with
        an audit entry (entity "quota", action set_quota or delete_quota)."""
        now = to_micros(datetime.now(UTC))
        async with self._db.transaction() as tx:
            if max_bytes == 0:
                if await tx.fetchall(DELETE, (namespace,)):
                    await _audit(tx, namespace, now, actor, "delete_quota")
                [(used,)] = await tx.fetchall(USAGE, {"namespace": namespace})
                return Quota(namespace, 0, int(used))
            [(used,)] = await tx.fetchall(
                UPSERT, {"namespace": namespace, "max_bytes": max_bytes, "now": now}
            )
            await _audit(tx, namespace, now, actor, "set_quota")
        return Quota(namespace, max_bytes, int(used))

    async def list_quotas(self, namespace: str | None) -> list[Quota]:
        """The quota rows of one namespace or of all, by namespace."""
        rows = await self._db.fetchall(LIST, {"namespace": namespace})
        return [Quota(str(ns), int(most), int(used)) for ns, most, used in rows]
