"""CheckIntegrity's transcript checks on SQLite: counters (next_seq, size_bytes)
that disagree with the entries, entries whose transcript is gone, and (in runs
over every namespace: it is one index for all) a full-text index that disagrees
with the entries. Repairs are the safe ones core/integrity_findings.py names; each
re-reads what it repairs inside its write transaction (the one writer), so an
append in between is never undone.

One grouped scan of the entries (through their unique (namespace, transcript_id,
seq) index) finds every transcript whose counters or entries are off; only those
rows come back, so memory grows with the findings, not with the data."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator

from strata_server.core.errors import Unavailable
from strata_server.core.integrity_findings import (
    ORPHAN_ENTRIES,
    SEARCH_INDEX_STALE,
    Finding,
    transcript_problem,
)
from strata_server.core.models import Progress
from strata_server.storage import transcript_tally_sql as tally_sql
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.transcript_queries import DELETE_ENTRIES, UNINDEX_ENTRIES


def _param(name: str) -> str:
    return f":{name}"


OFF = tally_sql.off_transcripts(_param)
ONE = tally_sql.one_transcript(_param)
COUNT = tally_sql.count_transcripts(_param)
ORPHANS = tally_sql.orphan_entries(_param)

REPAIR = """
UPDATE transcripts SET next_seq = :next_seq, size_bytes = :size
WHERE namespace = :namespace AND id = :id
"""

EXEMPT = "INSERT INTO quota_exemptions (exempt) VALUES (1)"
UNEXEMPT = "DELETE FROM quota_exemptions"
"""Around a counter repair: the quota triggers refuse nothing while the row is there
(migrations/sqlite/0013_quotas.sql)."""

EXISTS = "SELECT 1 FROM transcripts WHERE namespace = ? AND id = ?"

FTS_CHECK = """
INSERT INTO transcript_entries_fts (transcript_entries_fts, rank)
VALUES ('integrity-check', 1)
"""
"""Compares the full-text index with the entries; SQLITE_CORRUPT_VTAB when they differ."""

FTS_REBUILD = "INSERT INTO transcript_entries_fts (transcript_entries_fts) VALUES ('rebuild')"
"""Rebuilds the full-text index from the entries."""


async def check(
    db: Connections, namespace: str | None, *, repair: bool
) -> AsyncIterator[Progress | Finding | tuple[str, int]]:
    """Progress, findings, and ("transcripts", transcripts looked at)."""
    params = {"namespace": namespace}
    [(total,)] = await db.fetchall(COUNT, params)
    yield Progress("transcripts", 0, total, "transcripts")
    for row in await db.fetchall(OFF, params):
        ns, id = row[0], row[1]
        found = transcript_problem(tally_sql.tally_from_row(row))
        if found is None:
            continue
        problem, repairable = found
        repaired = repair and repairable and await _rebuild(db, ns, id)
        yield Finding("transcripts", ns, "transcript", id, problem, repairable, repaired)
    for ns, id, count in await db.fetchall(ORPHANS, params):
        repaired = False
        if repair:
            async with db.transaction() as tx:
                if not await tx.fetchall(EXISTS, (ns, id)):
                    await tx.execute(UNINDEX_ENTRIES, (ns, id))
                    await tx.execute(DELETE_ENTRIES, (ns, id))
                    repaired = True
        problem = f"{count} {ORPHAN_ENTRIES}"
        yield Finding("transcripts", ns, "transcript_entries", id, problem, True, repaired)
    if namespace is None:
        yield Progress("search index", 0, 1, "checks")
        if not await _search_index_agrees(db):
            repaired = False
            if repair:
                async with db.transaction() as tx:
                    await tx.execute(FTS_REBUILD)
                repaired = True
            yield Finding("transcripts", "", "search_index", "", SEARCH_INDEX_STALE, True, repaired)
    yield Progress("transcripts", total, total, "transcripts")
    yield ("transcripts", total)


async def _search_index_agrees(db: Connections) -> bool:
    """Whether the full-text index holds exactly the entries' content (a write:
    FTS5 runs its check as an INSERT, so it holds the writer while it reads)."""
    try:
        async with db.transaction() as tx:
            await tx.execute(FTS_CHECK)
    except Unavailable as error:
        cause = error.__cause__
        if (
            isinstance(cause, sqlite3.Error)
            and cause.sqlite_errorcode == sqlite3.SQLITE_CORRUPT_VTAB
        ):
            return False
        raise
    return True


async def _rebuild(db: Connections, namespace: str, id: str) -> bool:
    """Recompute one transcript's counters from its entries, if they are whole."""
    async with db.transaction() as tx:
        rows = await tx.fetchall(ONE, {"namespace": namespace, "id": id})
        if not rows:
            return False
        tally = tally_sql.tally_from_row(rows[0])
        if not tally.whole:
            return False
        if not tally.agrees:
            # A counter repair only makes the quota figure true: never refused.
            await tx.execute(EXEMPT)
            await tx.execute(
                REPAIR,
                {
                    "namespace": namespace,
                    "id": id,
                    "next_seq": tally.max_seq + 1,
                    "size": tally.total_size,
                },
            )
            await tx.execute(UNEXEMPT)
    return True
