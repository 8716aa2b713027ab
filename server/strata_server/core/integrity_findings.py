"""What CheckIntegrity reports: findings, each a problem with one thing stored.

A finding is repairable only when the repair cannot lose or invent data: a
database or search index is rebuilt from the rows, a job whose columns contradict
its state gets the columns that state implies (a broken lease is given back, as
an expired one would be), a transcript's counters (next_seq, size_bytes) are
recomputed from its entries when those entries are whole (seq 1..n, offsets
adding up), and the entries of a transcript that no longer exists are deleted:
what a delete left behind, which no call can read, and which a new transcript of
the same id would otherwise inherit as its first entries. Anything else (a
corrupt database page, missing or corrupt bytes, entries with a gap) is reported
for an operator, never guessed at.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from strata_server.core.values import frozen


@frozen
class Finding:
    """One problem: which check found it, where, and whether it was repaired."""

    check: str
    namespace: str
    entity: str
    entity_id: str
    problem: str
    repairable: bool
    repaired: bool = False
    bytes: int = 0
    """Stored bytes the thing takes, where that is the point (an unreferenced blob)."""


@frozen
class IntegrityReport:
    """Every finding of one run, and how many things each check looked at."""

    findings: tuple[Finding, ...]
    checked: tuple[tuple[str, int], ...]
    repair: bool
    started: datetime
    finished: datetime
    unreferenced_bytes: int = 0
    """Stored bytes of every blob no artifact references (listed or not)."""

    @property
    def repaired(self) -> int:
        """Findings repaired by this run."""
        return sum(1 for finding in self.findings if finding.repaired)


def report_to_json(report: IntegrityReport) -> str:
    """A report as JSON, to keep the last one in the database (GetIntegrityStatus)."""
    value = asdict(report)
    value["started"] = report.started.isoformat()
    value["finished"] = report.finished.isoformat()
    return json.dumps(value, separators=(",", ":"))


def report_from_json(text: str) -> IntegrityReport:
    """The report `report_to_json` wrote."""
    value: dict[str, Any] = json.loads(text)
    return IntegrityReport(
        tuple(Finding(**finding) for finding in value["findings"]),
        tuple((str(name), int(count)) for name, count in value["checked"]),
        bool(value["repair"]),
        datetime.fromisoformat(value["started"]),
        datetime.fromisoformat(value["finished"]),
        int(value.get("unreferenced_bytes", 0)),
    )


JOB_PROBLEMS = {
    "lease_broken": "leased without a lease token or expiry",
    "lease_stray": "holds a lease token or expiry in a state that has none",
    "finish_missing": "finished without a finish_time",
    "finish_stray": "unfinished with a finish_time",
}
"""Contradictions between a job's state and its columns, by code; each has a safe
repair (`storage/*/integrity.py` JOB_REPAIRS)."""


@frozen
class TranscriptTally:
    """A transcript's counters beside what its entries add up to: how many, the
    highest seq, the sum of sizes, and the end of the last (start_offset + size)."""

    next_seq: int
    size_bytes: int
    entries: int
    max_seq: int
    total_size: int
    end_offset: int

    @property
    def whole(self) -> bool:
        """Entries numbered 1..n with offsets that add up: counters can be rebuilt."""
        return self.entries == self.max_seq and self.end_offset == self.total_size

    @property
    def agrees(self) -> bool:
        """Whether the counters match the entries."""
        return self.next_seq == self.max_seq + 1 and self.size_bytes == self.total_size


def transcript_problem(tally: TranscriptTally) -> tuple[str, bool] | None:
    """What is wrong with a transcript's counters and entries, and whether the
    repair (recompute the counters from the entries) is safe; None if nothing."""
    if not tally.whole:
        if tally.entries != tally.max_seq:
            return (
                f"its entries have gaps: {tally.entries} entries up to seq {tally.max_seq}",
                False,
            )
        return (
            f"its entries' offsets end at {tally.end_offset}, "
            f"but their sizes add up to {tally.total_size}",
            False,
        )
    if tally.agrees:
        return None
    return (
        f"counters next_seq={tally.next_seq}, size_bytes={tally.size_bytes} disagree with its "
        f"entries (next_seq={tally.max_seq + 1}, size_bytes={tally.total_size})",
        True,
    )


SEARCH_INDEX_STALE = "the full-text index of transcript entries disagrees with the entries"
"""SQLite's FTS5 index off its rows (repaired by rebuilding it from the rows)."""

ORPHAN_ENTRIES = "entries whose transcript no longer exists"
"""The problem of entries a delete left behind (repaired by deleting them)."""
