"""Processes seen from /proc: a server's worker processes, whether one still runs,
and the connections it holds (tests/ops/test_workers.py, bench/workers.py)."""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path

ESTABLISHED = "01"
"""The TCP state /proc/net/tcp gives an established connection."""


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


def sockets(pid: int) -> set[int]:
    """The inodes of the sockets process `pid` holds open."""
    held: set[int] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            held.add(int(target[8:-1]))
    return held


def connections(pid: int, port: int) -> set[int]:
    """The socket inodes of the established connections to `port` that process `pid`
    holds (accepted by it, so served by it)."""
    held = sockets(pid)
    accepted: set[int] = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            if local_port == port and fields[3] == ESTABLISHED:
                accepted.add(int(fields[9]))
    return held & accepted
