"""GetQueueStats' and ListQueues' rows, as both adapters' queries return them, put
together into core.job_transitions.QueueStats. Each adapter keeps its own SQL; the
counting by visible state, the age of the oldest available job and the paging are
the same on both, so they are written once here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from strata_server.core.job_transitions import QueueStats, Visible
from strata_server.core.models import Page
from strata_server.storage.sqlquery import Dialect


def _age(at: datetime, since: datetime | None) -> timedelta:
    """How long a job available since `since` has waited at `at` (never negative: a
    clock read before the statement's own)."""
    return max(at - since, timedelta(0)) if since is not None else timedelta(0)


def queue_stats(
    namespace: str,
    queue: str,
    at: datetime,
    figures: tuple[Any, Any, datetime | None],
    counts: Iterable[tuple[str, Any]],
) -> QueueStats:
    """One queue's QueueStats read at `at`: `figures` is (paused, lease expiries in
    the window, since when its oldest available job has been available), `counts`
    the (visible state, count) of each state it holds jobs in."""
    paused, expired, since = figures
    by_state = dict.fromkeys(Visible, 0)
    for visible, count in counts:
        by_state[Visible(visible)] += int(count)
    return QueueStats(namespace, queue, bool(paused), by_state, _age(at, since), int(expired))


def queues_page(
    dialect: Dialect, namespace: str, at: datetime, rows: Sequence[Sequence[Any]], limit: int
) -> Page[QueueStats]:
    """The page of ListQueues read at `at` from rows of (queue, paused, expired,
    visible state, count, since), one per queue and visible state in queue order (a
    paused queue without jobs: one row with NULL state); `last_key` (queue,) when
    more may follow."""
    counts: dict[str, dict[Visible, int]] = {}
    figures: dict[str, tuple[bool, int, timedelta]] = {}
    for name, paused, expired, visible, count, since in rows:
        by_state = counts.setdefault(name, dict.fromkeys(Visible, 0))
        age = timedelta(0)
        if visible is not None:
            by_state[Visible(visible)] += int(count)
            if visible == Visible.AVAILABLE and since is not None:
                age = _age(at, dialect.time_value(since))
        _, _, older = figures.get(name, (False, 0, timedelta(0)))
        figures[name] = (bool(paused), int(expired), max(age, older))
    found = [
        QueueStats(namespace, name, paused, counts[name], age, expired)
        for name, (paused, expired, age) in figures.items()
    ]
    served = found[:limit]
    return Page(served, (served[-1].queue,) if len(found) > limit else None)
