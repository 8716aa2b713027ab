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
from typing import Any

from strata_server.core.errors import Unavailable
from strata_server.core.integrity_findings import (
    ORPHAN_ENTRIES,
    SEARCH_INDEX_STALE,
    Finding,
    TranscriptTally,
    transcript_problem,
)
from strata_server.core.models import Progress
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.transcript_queries import DELETE_ENTRIES, UNINDEX_ENTRIES

_TALLY = """
SELECT t.namespace, t.id, t.next_seq, t.size_bytes,
       coalesce(e.n, 0), coalesce(e.max_seq, 0), coalesce(e.total, 0), coalesce(e.end_offset, 0)
FROM transcripts AS t
LEFT JOIN (
    SELECT namespace, transcript_id, count(*) AS n, max(seq) AS max_seq,
           sum(size) AS total, max(start_offset + size) AS end_offset
    FROM transcript_entries
    WHERE {entries}
    GROUP BY namespace, transcript_id
) AS e ON e.namespace = t.namespace AND e.transcript_id = t.id
WHERE {transcripts}
"""

OFF = _TALLY.format(
    entries=":namespace IS NULL OR namespace = :namespace",
    transcripts="""(:namespace IS NULL OR t.namespace = :namespace)
  AND (t.next_seq <> coalesce(e.max_seq, 0) + 1 OR t.size_bytes <> coalesce(e.total, 0)
       OR coalesce(e.n, 0) <> coalesce(e.max_seq, 0)
       OR coalesce(e.end_offset, 0) <> coalesce(e.total, 0))
ORDER BY t.namespace, t.id""",
)
"""Transcripts whose counters disagree with their entries, or whose entries are
not whole (core.integrity_findings.TranscriptTally)."""

ONE = _TALLY.format(
    entries="namespace = :namespace AND transcript_id = :id",
    transcripts="t.namespace = :namespace AND t.id = :id",
)

REPAIR = """
UPDATE transcripts SET next_seq = :next_seq, size_bytes = :size
WHERE namespace = :namespace AND id = :id
"""

EXEMPT = "INSERT INTO quota_exemptions (exempt) VALUES (1)"
UNEXEMPT = "DELETE FROM quota_exemptions"
"""Around a counter repair: the quota triggers refuse nothing while the row is there
(migrations/sqlite/0013_quotas.sql)."""

COUNT = "SELECT count(*) FROM transcripts WHERE :namespace IS NULL OR namespace = :namespace"

ORPHANS = """
SELECT e.namespace, e.transcript_id, count(*) FROM transcript_entries AS e
WHERE (:namespace IS NULL OR e.namespace = :namespace)
  AND NOT EXISTS (
      SELECT 1 FROM transcripts AS t WHERE t.namespace = e.namespace AND t.id = e.transcript_id)
GROUP BY e.namespace, e.transcript_id
ORDER BY e.namespace, e.transcript_id
"""

EXISTS = "SELECT 1 FROM transcripts WHERE namespace = ? AND id = ?"

FTS_CHECK = """
INSERT INTO transcript_entries_fts (transcript_entries_fts, rank)
VALUES ('integrity-check', 1)
"""
"""Compares the full-text index with the entries; SQLITE_CORRUPT_VTAB when they differ."""

FTS_REBUILD = "INSERT INTO transcript_entries_fts (transcript_entries_fts) VALUES ('rebuild')"
"""Rebuilds the full-text index from the entries."""


def _tally(row: Any) -> TranscriptTally:
    return TranscriptTally(*(int(value) for value in row[2:]))


async def check(
    db: Connections, namespace: str | None, *, repair: bool
) -> AsyncIterator[Progress | Finding | tuple[str, int]]:
    """Progress, findings, and ("transcripts", transcripts looked at)."""
    params = {"namespace": namespace}
    [(total,)] = await db.fetchall(COUNT, params)
    yield Progress("transcripts", 0, total, "transcripts")
    for row in await db.fetchall(OFF, params):
        ns, id = row[0], row[1]
        found = transcript_problem(_tally(row))
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
        tally = _tally(rows[0])
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
