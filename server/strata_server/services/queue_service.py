"""The queue's use cases: enqueue (handing a job straight to a parked consumer when
one waits here), long-poll leases, SubscribeJobs streams, and the settles that wake
whoever may lease next.

Waiting is on wakeups only (services/topics.py): a consumer listens on its queue's
topic before it first leases, so an enqueue committed between an empty lease and
the wait still wakes it, and what no write announces (a scheduled job coming due, a
lease expiring, an enqueue on a replica whose wakeups do not reach this one) is
covered by the queue's shared re-check, one query per queue however many wait.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from strata_server.core import errors, validation
from strata_server.core import job_transitions as queue
from strata_server.core.idle import Probed
from strata_server.core.jsontypes import JSON
from strata_server.core.models import Actor, Idempotency, Page
from strata_server.services.handoff import HandOff, Parked
from strata_server.services.topics import (
    Wakeups,
    handoff_topic,
    queue_topic,
    subscription_topic,
    voided_topic,
)
from strata_server.storage.ports import Events, QueueStore, Recheck
from strata_server.storage.ports.queue import Failure, JobQuery, LeaseTerms
from strata_server.storage.ports.write_context import WriteContext

log = structlog.get_logger("strata.queue")

DUE_CHECK_SECONDS = 1.0
"""How often a queue that consumers wait on is re-checked for a job a lease could
take while it holds jobs (one query per queue, shared by all its waiting
consumers): it covers what no write announces, scheduled jobs coming due and leases
expiring. A queue holding no ready or leased job rests until a write wakes it
(enqueues on replicas whose wakeups do not reach this one: the registry's degraded
interval)."""


def _runnable(job: queue.NewJob) -> bool:
    """Whether a new job may be leased as soon as it is inserted."""
    return job.run_time is None or job.run_time <= datetime.now(UTC)


class Queues:
    """Jobs on a QueueStore, with consumers woken through an Events port."""

    def __init__(self, store: QueueStore, events: Events) -> None:
        self._store = store
        self._events = events
        self._wakeups = Wakeups(events)
        self._handoff = HandOff(store, self._wakeups)

    async def enqueue(
        self,
        namespace: str,
        jobs: list[queue.NewJob],
        *,
        actor: Actor,
        idempotency: Idempotency | None,
    ) -> list[queue.Job]:
        """Insert `jobs` and wake their queues' consumers. A single runnable job with
        no request id goes to a consumer parked here, leased in the insert itself."""
        # With PostgreSQL events the insert's own commit tells the other replicas.
        wake = self._wakeups.jobs_enqueued(namespace, {job.queue for job in jobs})
        first = jobs[0]
        parked = None
        if len(jobs) == 1 and idempotency is None and _runnable(first):
            parked = self._handoff.take(namespace, first.queue)
        if parked is None:
            created = await self._store.enqueue(
                namespace, jobs, WriteContext(actor, idempotency, wake.sent)
            )
        else:
            job, handed = await self._handoff.enqueue_for(
                namespace, parked, first, actor=actor, notices=wake.sent
            )
            if handed is not None:
                return [handed]  # leased already: no one to wake
            created = [job]
        wake.done()
        return created

    async def lease(
        self,
        namespace: str,
        name: str,
        max_jobs: int,
        lease: timedelta,
        wait: timedelta,
        *,
        actor: Actor,
    ) -> list[queue.Job]:
        """Lease up to `max_jobs`, waiting up to `wait` for the first when none is
        ready (parked meanwhile, so an enqueue here may lease for this call)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait.total_seconds()
        # Listening before the first lease: an enqueue between an empty lease and
        # the wait still wakes this poll.
        waiter = validation.new_id()
        with self._events.listen(
            queue_topic(namespace, name),
            handoff_topic(waiter),
            recheck=self._due_check(namespace, name),
        ) as wakeups:
            terms = LeaseTerms(lease, actor)
            jobs = await self._store.lease_jobs(namespace, name, max_jobs, terms)
            while not jobs and (remaining := deadline - loop.time()) > 0:
                parked = Parked(waiter, "", lease, actor)
                _, jobs = await self._handoff.wait(namespace, name, parked, wakeups, remaining)
                if not jobs:
                    jobs = await self._store.lease_jobs(namespace, name, max_jobs, terms)
            return jobs

    async def subscribe(
        self,
        namespace: str,
        name: str,
        max_in_flight: int,
        lease: timedelta,
        *,
        actor: Actor,
    ) -> AsyncGenerator[queue.Job, None]:
        """Lease jobs as they come, holding at most `max_in_flight` unsettled, for as
        long as the caller iterates. A slot frees when a held job is settled (on any
        replica: its lease token names this stream), cancelled, or its lease lapses."""
        # The stream's jobs carry lease tokens prefixed with its id, so that AckJob
        # and FailJob on any replica can wake it through `own` (topics.job_settled).
        subscription = validation.new_id()
        own, voided = subscription_topic(subscription), voided_topic(namespace, name)
        terms = LeaseTerms(lease, actor, token_prefix=subscription)
        held: dict[str, str] = {}  # job id -> lease token: a superset of what it holds
        recheck = False
        loop = asyncio.get_running_loop()
        # When a held lease may have expired (or been cancelled) unannounced: one
        # lease duration after the last check, at the latest.
        check_held_at = float("inf")
        with self._events.listen(
            queue_topic(namespace, name),
            own,
            voided,
            handoff_topic(subscription),
            recheck=self._due_check(namespace, name),
        ) as wakeups:
            while True:
                if held and (recheck or loop.time() >= check_held_at):
                    still = await self._store.held_leases(namespace, held)
                    held = {id: token for id, token in held.items() if id in still}
                    check_held_at = loop.time() + lease.total_seconds()
                free = max_in_flight - len(held)
                jobs = []
                if free > 0:
                    jobs = await self._store.lease_jobs(namespace, name, free, terms)
                if not jobs:
                    # Only a wakeup on `own`, or a held lease's possible expiry, can
                    # shrink `held`; an idle stream holding nothing waits for a
                    # wakeup alone. Parked meanwhile, an enqueue here may lease for it.
                    parked = Parked(subscription, subscription, lease, actor) if free > 0 else None
                    within = max(0.0, check_held_at - loop.time()) if held else None
                    woke, jobs = await self._handoff.wait(namespace, name, parked, wakeups, within)
                    recheck = own in woke or voided in woke
                if jobs:
                    if not held:
                        check_held_at = loop.time() + lease.total_seconds()
                    for index, job in enumerate(jobs):
                        held[job.id] = job.lease_token or ""
                        try:
                            yield job
                        except GeneratorExit:
                            await self._give_back(namespace, jobs[index + 1 :], actor)
                            raise

    async def _give_back(self, namespace: str, jobs: list[queue.Job], actor: Actor) -> None:
        """Release the jobs of a batch a subscription leased but never handed to its
        caller, who went away first. The caller never saw them, so its own release on
        closing cannot name them; left leased they would wait out their lease. (The job
        being sent when the call ended stays leased: the transport may have delivered
        it, and a broken stream's jobs come back when their leases expire.) One settled
        meanwhile (its token no longer holds) is skipped."""
        for job in jobs:
            try:
                await self.release(namespace, job.id, job.lease_token or "", actor=actor)
            except errors.StrataError as error:
                log.debug("subscription job not given back", job=job.id, error=str(error))

    def parked(self, namespace: str, name: str) -> int:
        """How many consumers of the queue wait parked on this replica, for an enqueue
        here to hand its job to (tests and diagnostics)."""
        return self._handoff.parked(namespace, name)

    def _due_check(self, namespace: str, name: str) -> Recheck:
        """The queue's shared re-check: whether a lease could take a job now."""
        return Recheck(
            queue_topic(namespace, name),
            functools.partial(self._availability, namespace, name),
            every=DUE_CHECK_SECONDS,
        )

    async def _availability(self, namespace: str, name: str) -> Probed:
        """The re-check's probe: moving while the queue holds jobs that may come due."""
        found = await self._store.availability(namespace, name)
        return Probed(found.now, moving=found.held, ready=found.now)

    async def ack(
        self,
        namespace: str,
        id: str,
        token: str,
        result: JSON | None,
        *,
        actor: Actor,
    ) -> queue.Job:
        """Complete a leased job; its holder may lease another."""
        job = await self._store.ack_job(namespace, id, token, result, actor=actor)
        self._wakeups.job_settled(job, token)
        return job

    async def ack_many(
        self, namespace: str, acks: list[queue.Ack], *, actor: Actor
    ) -> list[queue.Job | errors.StrataError]:
        """Complete several leased jobs, each on its own: an error per job that
        could not be acked, in the order of `acks`."""
        outcomes = await self._store.ack_jobs(namespace, acks, actor=actor)
        for ack, outcome in zip(acks, outcomes, strict=True):
            if not isinstance(outcome, errors.StrataError):
                self._wakeups.job_settled(outcome, ack.token)
        return outcomes

    async def fail(
        self,
        namespace: str,
        id: str,
        token: str,
        error: str,
        delay: timedelta | None,
        *,
        actor: Actor,
    ) -> queue.Job:
        """Record a failed attempt: retried after its backoff (or `delay`; 0 makes it
        runnable at once) or dead when out of attempts."""
        job = await self._store.fail_job(namespace, id, token, Failure(error, delay), actor=actor)
        self._wakeups.job_settled(job, token)
        return job

    async def release(self, namespace: str, id: str, token: str, *, actor: Actor) -> queue.Job:
        """Give a leased job back, runnable at once, without spending an attempt."""
        job = await self._store.release_job(namespace, id, token, actor=actor)
        self._wakeups.job_settled(job, token)
        return job

    async def extend(
        self, namespace: str, id: str, token: str, lease: timedelta, *, actor: Actor
    ) -> queue.Job:
        """Keep a lease alive for `lease` from now (a heartbeat)."""
        return await self._store.extend_lease(namespace, id, token, lease, actor=actor)

    async def cancel(self, namespace: str, id: str, *, actor: Actor) -> queue.Job:
        """Cancel an unfinished job; a lease it had is void."""
        job = await self._store.cancel_job(namespace, id, actor=actor)
        # Its lease, if it had one, is void: the stream holding it has a free slot.
        self._wakeups.lease_voided(namespace, job.queue)
        return job

    async def retry(self, namespace: str, id: str, *, actor: Actor) -> queue.Job:
        """Run a dead or cancelled job again, at once."""
        job = await self._store.retry_job(namespace, id, actor=actor)
        self._wakeups.jobs_runnable(namespace, job.queue)
        return job

    async def get_job(self, namespace: str, id: str) -> queue.Job:
        """One job as it stands."""
        return await self._store.get_job(namespace, id)

    async def list_jobs(
        self,
        namespace: str,
        name: str,
        state: queue.Visible | None,
        limit: int,
        after: tuple[Any, ...] | None,
    ) -> Page[queue.Job]:
        """A page of a queue's jobs, optionally in one visible state."""
        return await self._store.list_jobs(namespace, JobQuery(name, state, limit, after))

    async def set_paused(
        self, namespace: str, name: str, paused: bool, *, actor: Actor
    ) -> queue.QueueStats:
        """Pause or resume leasing from a queue; a resumed queue's consumers look
        again at once."""
        await self._store.set_paused(namespace, name, paused, actor=actor)
        if not paused:
            self._wakeups.jobs_runnable(namespace, name)
        return await self._store.queue_stats(namespace, name)

    async def stats(self, namespace: str, name: str) -> queue.QueueStats:
        """Counts of a queue's jobs by state."""
        return await self._store.queue_stats(namespace, name)

    async def list_queues(
        self, namespace: str, limit: int, after: str | None
    ) -> Page[queue.QueueStats]:
        """A page of the namespace's queues (those with jobs, or paused), by name."""
        return await self._store.list_queues(namespace, limit, after)
