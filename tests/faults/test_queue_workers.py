"""Workers under load and worker crashes: every job completes exactly once across two
server replicas on one PostgreSQL database, and a job whose worker was killed with
SIGKILL is leased again once its lease runs out."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from strata.v1 import queue_pb2
from tests.contract.helpers import (
    ack,
    enqueue,
    enqueue_request,
    lease,
    queue_stats,
    queue_stub,
    unique,
)
from tests.support.server import ROOT, StrataProcess

JOBS = 2_000
"""Exactly-once is a property of each lease racing the others: 20 workers on two
replicas, each leasing up to 10, put 200 jobs in flight and make every LeaseJobs
contend with 19 others from the first round. 2,000 jobs is ten rounds a worker,
about 200 contended leases over two BatchEnqueues of the largest size; the
10,000 this was repeated the same races five times over."""
BATCH = 1000
WORKERS = 20
LEASE_MAX = 10
CALL_TIMEOUT = 30.0


@pytest.fixture
def two_replicas(
    database_url: Callable[[str], str], tmp_path: Path
) -> Iterator[tuple[StrataProcess, StrataProcess]]:
    """Two servers on one fresh PostgreSQL database (the first one migrates it)."""
    url = database_url("postgres")
    first = StrataProcess(url, tmp_path / "a")
    second = StrataProcess(url, tmp_path / "b")
    try:
        first.start()
        second.start()
        yield first, second
    finally:
        first.kill()
        second.kill()


class Drain:
    """Worker threads, each on its own channel, leasing and acking until the queue
    has nothing left to lease."""

    def __init__(self, servers: tuple[StrataProcess, ...], queue: str) -> None:
        self.servers = servers
        self.queue = queue
        self.lock = threading.Lock()
        self.leased: list[tuple[str, int]] = []
        self.acked: list[str] = []
        self.errors: list[str] = []

    def work(self, index: int) -> None:
        server = self.servers[index % len(self.servers)]
        with server.channel() as channel:
            qs = queue_stub(channel)
            try:
                while True:
                    request = queue_pb2.LeaseJobsRequest(queue=self.queue, max_jobs=LEASE_MAX)
                    request.lease_duration.FromSeconds(120)
                    jobs = qs.LeaseJobs(request, timeout=CALL_TIMEOUT).jobs
                    if not jobs:
                        return  # nothing runnable: every job is done or held by a worker
                    with self.lock:
                        self.leased.extend((job.id, job.attempt) for job in jobs)
                    for job in jobs:
                        done = qs.AckJob(
                            queue_pb2.AckJobRequest(id=job.id, lease_token=job.lease_token),
                            timeout=CALL_TIMEOUT,
                        )
                        assert done.state == queue_pb2.JOB_STATE_COMPLETED
                        with self.lock:
                            self.acked.append(job.id)
            except (grpc.RpcError, AssertionError) as error:
                with self.lock:
                    self.errors.append(f"worker {index}: {error!r}")

    def run(self, workers: int) -> None:
        threads = [threading.Thread(target=self.work, args=(i,)) for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads), "a worker hung"


def test_20_workers_on_two_replicas_complete_2000_jobs_exactly_once(two_replicas):
    first, _ = two_replicas
    queue = unique("q")
    enqueued: list[str] = []
    with first.channel() as channel:
        qs = queue_stub(channel)
        for start in range(0, JOBS, BATCH):
            response = qs.BatchEnqueue(
                queue_pb2.BatchEnqueueRequest(
                    jobs=[enqueue_request(queue, {"i": i}) for i in range(start, start + BATCH)]
                ),
                timeout=CALL_TIMEOUT,
            )
            enqueued.extend(job.id for job in response.jobs)
        assert len(set(enqueued)) == JOBS

        started = time.monotonic()
        drain = Drain(two_replicas, queue)
        drain.run(WORKERS)
        elapsed = time.monotonic() - started

        assert not drain.errors, drain.errors[:5]
        leased_twice = [i for i, n in Counter(i for i, _ in drain.leased).items() if n > 1]
        assert not leased_twice, f"{len(leased_twice)} jobs leased twice, e.g. {leased_twice[:5]}"
        assert {attempt for _, attempt in drain.leased} == {1}
        acked_twice = [i for i, n in Counter(drain.acked).items() if n > 1]
        assert not acked_twice, f"{len(acked_twice)} jobs acked twice, e.g. {acked_twice[:5]}"
        missing = set(enqueued) - set(drain.acked)
        assert not missing, f"{len(missing)} jobs never completed, e.g. {sorted(missing)[:5]}"
        assert len(drain.acked) == JOBS

        stats = queue_stats(qs, queue)
        assert (stats.completed, stats.available, stats.leased) == (JOBS, 0, 0)
        assert (stats.scheduled, stats.dead, stats.expired_leases) == (0, 0, 0)
        assert elapsed < 60, f"draining took {elapsed:.1f} s"


WORKER = textwrap.dedent(
    """
    import sys, time
    import grpc
    from strata.v1 import queue_pb2, queue_pb2_grpc

    target, queue = sys.argv[1], sys.argv[2]
    channel = grpc.insecure_channel(target)
    stub = queue_pb2_grpc.QueueServiceStub(channel)
    request = queue_pb2.LeaseJobsRequest(queue=queue, max_jobs=1)
    request.lease_duration.FromSeconds(2)
    request.wait.FromSeconds(10)
    [job] = stub.LeaseJobs(request, timeout=30).jobs
    print(job.id, job.attempt, flush=True)
    time.sleep(600)  # "working" until killed
    """
)


def test_job_of_a_worker_killed_with_sigkill_is_leased_again(server, tmp_path):
    # The session's server: what is killed is the worker, and the queue is the test's own.
    queue = unique("q")
    with server.channel() as channel:
        qs = queue_stub(channel)
        job = enqueue(qs, queue, {"work": "long"})
        log = tmp_path / "worker.log"
        with (
            log.open("w") as errors,
            subprocess.Popen(
                [sys.executable, "-c", WORKER, server.target, queue],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            ) as worker,
        ):
            try:
                assert worker.stdout is not None
                line = worker.stdout.readline()
                leased_at = time.monotonic()
                assert line, f"the worker leased nothing: {log.read_text()}"
                leased_id, attempt = line.split()
                assert (leased_id, attempt) == (job.id, "1")
            finally:
                worker.kill()  # SIGKILL, by PID: mid-job, no ack, no fail
                worker.wait(10)
        assert worker.returncode == -9

        # its lease still holds for ~2 s: nobody else gets the job yet
        assert lease(qs, queue, lease_seconds=30) == []
        again = lease(qs, queue, lease_seconds=30, wait_seconds=5)
        waited = time.monotonic() - leased_at
        assert [j.id for j in again] == [job.id]
        assert again[0].attempt == 2
        assert 1.8 <= waited < 4.5, f"re-leased {waited:.2f} s after the first lease"
        assert ack(qs, again[0]).state == queue_pb2.JOB_STATE_COMPLETED
        stats = queue_stats(qs, queue)
        assert (stats.completed, stats.expired_leases) == (1, 1)
