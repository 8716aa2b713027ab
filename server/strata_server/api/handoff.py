"""Consumers parked on a queue (SubscribeJobs streams and LeaseJobs long polls), for
an Enqueue on the same replica to lease a job to in its own statement
(`QueueStore.enqueue_and_lease`).

Without it a parked consumer hears of an enqueue only after the insert commits, and
then leases in a round trip of its own: on the enqueue -> delivery path that is a
wakeup plus a statement. With it the enqueue takes one parked consumer off the
queue, leases for it in the insert's transaction, and hands it the job.

A consumer parks only when it may take a job (a stream with a free slot, a long
poll with none yet) and leases nothing while parked, so the one job an enqueue
leases for it never takes it past its max_in_flight or max_jobs. Each parked
consumer is taken by one enqueue at most; one woken while taken waits for that
enqueue to finish (one round trip) before it leases again.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from strata_server.core.models import Actor, Handoff
from strata_server.core.queue import Job


@dataclass(eq=False, slots=True)
class Parked:
    """One consumer waiting on a queue. `waiter` names its handoff topic and
    `token_prefix` starts the lease tokens made for it. `taken` is made when an
    enqueue takes it and resolves to the jobs leased to it (perhaps none); `gone`
    says the consumer ended before it could take them (the enqueue releases them)."""

    waiter: str
    token_prefix: str
    lease: timedelta
    actor: Actor
    taken: asyncio.Future[list[Job]] | None = None
    gone: bool = False

    def handoff(self) -> Handoff:
        """The lease to take for this consumer."""
        return Handoff(self.lease, self.token_prefix, self.actor)


@dataclass(slots=True)
class Parking:
    """The parked consumers of this replica, by (namespace, queue), oldest first."""

    _parked: defaultdict[tuple[str, str], list[Parked]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def park(self, namespace: str, queue: str, parked: Parked) -> None:
        """Offer `parked` to the next enqueue on the queue."""
        self._parked[namespace, queue].append(parked)

    def unpark(self, namespace: str, queue: str, parked: Parked) -> None:
        """Withdraw `parked` if no enqueue has taken it."""
        waiting = self._parked.get((namespace, queue))
        if waiting is not None and parked in waiting:
            waiting.remove(parked)
            if not waiting:
                del self._parked[namespace, queue]

    def take(self, namespace: str, queue: str) -> Parked | None:
        """The longest-parked consumer on the queue, now reserved for the caller, who
        must resolve its `taken`; None when none is parked there."""
        waiting = self._parked.get((namespace, queue))
        if not waiting:
            return None
        parked = waiting.pop(0)
        if not waiting:
            del self._parked[namespace, queue]
        parked.taken = asyncio.get_running_loop().create_future()
        return parked
