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

The hand-over outlives the calls on both sides: an enqueue cancelled meanwhile
still hands its job over, and jobs leased for a consumer that ended before taking
them are released in a task of their own, so neither side's cancellation strands a
leased job until its lease expires.
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from strata_server.core import errors
from strata_server.core.job_transitions import Job, NewJob, without_token
from strata_server.core.models import Actor, Handoff
from strata_server.services.topics import Wakeups
from strata_server.storage.ports import Listener, QueueStore
from strata_server.storage.ports.write_context import WriteContext

log = structlog.get_logger("strata.queue")


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

    def count(self, namespace: str, queue: str) -> int:
        """How many consumers are parked on the queue."""
        return len(self._parked.get((namespace, queue), ()))

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


class HandOff:
    """This replica's parked consumers, and the enqueues that lease for them."""

    def __init__(self, store: QueueStore, wakeups: Wakeups) -> None:
        self._store = store
        self._wakeups = wakeups
        self._parking = Parking()
        self._releases: set[asyncio.Task[None]] = set()

    def parked(self, namespace: str, queue: str) -> int:
        """How many consumers on the queue an enqueue here could hand a job to now."""
        return self._parking.count(namespace, queue)

    def take(self, namespace: str, queue: str) -> Parked | None:
        """Reserve the longest-parked consumer on the queue for an enqueue (which must
        then call `enqueue_for`); None when none is parked there."""
        return self._parking.take(namespace, queue)

    async def enqueue_for(
        self,
        namespace: str,
        parked: Parked,
        job: NewJob,
        *,
        actor: Actor,
        notices: Sequence[str],
    ) -> tuple[Job, Job | None]:
        """Insert `job`, leased for `parked` when it is first in line, and hand the
        consumer what was leased for it. Returns the job as inserted and, when it went
        to the consumer, as leased (without its token: only the consumer holds it)."""
        handing = asyncio.ensure_future(
            self._store.enqueue_and_lease(
                namespace, job, parked.handoff(), WriteContext(actor, notices=notices)
            )
        )
        # Hand the jobs over even if this call is cancelled meanwhile.
        handing.add_done_callback(functools.partial(self._hand, namespace, parked))
        created, leased = await asyncio.shield(handing)
        handed = next((j for j in leased if j.id == created.id), None)
        return created, None if handed is None else without_token(handed)

    def _hand(
        self,
        namespace: str,
        parked: Parked,
        handing: asyncio.Future[tuple[Job, list[Job]]],
    ) -> None:
        """Give a taken consumer the jobs leased for it (none when the enqueue
        failed), or release them when the consumer has ended."""
        assert parked.taken is not None
        failed = handing.cancelled() or handing.exception() is not None
        leased = [] if failed else handing.result()[1]
        if not parked.gone:
            parked.taken.set_result(leased)
            self._wakeups.handed_off(parked.waiter)
        else:
            self._release_later(namespace, leased, parked.actor)

    def _release_later(self, namespace: str, jobs: list[Job], who: Actor) -> None:
        """Release, in a task of its own, jobs handed to a consumer that ended."""
        if jobs:
            task = asyncio.ensure_future(self._release(namespace, jobs, who))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

    async def _release(self, namespace: str, jobs: list[Job], who: Actor) -> None:
        """Release jobs leased for a consumer that ended before it could take them:
        runnable again at once. One that cannot be released (the store is down)
        comes back when its lease expires."""
        for job in jobs:
            try:
                await self._store.release_job(namespace, job.id, job.lease_token or "", actor=who)
            except errors.StrataError as error:
                log.warning("could not release a handed-off job", job=job.id, error=str(error))

    async def wait(
        self,
        namespace: str,
        queue: str,
        parked: Parked | None,
        wakeups: Listener,
        within: float | None,
    ) -> tuple[set[str], list[Job]]:
        """Wait up to `within` seconds (None: until woken) for a wakeup, parked on the
        queue when `parked` is given. Returns the topics woken and the jobs an enqueue
        leased for the consumer meanwhile."""
        if parked is None:
            return await wakeups.wait(within), []
        self._parking.park(namespace, queue, parked)
        handed: list[Job] | None = None
        try:
            woke = await wakeups.wait(within)
            if parked.taken is None:
                return woke, []
            # Taken: the enqueue is one round trip from done. Shielded, so that
            # this consumer ending cancels its wait, not the hand-over.
            handed = await asyncio.shield(parked.taken)
            return woke, handed
        finally:
            self._parking.unpark(namespace, queue, parked)
            if parked.taken is not None and handed is None:  # ended while taken
                if parked.taken.done():
                    self._release_later(namespace, parked.taken.result(), parked.actor)
                else:
                    parked.gone = True
