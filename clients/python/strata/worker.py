"""Workers on the blocking client: `Client.queue(name)` returns a `QueueHandle`.

    def send_email(job: strata.Job) -> dict[str, Any] | None:
        ...  # raise to fail the job; return its result (or None) to ack it

    with strata.Client("127.0.0.1:50051") as client:
        client.queue("emails").work(send_email, concurrency=4)

or, one job at a time in a loop of your own:

    for job in client.queue("emails").jobs():
        send_email(job)

A heartbeat thread extends the leases held every third of the lease duration
while the handler (or loop body) runs. Only the threads are here: what the
loops and the heartbeat decide, and how long each wait lasts at most, is in
`strata._worker` and `strata._leases`, shared with the asyncio worker of
`strata.aio_worker`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import timedelta

from strata import _queue_requests, _worker
from strata._leases import CLOSE_SECONDS, LOG, Heartbeat, LeaseBook
from strata._machines import iterate, run
from strata._transport import Transport
from strata.jobs import Job
from strata.subscription import Subscription

__all__ = ["Handler", "QueueHandle"]

Handler = Callable[[Job], _worker.Result]
"""Does one job: returns its result (a dict, or None) to ack it, raises to fail it."""


class _Heartbeat:
    """A thread that runs a `Heartbeat` over a LeaseBook; leaving the block
    closes it and waits `CLOSE_SECONDS` at most for the thread to end."""

    def __init__(self, transport: Transport, book: LeaseBook) -> None:
        self._heartbeat = Heartbeat(book, threading.Event(), threading.Event())
        self._thread = threading.Thread(
            target=run,
            args=(transport, self._heartbeat.beats()),
            name="strata-heartbeat",
            daemon=True,
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self._heartbeat

    def __exit__(self, *exc_info: object) -> None:
        self._heartbeat.close()
        self._thread.join(CLOSE_SECONDS)
        if self._thread.is_alive():
            LOG.warning("the heartbeat thread did not end within %s s; leaving it", CLOSE_SECONDS)


class QueueHandle(_worker.HandleBase[Transport]):
    """One queue of a blocking `Client`, as its workers see it: `work` runs a
    handler on each job, `jobs` hands the jobs to a loop of your own.

    Delivery is at least once: a job whose worker dies, or whose lease expires
    before the ack, runs again. Make handlers idempotent.
    """

    def work(
        self,
        handler: Handler,
        *,
        concurrency: int = 1,
        stop: threading.Event | None = None,
        lease_duration: timedelta = _queue_requests.DEFAULT_LEASE,
        wait: timedelta = _worker.DEFAULT_WAIT,
    ) -> None:
        """Run `handler` on the queue's jobs, `concurrency` at a time in threads
        of a pool, until `stop` is set or, when called in the main thread, a
        SIGINT or SIGTERM arrives; then finish the jobs in hand and return.

        Leases as many jobs as there are idle threads, waiting up to `wait` for
        some (a long poll, cancelled when `stop` is set), for `lease_duration`
        each, extended every third of it by a heartbeat thread while the handler
        runs. A handler that returns acks its job with what it returned (a dict,
        or None); one that raises fails it, with the exception's type and message
        as the job's `last_error`. A job whose lease was lost is logged (logger
        "strata.worker") and skipped, as is an ack or fail the server refuses;
        the worker goes on. A lease call that fails for a transient reason
        (UNAVAILABLE ...) is tried again after a backoff; another error is
        raised once the jobs in hand are finished.
        """
        _worker.check_concurrency(concurrency)
        stop = stop if stop is not None else threading.Event()
        leasing = self._leasing(lease_duration, wait)
        with (
            _worker.stop_on_signals(stop.set),
            _Heartbeat(self.transport, leasing.book) as heartbeat,
            futures.ThreadPoolExecutor(concurrency, f"strata-{self.name}") as pool,
        ):
            crew = _worker.Crew(
                lambda job: pool.submit(self._run, handler, job, leasing.book), threading.Event()
            )
            run(self.transport, _worker.serve(leasing, concurrency, stop, heartbeat.hold, crew))

    def subscribe(
        self,
        *,
        max_in_flight: int = 1,
        lease_duration: timedelta = _queue_requests.DEFAULT_LEASE,
    ) -> Subscription:
        """Open a SubscribeJobs stream on the queue: jobs are pushed as they become
        runnable, never more than `max_in_flight` unacked (see
        `strata.subscription`). Use it in a `with` block, whose end releases the
        jobs it delivered and that were not settled through it."""
        return Subscription(
            self.transport,
            self.name,
            namespace=self.namespace,
            max_in_flight=max_in_flight,
            lease_duration=lease_duration,
        )

    def jobs(
        self,
        max_jobs: int = 10,
        *,
        lease_duration: timedelta = _queue_requests.DEFAULT_LEASE,
        wait: timedelta = _worker.DEFAULT_WAIT,
        stop: threading.Event | None = None,
    ) -> Iterator[Job]:
        """Iterate over the queue's jobs, leasing up to `max_jobs` at a time
        (waiting up to `wait` for some) for `lease_duration`, until `stop` is set
        or, in the main thread, a SIGINT or SIGTERM arrives; the jobs already
        leased are still handed out, then the iteration ends.

            for job in client.queue("emails").jobs():
                send(job.payload["to"])  # acked when the body finishes

        A job is acked (without a result) when the loop asks for the next one,
        i.e. when its body finished without an exception. When the body raises or
        leaves the loop (`break`, `return`), the job is failed, and so retried
        later; its `last_error` cannot name the exception, which Python does not
        pass to the generator: call `client.fail_job(job, error)` in the body for
        that, or use `work`. The other leased jobs not yet handed out are given
        back at once, released (their attempt does not count). While the body
        runs, a heartbeat thread extends the leases of the jobs held every third
        of `lease_duration`; it stops when the loop ends or the iterator is
        closed or garbage collected.
        """
        stop = stop if stop is not None else threading.Event()
        leasing = self._leasing(lease_duration, wait)
        with (
            _worker.stop_on_signals(stop.set),
            _Heartbeat(self.transport, leasing.book) as heartbeat,
        ):
            consumer = _worker.consume(leasing, max_jobs, stop, heartbeat.hold)
            yield from iterate(self.transport, consumer)

    def _run(self, handler: Handler, job: Job, book: LeaseBook) -> None:
        """In a thread of the pool: `handler` on `job`, then its ack or fail."""
        try:
            result, error = handler(job), None
        except Exception as exc:
            result, error = None, exc
        run(self.transport, _worker.settle(book, job, result, error))
