"""Processes seen from /proc: a server's worker processes, whether one still runs,
and the connections it holds (tests/ops/test_workers.py, bench/workers.py)."""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path


def children(pid: int) -> list[int]:
    """The pids of `pid`'s child processes (none once it has gone)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    return [pid, *itertools.chain.from_iterable(tree(child) for child in children(pid))]


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
