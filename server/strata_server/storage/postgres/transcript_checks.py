"""CheckIntegrity's transcript checks on PostgreSQL: counters (next_seq,
size_bytes) that disagree with the entries, and entries whose transcript is gone.
Repairs are the safe ones core/integrity_findings.py names.

A counter repair locks the transcript's row first (FOR UPDATE, as an append
does), then tallies the entries in a new statement: under READ COMMITTED that
one sees every append committed before the lock was granted, so a repair never
undoes an append. Orphan entries go in one DELETE guarded by NOT EXISTS.

One grouped scan of the entries finds every transcript whose counters or
entries are off; only those rows come back, so memory grows with the findings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from strata_server.core.integrity_findings import ORPHAN_ENTRIES, Finding, transcript_problem
from strata_server.core.models import Progress
from strata_server.storage import transcript_tally_sql as tally_sql
from strata_server.storage.postgres.pool import Conn, Runner


def _param(name: str) -> str:
    return f"%({name})s"


OFF = tally_sql.off_transcripts(_param, "::text")
ONE = tally_sql.one_transcript(_param)
COUNT = tally_sql.count_transcripts(_param, "::text")
ORPHANS = tally_sql.orphan_entries(_param, "::text")

LOCK = "SELECT 1 FROM transcripts WHERE namespace = %(namespace)s AND id = %(id)s FOR UPDATE"

REPAIR = """
UPDATE transcripts SET next_seq = %(next_seq)s, size_bytes = %(size)s
WHERE namespace = %(namespace)s AND id = %(id)s
"""

EXEMPT = "SELECT set_config('strata.quota_exempt', 'on', true)"
"""For the rest of the transaction, the quota triggers refuse nothing
(migrations/postgres/0013_quotas.sql)."""

DELETE_ORPHANS = """
DELETE FROM transcript_entries AS e
WHERE e.namespace = %(namespace)s AND e.transcript_id = %(id)s
  AND NOT EXISTS (
      SELECT 1 FROM transcripts AS t WHERE t.namespace = %(namespace)s AND t.id = %(id)s)
"""


async def check(
    runner: Runner, namespace: str | None, *, repair: bool
) -> AsyncIterator[Progress | Finding | tuple[str, int]]:
    """Progress, findings, and ("transcripts", transcripts looked at)."""
    params = {"namespace": namespace}
    run = runner.run

    async def rows(statement: Any) -> list[tuple[Any, ...]]:
        async def fetch(conn: Conn) -> list[tuple[Any, ...]]:
            cursor = await conn.execute(statement, params)
            return await cursor.fetchall()

        return await run(fetch)

    [(total,)] = await rows(COUNT)
    yield Progress("transcripts", 0, total, "transcripts")
    for row in await rows(OFF):
        ns, id = row[0], row[1]
        found = transcript_problem(tally_sql.tally_from_row(row))
        if found is None:
            continue
        problem, repairable = found
        repaired = False
        if repair and repairable:

            async def rebuild(conn: Conn, ns: str = ns, id: str = id) -> bool:
                return await _rebuild(conn, ns, id)

            repaired = await run(rebuild, transaction=True)
        yield Finding("transcripts", ns, "transcript", id, problem, repairable, repaired)
    for ns, id, count in await rows(ORPHANS):
        repaired = False
        if repair:

            async def delete(conn: Conn, ns: str = ns, id: str = id) -> None:
                await conn.execute(DELETE_ORPHANS, {"namespace": ns, "id": id})

            await run(delete)
            repaired = True
        problem = f"{count} {ORPHAN_ENTRIES}"
        yield Finding("transcripts", ns, "transcript_entries", id, problem, True, repaired)
    yield Progress("transcripts", total, total, "transcripts")
    yield ("transcripts", total)


async def _rebuild(conn: Conn, namespace: str, id: str) -> bool:
    """Recompute one transcript's counters from its entries, if they are whole
    (inside the caller's transaction)."""
    key = {"namespace": namespace, "id": id}
    cursor = await conn.execute(LOCK, key)
    if await cursor.fetchone() is None:
        return False
    cursor = await conn.execute(ONE, key)
    row = await cursor.fetchone()
    if row is None:
        return False
    tally = tally_sql.tally_from_row(row)
    if not tally.whole:
        return False
    if not tally.agrees:
        # A counter repair only makes the quota figure true: never refused.
        await conn.execute(EXEMPT)
        await conn.execute(REPAIR, {**key, "next_seq": tally.max_seq + 1, "size": tally.total_size})
    return True
