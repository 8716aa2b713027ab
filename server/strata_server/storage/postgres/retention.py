"""Retention on PostgreSQL: policies (retention_policies), and the counts and purges
a cleanup run makes of old records and finished jobs (core/retention_rules.py has the
rules; the precedence of job policies is in `storage/retention_sql.py`). Each purge is one
autocommit statement over at most `limit` rows, skipping rows others hold."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from strata_server.core.errors import NotFound
from strata_server.core.models import Actor, RecordRef
from strata_server.core.retention_rules import Exclude, RetentionPolicy, Target
from strata_server.storage.log_retention_sql import (
    LOG_TABLES,
    idle_transcripts,
    log_params,
    old_log,
)
from strata_server.storage.ports.admin import OldJobs, OldLog
from strata_server.storage.postgres.changes import RAISE_HORIZONS
from strata_server.storage.postgres.content_retention import (
    COUNT_OLD_ARTIFACTS,
    COUNT_OLD_TRANSCRIPTS,
    DELETE_ENTRIES,
    PURGE_OLD_ARTIFACTS,
    PURGE_OLD_TRANSCRIPTS,
)
from strata_server.storage.postgres.dialect import POSTGRES
from strata_server.storage.postgres.leader import SessionLeader
from strata_server.storage.postgres.pool import Conn, Runner, borrowing
from strata_server.storage.postgres.purges import audited, purge_records, purge_rows
from strata_server.storage.retention_sql import job_params, old_jobs

UPSERT = """
WITH saved AS (
    INSERT INTO retention_policies
        (namespace, target, selector, max_age, create_time, update_time)
    VALUES (%(namespace)s, %(target)s, %(selector)s, %(max_age)s, now(), now())
    ON CONFLICT (namespace, target, selector)
        DO UPDATE SET max_age = excluded.max_age, update_time = excluded.update_time
    RETURNING create_time, update_time
), audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT %(namespace)s, update_time, %(actor)s, 'set_retention', 'retention',
           %(target)s || '/' || %(selector)s, 0, '[]'::jsonb, NULL
    FROM saved
)
SELECT create_time, update_time FROM saved
"""

LIST = """
SELECT namespace, target, selector, max_age, create_time, update_time
FROM retention_policies
WHERE %(namespace)s::text IS NULL OR namespace = %(namespace)s
ORDER BY namespace, target, selector
"""

DELETE = """
WITH gone AS (
    DELETE FROM retention_policies
    WHERE namespace = %(namespace)s AND target = %(target)s AND selector = %(selector)s
    RETURNING 1
), audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT %(namespace)s, now(), %(actor)s, 'delete_retention', 'retention',
           %(target)s || '/' || %(selector)s, 0, '[]'::jsonb, NULL
    FROM gone
)
SELECT count(*) FROM gone
"""

COUNT_OLD_RECORDS = """
SELECT count(*) FROM records WHERE namespace = %s AND collection = %s AND update_time < %s
"""

PURGE_OLD_RECORDS = purge_records(
    "namespace = %(namespace)s AND collection = %(collection)s AND update_time < %(before)s",
    "update_time",
    "now()",
    "retention",
)
"""Delete up to `limit` records of a collection last written before `before`, each
with a `retention` audit entry (as the expiry purge writes them)."""

COUNT_EXPIRED = "SELECT count(*) FROM records WHERE expire_time <= now()"


def _old_jobs(exclude: Exclude) -> str:
    return old_jobs(exclude, lambda name: f"%({name})s", optional="::text")


def _purge_jobs(exclude: Exclude) -> str:
    return purge_rows("jobs", "namespace, id", _old_jobs(exclude), "finish_time", "1") + (
        "\nSELECT count(*) FROM gone\n"
    )


def _named(name: str) -> str:
    return f"%({name})s"


def _log_statements(log: Target, default: bool) -> tuple[str, str]:
    table, age, keys = LOG_TABLES[log]
    rows = old_log(log, default, _named, optional="::text")
    if log is Target.AUDIT_LOG:
        purge = purge_rows(table, keys, rows, age, "g.namespace, g.xact, g.seq, g.time")
        purge += RAISE_HORIZONS
    else:
        purge = purge_rows(table, keys, rows, age, "1")
    return "SELECT count(*) " + rows, purge + "\nSELECT count(*) FROM gone\n"


LOG_STATEMENTS = {
    (log, default): _log_statements(log, default)
    for log in (Target.AUDIT_LOG, Target.REQUEST_LOG)
    for default in (False, True)
}
"""(count, purge) of each log's old entries, by (log, server default's step)."""

_IDLE = idle_transcripts(_named, optional="::text")
COUNT_IDLE = "SELECT count(*) " + _IDLE
SEAL_IDLE = (
    f"""
WITH doomed AS (
    SELECT namespace, id {_IDLE}
    ORDER BY update_time
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), gone AS (
    UPDATE transcripts AS g SET seal_time = now(), update_time = now()
    FROM doomed AS d
    WHERE g.namespace = d.namespace AND g.id = d.id AND g.seal_time IS NULL
    RETURNING g.namespace, g.id, g.next_seq
)"""
    + audited("seal", "transcript", "id", "next_seq - 1", changed="'[\"seal_time\"]'::jsonb")
    + "\nSELECT namespace, id FROM gone\n"
)
"""Seal up to `limit` idle open transcripts, skipping any an append holds, each with
a `seal` audit entry by the system actor (`gone` names the sealed rows, as
`purges.audited` expects)."""

COUNT_JOBS = {exclude: "SELECT count(*) " + _old_jobs(exclude) for exclude in Exclude}
PURGE_JOBS = {exclude: _purge_jobs(exclude) for exclude in Exclude}


async def _count(conn: Conn, statement: Any, params: Any) -> int:
    cursor = await conn.execute(statement, params)
    row = await cursor.fetchone()
    return int(row[0]) if row is not None else 0


class PostgresRecordCleanup:
    """`RecordCleanup` over PostgreSQL."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    @borrowing()
    async def count_expired(self, conn: Conn) -> int:
        return await _count(conn, COUNT_EXPIRED, ())

    @borrowing()
    async def count_old_records(
        self, conn: Conn, namespace: str, collection: str, before: datetime
    ) -> int:
        return await _count(conn, COUNT_OLD_RECORDS, (namespace, collection, before))

    @borrowing()
    async def purge_old_records(
        self, conn: Conn, namespace: str, collection: str, before: datetime, limit: int
    ) -> list[RecordRef]:
        if limit <= 0:
            return []
        cursor = await conn.execute(
            PURGE_OLD_RECORDS,
            {"namespace": namespace, "collection": collection, "before": before, "limit": limit},
        )
        return [RecordRef(row[0], row[1], row[2]) for row in await cursor.fetchall()]


class PostgresRetention:
    """`RetentionStore` over PostgreSQL."""

    def __init__(self, runner: Runner, leader: SessionLeader) -> None:
        self.runner = runner
        self._leader = leader

    @borrowing()
    async def set_retention(
        self, conn: Conn, policy: RetentionPolicy, *, actor: Actor
    ) -> RetentionPolicy:
        cursor = await conn.execute(
            UPSERT,
            {
                "namespace": policy.namespace,
                "target": policy.target.value,
                "selector": policy.selector,
                "max_age": policy.max_age,
                "actor": actor.name,
            },
        )
        row = await cursor.fetchone()
        assert row is not None
        return RetentionPolicy(
            policy.namespace, policy.target, policy.selector, policy.max_age, row[0], row[1]
        )

    @borrowing()
    async def list_retention(self, conn: Conn, namespace: str | None) -> list[RetentionPolicy]:
        cursor = await conn.execute(LIST, {"namespace": namespace})
        return [
            RetentionPolicy(row[0], Target(row[1]), row[2], row[3], row[4], row[5])
            for row in await cursor.fetchall()
        ]

    @borrowing()
    async def delete_retention(
        self, conn: Conn, namespace: str, target: Target, selector: str, *, actor: Actor
    ) -> None:
        cursor = await conn.execute(
            DELETE,
            {
                "namespace": namespace,
                "target": target.value,
                "selector": selector,
                "actor": actor.name,
            },
        )
        row = await cursor.fetchone()
        if row is None or row[0] == 0:
            raise NotFound(f"namespace {namespace!r} has no {target} policy for {selector!r}")

    @borrowing()
    async def count_old_jobs(self, conn: Conn, jobs: OldJobs) -> int:
        return await _count(conn, COUNT_JOBS[jobs.exclude], job_params(jobs, POSTGRES))

    @borrowing()
    async def purge_old_jobs(self, conn: Conn, jobs: OldJobs, limit: int) -> int:
        if limit <= 0:
            return 0
        params = {**job_params(jobs, POSTGRES), "limit": limit}
        return await _count(conn, PURGE_JOBS[jobs.exclude], params)

    @borrowing()
    async def count_old_transcripts(self, conn: Conn, namespace: str, before: datetime) -> int:
        return await _count(conn, COUNT_OLD_TRANSCRIPTS, (namespace, before))

    @borrowing(transaction=True)
    async def purge_old_transcripts(
        self, conn: Conn, namespace: str, before: datetime, limit: int
    ) -> int:
        """Run inside an open transaction."""
        if limit <= 0:
            return 0
        cursor = await conn.execute(
            PURGE_OLD_TRANSCRIPTS, {"namespace": namespace, "before": before, "limit": limit}
        )
        ids = [row[0] for row in await cursor.fetchall()]
        if ids:
            await conn.execute(DELETE_ENTRIES, (namespace, ids))
        return len(ids)

    @borrowing()
    async def count_old_artifacts(
        self, conn: Conn, namespace: str, kind: str, before: datetime
    ) -> int:
        return await _count(conn, COUNT_OLD_ARTIFACTS, _content_params(namespace, kind, before))

    @borrowing()
    async def purge_old_artifacts(
        self, conn: Conn, namespace: str, kind: str, before: datetime, limit: int
    ) -> int:
        params = {**_content_params(namespace, kind, before), "limit": limit}
        return await _count(conn, PURGE_OLD_ARTIFACTS, params) if limit > 0 else 0

    @borrowing()
    async def count_old_log(self, conn: Conn, old: OldLog) -> int:
        count, _ = LOG_STATEMENTS[old.log, old.default]
        return await _count(conn, count, log_params(old, POSTGRES))

    @borrowing(writes=True)
    async def purge_old_log(self, conn: Conn, old: OldLog, limit: int) -> int:
        if limit <= 0:
            return 0
        _, purge = LOG_STATEMENTS[old.log, old.default]
        return await _count(conn, purge, {**log_params(old, POSTGRES), "limit": limit})

    @borrowing()
    async def count_idle_transcripts(
        self, conn: Conn, namespace: str | None, before: datetime
    ) -> int:
        return await _count(conn, COUNT_IDLE, {"namespace": namespace, "before": before})

    @borrowing(writes=True)
    async def seal_idle_transcripts(
        self, conn: Conn, namespace: str | None, before: datetime, limit: int
    ) -> list[tuple[str, str]]:
        if limit <= 0:
            return []
        cursor = await conn.execute(
            SEAL_IDLE, {"namespace": namespace, "before": before, "limit": limit}
        )
        return [(row[0], row[1]) for row in await cursor.fetchall()]

    async def lead(self, name: str) -> bool:
        return await self._leader.lead(name)

    async def close(self) -> None:
        """Give up leading."""
        await self._leader.close()


def _content_params(namespace: str, kind: str, before: datetime) -> dict[str, Any]:
    return {"namespace": namespace, "kind": kind, "before": before}
