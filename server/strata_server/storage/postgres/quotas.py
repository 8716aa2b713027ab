"""Storage quotas on PostgreSQL: the quota rows (namespace_quotas), set and listed.

The figure itself is kept by the triggers of migrations/postgres/0013_quotas.sql in
each write's transaction, for namespaces that have a row. Setting a new quota must
count what the namespace already stores without losing a concurrent write, which
takes three steps (`PostgresQuotas.set_quota` runs them):

1. **Save** the row (and its audit entry) and commit. From here on every write
   statement of the namespace sees the row, so its trigger adds its change to it
   (and holds the row's lock until it commits).
2. **Settle**: wait until every transaction that was running at step 1's commit
   has ended. Only those can have written rows of the namespace without seeing the
   row (a statement that began before the commit); once they have committed, the
   count sees their rows.
3. **Recount** under the row's lock (`SELECT ... FOR UPDATE`, then the count in a
   statement of its own, so its snapshot is taken after the lock): committed
   writes are in the count; a write in flight holds, or will wait for, the lock and
   adds its own change after this transaction commits. The figure is then exact.

Every write of a namespace with a quota takes the row's lock at the end of the
statement that changes its bytes and keeps it until commit. A Commit that appends
(its appends run before it locks its records) and then waits for a record another
transaction holds, while that one waits for the row, is a deadlock PostgreSQL
breaks after deadlock_timeout: the loser gets Conflict, which Commit retries. Only
such mixed Commits in a namespace with a quota can meet it.

Changing an existing quota runs steps 1 and 3 (the recount also puts right any
figure an operator's hand edit may have upset). Step 2 waits for unrelated long
transactions too (an import into another namespace): at most SETTLE_SECONDS, after
which the recount goes ahead and only writes of those still-running transactions
could be missing from it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import LiteralString

import structlog

from strata_server.core.models import Actor
from strata_server.core.quota_rules import Quota
from strata_server.storage.postgres.pool import Conn, Runner, borrowing

log = structlog.get_logger("strata.quotas")

SETTLE_SECONDS = 60.0
"""Longest wait for transactions begun before a new quota (step 2)."""

USAGE: LiteralString = """
(SELECT (SELECT coalesce(sum(octet_length(data::text)), 0) FROM records
         WHERE namespace = %(namespace)s)
      + (SELECT coalesce(sum(size_bytes), 0) FROM transcripts WHERE namespace = %(namespace)s)
      + (SELECT coalesce(sum(stored_size), 0) FROM artifacts WHERE namespace = %(namespace)s)
)::bigint
"""
"""What a namespace stores, as core/quota_rules.py counts it (expired records included:
they take room until cleanup removes them)."""

_AUDIT: LiteralString = """
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT %(namespace)s, now(), %(actor)s, %(action)s, 'quota', %(namespace)s, 0,
           '[]'::jsonb, NULL
"""

SAVE: LiteralString = (
    """
WITH saved AS (
    INSERT INTO namespace_quotas (namespace, max_bytes, used_bytes, create_time, update_time)
    VALUES (%(namespace)s, %(max_bytes)s, """
    + USAGE
    + """, now(), now())
    ON CONFLICT (namespace) DO UPDATE
        SET max_bytes = excluded.max_bytes, update_time = excluded.update_time
    RETURNING xmax = 0 AS created
), audited AS ("""
    + _AUDIT
    + """    FROM saved
)
SELECT created FROM saved
"""
)

DELETE: LiteralString = (
    """
WITH gone AS (
    DELETE FROM namespace_quotas WHERE namespace = %(namespace)s RETURNING 1
), audited AS ("""
    + _AUDIT
    + """    FROM gone
)
SELECT """
    + USAGE
)

RUNNING = "SELECT pg_snapshot_xip(pg_current_snapshot())::text"
"""The transactions running now (those that hold a transaction id)."""

STILL_RUNNING = """
SELECT count(*) FROM unnest(%s::text[]) AS x WHERE pg_xact_status(x::xid8) = 'in progress'
"""

LOCK = "SELECT 1 FROM namespace_quotas WHERE namespace = %(namespace)s FOR UPDATE"

RECOUNT: LiteralString = (
    "UPDATE namespace_quotas SET used_bytes = "
    + USAGE
    + " WHERE namespace = %(namespace)s RETURNING max_bytes, used_bytes"
)

LIST = """
SELECT namespace, max_bytes, used_bytes FROM namespace_quotas
WHERE %(namespace)s::text IS NULL OR namespace = %(namespace)s
ORDER BY namespace
"""


async def save(conn: Conn, namespace: str, max_bytes: int, *, actor: Actor) -> bool:
    """Step 1, in the caller's transaction: whether the quota is new."""
    cursor = await conn.execute(
        SAVE,
        {
            "namespace": namespace,
            "max_bytes": max_bytes,
            "actor": actor.name,
            "action": "set_quota",
        },
    )
    row = await cursor.fetchone()
    return bool(row and row[0])


async def running(conn: Conn) -> list[str]:
    """The ids of the transactions running now (autocommit, after step 1)."""
    cursor = await conn.execute(RUNNING)
    return [str(xid) for (xid,) in await cursor.fetchall()]


async def settle(count_running: Callable[[list[str]], Awaitable[int]], xids: list[str]) -> None:
    """Step 2: return once none of `xids` is still running (or after SETTLE_SECONDS)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    pause = 0.005
    while xids and await count_running(xids):
        if time.monotonic() > deadline:
            log.warning("quota recounted before older transactions ended", transactions=xids)
            return
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)


async def still_running(conn: Conn, xids: list[str]) -> int:
    """How many of `xids` are still in progress."""
    cursor = await conn.execute(STILL_RUNNING, (xids,))
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def recount(conn: Conn, namespace: str) -> Quota | None:
    """Step 3, in the caller's transaction: the quota, its figure recounted; None if
    the row is gone (removed meanwhile)."""
    params = {"namespace": namespace}
    cursor = await conn.execute(LOCK, params)
    if await cursor.fetchone() is None:
        return None
    cursor = await conn.execute(RECOUNT, params)
    row = await cursor.fetchone()
    return Quota(namespace, int(row[0]), int(row[1])) if row else None


async def remove(conn: Conn, namespace: str, *, actor: Actor) -> Quota:
    """Remove the quota (an audit entry if there was one); what the namespace stores."""
    cursor = await conn.execute(
        DELETE, {"namespace": namespace, "actor": actor.name, "action": "delete_quota"}
    )
    row = await cursor.fetchone()
    return Quota(namespace, 0, int(row[0]) if row else 0)


class PostgresQuotas:
    """`QuotaStore` over PostgreSQL."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def set_quota(self, namespace: str, max_bytes: int, *, actor: Actor) -> Quota:
        """The three steps of the module docstring, each its own transaction (a
        removal is one)."""
        run = self.runner.run
        if max_bytes == 0:
            return await run(lambda conn: remove(conn, namespace, actor=actor), transaction=True)
        created = await run(
            lambda conn: save(conn, namespace, max_bytes, actor=actor), transaction=True
        )
        if created:
            xids = await run(running)

            async def count_running(xids: list[str]) -> int:
                return await run(lambda conn: still_running(conn, xids))

            await settle(count_running, xids)
        saved = await run(lambda conn: recount(conn, namespace), transaction=True)
        return saved or Quota(namespace, 0, 0)

    @borrowing()
    async def list_quotas(self, conn: Conn, namespace: str | None) -> list[Quota]:
        cursor = await conn.execute(LIST, {"namespace": namespace})
        return [Quota(ns, int(most), int(used)) for ns, most, used in await cursor.fetchall()]
