"""What CheckIntegrity reports: findings, each a problem with one thing stored.

A finding is repairable only when the repair cannot lose or invent data: a
database index is rebuilt from the rows, a job whose columns contradict its state
gets the columns that state implies (a broken lease is given back, as an expired
one would be). Anything else (a corrupt database page, missing or corrupt bytes)
is reported for an operator, never guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: which check found it, where, and whether it was repaired."""

    check: str
    namespace: str
    entity: str
    entity_id: str
    problem: str
    repairable: bool
    repaired: bool = False


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    """Every finding of one run, and how many things each check looked at."""

    findings: tuple[Finding, ...]
    checked: tuple[tuple[str, int], ...]
    repair: bool
    started: datetime
    finished: datetime

    @property
    def repaired(self) -> int:
        """Findings repaired by this run."""
        return sum(1 for finding in self.findings if finding.repaired)


JOB_PROBLEMS = {
    "lease_broken": "leased without a lease token or expiry",
    "lease_stray": "holds a lease token or expiry in a state that has none",
    "finish_missing": "finished without a finish_time",
    "finish_stray": "unfinished with a finish_time",
}
"""Contradictions between a job's state and its columns, by code; each has a safe
repair (`storage/*/integrity.py` JOB_REPAIRS)."""
