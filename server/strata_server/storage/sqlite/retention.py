"""Retention on SQLite: policies (retention_policies), and the counts and purges a
cleanup run makes of old records and finished jobs (core/retention_rules.py has the
rules; the precedence of job policies is in `storage/retention_sql.py`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from strata_server.core.errors import NotFound
from strata_server.core.models import Actor, RecordRef
from strata_server.core.retention_rules import Exclude, RetentionPolicy, Target
from strata_server.core.transcript_rules import ENTITY as TRANSCRIPT
from strata_server.storage.log_retention_sql import (
    idle_transcripts,
    log_params,
    old_log,
    purge_log,
)
from strata_server.storage.ports.admin import OldJobs, OldLog
from strata_server.storage.retention_sql import job_params, old_jobs
from strata_server.storage.sqlite.changes import raise_horizons
from strata_server.storage.sqlite.commit import EXPIRY_ACTOR, purge_batched
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.content_retention import (
    OLD_ARTIFACTS,
    OLD_TRANSCRIPTS,
    PURGE_ARTIFACTS,
    SELECT_OLD_TRANSCRIPTS,
)
from strata_server.storage.sqlite.dialect import SQLITE, from_micros, to_micros
from strata_server.storage.sqlite.leader import FileLeader
from strata_server.storage.sqlite.shared_sql import INSERT_AUDIT
from strata_server.storage.sqlite.transcript_queries import (
    DELETE_ENTRIES,
    DELETE_TRANSCRIPT,
    UNINDEX_ENTRIES,
)

_MICRO = timedelta(microseconds=1)

UPSERT = """
INSERT INTO retention_policies
    (namespace, target, selector, max_age_us, create_time, update_time)
VALUES (:namespace, :target, :selector, :max_age_us, :now, :now)
ON CONFLICT (namespace, target, selector)
    DO UPDATE SET max_age_us = excluded.max_age_us, update_time = excluded.update_time
RETURNING create_time, update_time
"""

LIST = """
SELECT namespace, target, selector, max_age_us, create_time, update_time
FROM retention_policies
WHERE :namespace IS NULL OR namespace = :namespace
ORDER BY namespace, target, selector
"""

DELETE = """
DELETE FROM retention_policies WHERE namespace = ? AND target = ? AND selector = ?
RETURNING 1
"""

OLD_RECORDS = """
FROM records WHERE namespace = ? AND collection = ? AND update_time < ?
"""

SELECT_OLD_RECORDS = (
    "SELECT rowid, namespace, collection, id, version "
    + OLD_RECORDS
    + "ORDER BY update_time LIMIT ?"
)

COUNT_EXPIRED = """
SELECT count(*) FROM records WHERE expire_time IS NOT NULL AND expire_time <= ?
"""


def _named(name: str) -> str:
    return f":{name}"


IDLE = idle_transcripts(_named)
SEAL_IDLE = (
    "UPDATE transcripts SET seal_time = :now, update_time = :now"
    " WHERE (namespace, id) IN (SELECT namespace, id "
    + IDLE
    + " ORDER BY update_time LIMIT :limit) RETURNING namespace, id, next_seq"
)


def _old_jobs(exclude: Exclude) -> str:
    return old_jobs(exclude, lambda name: f":{name}")


def _policy(row: tuple[object, ...]) -> RetentionPolicy:
    namespace, target, selector, max_age_us, create_time, update_time = row
    assert isinstance(max_age_us, int) and isinstance(create_time, int)
    assert isinstance(update_time, int)
    return RetentionPolicy(
        str(namespace),
        Target(str(target)),
        str(selector),
        max_age_us * _MICRO,
        from_micros(create_time),
        from_micros(update_time),
    )


def _audit(
    namespace: str, now: int, actor: Actor, action: str, target: str, selector: str
) -> tuple[object, ...]:
    """An audit_log row (INSERT_AUDIT) for a policy change."""
    return (namespace, now, actor.name, action, "retention", f"{target}/{selector}", 0, "[]", None)


class SqliteRecordCleanup:
    """`RecordCleanup` over SQLite."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    async def count_expired(self) -> int:
        [(count,)] = await self._db.fetchall(COUNT_EXPIRED, (to_micros(datetime.now(UTC)),))
        return int(count)

    async def count_old_records(self, namespace: str, collection: str, before: datetime) -> int:
        [(count,)] = await self._db.fetchall(
            "SELECT count(*) " + OLD_RECORDS, (namespace, collection, to_micros(before))
        )
        return int(count)

    async def purge_old_records(
        self, namespace: str, collection: str, before: datetime, limit: int
    ) -> list[RecordRef]:
        if limit <= 0:
            return []
        now = to_micros(datetime.now(UTC))
        params = (namespace, collection, to_micros(before), limit)
        return await purge_batched(self._db, SELECT_OLD_RECORDS, params, "retention", now)


class SqliteRetention:
    """`RetentionStore` over SQLite."""

    def __init__(self, db: Connections, leader: FileLeader) -> None:
        self._db = db
        self._leader = leader

    async def set_retention(self, policy: RetentionPolicy, *, actor: Actor) -> RetentionPolicy:
        now = to_micros(datetime.now(UTC))
        async with self._db.transaction() as tx:
            [(created, updated)] = await tx.fetchall(
                UPSERT,
                {
                    "namespace": policy.namespace,
                    "target": policy.target.value,
                    "selector": policy.selector,
                    "max_age_us": policy.max_age // _MICRO,
                    "now": now,
                },
            )
            await tx.execute(
                INSERT_AUDIT,
                _audit(
                    policy.namespace, now, actor, "set_retention", policy.target, policy.selector
                ),
            )
        return RetentionPolicy(
            policy.namespace,
            policy.target,
            policy.selector,
            policy.max_age,
            from_micros(created),
            from_micros(updated),
        )

    async def list_retention(self, namespace: str | None) -> list[RetentionPolicy]:
        return [
            _policy(tuple(row)) for row in await self._db.fetchall(LIST, {"namespace": namespace})
        ]

    async def delete_retention(
        self, namespace: str, target: Target, selector: str, *, actor: Actor
    ) -> None:
        now = to_micros(datetime.now(UTC))
        async with self._db.transaction() as tx:
            if not await tx.fetchall(DELETE, (namespace, target.value, selector)):
                raise NotFound(f"namespace {namespace!r} has no {target} policy for {selector!r}")
            await tx.execute(
                INSERT_AUDIT, _audit(namespace, now, actor, "delete_retention", target, selector)
            )

    async def count_old_jobs(self, jobs: OldJobs) -> int:
        sql = "SELECT count(*) " + _old_jobs(jobs.exclude)
        [(count,)] = await self._db.fetchall(sql, job_params(jobs, SQLITE))
        return int(count)

    async def purge_old_jobs(self, jobs: OldJobs, limit: int) -> int:
        if limit <= 0:
            return 0
        params = {**job_params(jobs, SQLITE), "limit": limit}
        sql = (
            "DELETE FROM jobs WHERE rowid IN (SELECT rowid "
            + _old_jobs(jobs.exclude)
            + " ORDER BY finish_time LIMIT :limit)"
        )
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(sql + " RETURNING 1", params)
        return len(rows)

    async def count_old_transcripts(self, namespace: str, before: datetime) -> int:
        [(count,)] = await self._db.fetchall(
            "SELECT count(*) " + OLD_TRANSCRIPTS, (namespace, to_micros(before))
        )
        return int(count)

    async def purge_old_transcripts(self, namespace: str, before: datetime, limit: int) -> int:
        if limit <= 0:
            return 0
        now = to_micros(datetime.now(UTC))
        async with self._db.transaction() as tx:
            ids = await tx.fetchall(SELECT_OLD_TRANSCRIPTS, (namespace, to_micros(before), limit))
            for (id,) in ids:
                [(next_seq,)] = await tx.fetchall(DELETE_TRANSCRIPT, (namespace, id))
                await tx.execute(UNINDEX_ENTRIES, (namespace, id))
                await tx.execute(DELETE_ENTRIES, (namespace, id))
                await tx.execute(
                    INSERT_AUDIT,
                    (
                        namespace,
                        now,
                        EXPIRY_ACTOR,
                        "retention",
                        TRANSCRIPT,
                        id,
                        next_seq - 1,
                        "[]",
                        None,
                    ),
                )
        return len(ids)

    async def count_old_artifacts(self, namespace: str, kind: str, before: datetime) -> int:
        params = _content_params(namespace, kind, before)
        [(count,)] = await self._db.fetchall("SELECT count(*) " + OLD_ARTIFACTS, params)
        return int(count)

    async def purge_old_artifacts(
        self, namespace: str, kind: str, before: datetime, limit: int
    ) -> int:
        if limit <= 0:
            return 0
        now = to_micros(datetime.now(UTC))
        params = {**_content_params(namespace, kind, before), "limit": limit}
        async with self._db.transaction() as tx:
            gone = await tx.fetchall(PURGE_ARTIFACTS, params)
            for (id,) in gone:
                await tx.execute(
                    INSERT_AUDIT,
                    (namespace, now, EXPIRY_ACTOR, "retention", "artifact", id, 1, "[]", None),
                )
        return len(gone)

    async def count_old_log(self, old: OldLog) -> int:
        sql = "SELECT count(*) " + old_log(old.log, old.default, _named)
        [(count,)] = await self._db.fetchall(sql, log_params(old, SQLITE))
        return int(count)

    async def purge_old_log(self, old: OldLog, limit: int) -> int:
        if limit <= 0:
            return 0
        params = {**log_params(old, SQLITE), "limit": limit}
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(purge_log(old.log, old.default, _named), params)
            if old.log is Target.AUDIT_LOG:
                await raise_horizons(tx, rows)
        return len(rows)

    async def count_idle_transcripts(self, namespace: str | None, before: datetime) -> int:
        params = {"namespace": namespace, "before": to_micros(before)}
        [(count,)] = await self._db.fetchall("SELECT count(*) " + IDLE, params)
        return int(count)

    async def seal_idle_transcripts(
        self, namespace: str | None, before: datetime, limit: int
    ) -> list[tuple[str, str]]:
        if limit <= 0:
            return []
        now = to_micros(datetime.now(UTC))
        params = {"namespace": namespace, "before": to_micros(before), "now": now, "limit": limit}
        async with self._db.transaction() as tx:
            sealed = await tx.fetchall(SEAL_IDLE, params)
            for ns, id, next_seq in sealed:
                await tx.execute(
                    INSERT_AUDIT,
                    (
                        ns,
                        now,
                        EXPIRY_ACTOR,
                        "seal",
                        TRANSCRIPT,
                        id,
                        next_seq - 1,
                        '["seal_time"]',
                        None,
                    ),
                )
        return [(str(ns), str(id)) for ns, id, _ in sealed]

    async def lead(self, name: str) -> bool:
        return self._leader.lead(name)

    async def close(self) -> None:
        """Give up leading."""
        self._leader.close()


def _content_params(namespace: str, kind: str, before: datetime) -> dict[str, object]:
    return {"namespace": namespace, "kind": kind, "before": to_micros(before)}
