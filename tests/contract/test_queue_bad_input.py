"""Bad input to every QueueService RPC: the exact code and detail, and never UNKNOWN,
INTERNAL or UNAVAILABLE.

`CASES` holds each bad request with the status it must get. `ODDITIES` holds requests
that are unusual but whose outcome the contract leaves open (success or a caller
error); the sweep at the end asserts that no oddity is answered with one of
CALLER_FAULT_CODES (each case's exact status already excludes them).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from strata.v1 import queue_pb2
from tests.contract.helpers import (
    CALLER_FAULT_CODES,
    enqueue,
    enqueue_request,
    expect_error,
    from_now,
    lease,
    queue_stub,
    seconds,
    to_struct,
    unique,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
TOO_LARGE = grpc.StatusCode.RESOURCE_EXHAUSTED
BIG = "x" * (2 * 1024 * 1024)
"""A 2 MB string: over the default 1 MiB payload limit, under the message limit."""
UNKNOWN_ID = "01NOSUCHJOB0000000000000000"
TOKEN = "0" * 32


@dataclass(frozen=True)
class Ctx:
    """A queue of this test's own, holding one leased job."""

    qs: Any
    queue: str
    job_id: str
    token: str


Call = Callable[[Ctx], Any]


@dataclass(frozen=True)
class Case:
    """A bad request and the status it must get."""

    call: Call
    code: grpc.StatusCode = INVALID
    reason: str | None = "INVALID_ARGUMENT"
    field: str | None = None
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)


CASES: dict[str, Case] = {}


def case(
    name: str,
    call: Call,
    field: str | None = None,
    code: grpc.StatusCode = INVALID,
    reason: str | None = "INVALID_ARGUMENT",
    **metadata: str,
) -> None:
    """Add a bad request to CASES."""
    assert name not in CASES, name
    CASES[name] = Case(call, code, reason, field, metadata)


def duration(secs: int, nanos: int = 0) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=secs, nanos=nanos)


# --- requests, each taking the context and overriding any field --------------------


def _enqueue(c: Ctx, **fields: Any) -> Any:
    fields.setdefault("queue", c.queue)
    payload = fields.pop("payload", {"a": 1})
    return c.qs.Enqueue(queue_pb2.EnqueueRequest(payload=to_struct(payload), **fields))


def _batch(c: Ctx, jobs: list[queue_pb2.EnqueueRequest] | None = None, **fields: Any) -> Any:
    if jobs is None:
        jobs = [enqueue_request(c.queue, {"i": 0})]
    return c.qs.BatchEnqueue(queue_pb2.BatchEnqueueRequest(jobs=jobs, **fields))


def _batch_with(index: int, **bad: Any) -> Call:
    """A batch of 5 good jobs whose job at `index` has the `bad` fields."""

    def call(c: Ctx) -> Any:
        jobs = [enqueue_request(c.queue, {"i": i}) for i in range(5)]
        fields = dict(bad)
        payload = fields.pop("payload", {"i": index})
        jobs[index] = enqueue_request(fields.pop("queue", c.queue), payload, **fields)
        return _batch(c, jobs)

    return call


def _lease(c: Ctx, **fields: Any) -> Any:
    fields.setdefault("queue", c.queue)
    fields.setdefault("max_jobs", 1)
    return c.qs.LeaseJobs(queue_pb2.LeaseJobsRequest(**fields))


def _ack(c: Ctx, **fields: Any) -> Any:
    fields.setdefault("id", c.job_id)
    fields.setdefault("lease_token", c.token)
    return c.qs.AckJob(queue_pb2.AckJobRequest(**fields))


def _fail(c: Ctx, **fields: Any) -> Any:
    fields.setdefault("id", c.job_id)
    fields.setdefault("lease_token", c.token)
    return c.qs.FailJob(queue_pb2.FailJobRequest(**fields))


def _extend(c: Ctx, **fields: Any) -> Any:
    fields.setdefault("id", c.job_id)
    fields.setdefault("lease_token", c.token)
    fields.setdefault("lease_duration", seconds(60))
    return c.qs.ExtendLease(queue_pb2.ExtendLeaseRequest(**fields))


def _cancel(c: Ctx, **fields: Any) -> Any:
    fields.setdefault("id", c.job_id)
    return c.qs.CancelJob(queue_pb2.CancelJobRequest(**fields))


def _get(c: Ctx, **fields: Any) -> Any:
    fields.setdefault("id", c.job_id)
    return c.qs.GetJob(queue_pb2.GetJobRequest(**fields))


def _retry(c: Ctx, **fields: Any) -> Any:
    fields.setdefault("id", c.job_id)
    return c.qs.RetryJob(queue_pb2.RetryJobRequest(**fields))


def _list(c: Ctx, **fields: Any) -> Any:
    fields.setdefault("queue", c.queue)
    return c.qs.ListJobs(queue_pb2.ListJobsRequest(**fields))


def _pause(c: Ctx, **fields: Any) -> Any:
    fields.setdefault("queue", c.queue)
    return c.qs.PauseQueue(queue_pb2.PauseQueueRequest(**fields))


def _resume(c: Ctx, **fields: Any) -> Any:
    fields.setdefault("queue", c.queue)
    return c.qs.ResumeQueue(queue_pb2.ResumeQueueRequest(**fields))


def _stats(c: Ctx, **fields: Any) -> Any:
    fields.setdefault("queue", c.queue)
    return c.qs.GetQueueStats(queue_pb2.GetQueueStatsRequest(**fields))


BY_QUEUE: dict[str, Callable[..., Any]] = {
    "Enqueue": _enqueue,
    "LeaseJobs": _lease,
    "ListJobs": _list,
    "PauseQueue": _pause,
    "ResumeQueue": _resume,
    "GetQueueStats": _stats,
}
BY_ID: dict[str, Callable[..., Any]] = {
    "AckJob": _ack,
    "FailJob": _fail,
    "ExtendLease": _extend,
    "CancelJob": _cancel,
    "GetJob": _get,
    "RetryJob": _retry,
}
EVERY_RPC: dict[str, Callable[..., Any]] = {**BY_QUEUE, "BatchEnqueue": _batch, **BY_ID}

BAD_QUEUE_NAMES = {
    "empty": "",
    "leading digit": "9q",
    "space": "has space",
    "70 characters": "q" * 70,
    "dot": "a.b",
    "slash": "a/b",
    "non-ascii": "qü",
}
BAD_IDS = {"empty": "", "space": "has space", "leading dot": ".x", "257 characters": "i" * 257}


# --- names, namespaces and ids of every RPC -----------------------------------------

for _rpc, _call in BY_QUEUE.items():
    for _label, _name in BAD_QUEUE_NAMES.items():
        case(
            f"{_rpc} queue {_label}",
            lambda c, call=_call, name=_name: call(c, queue=name),
            "queue",
        )
for _label, _name in BAD_QUEUE_NAMES.items():
    case(
        f"BatchEnqueue jobs[0].queue {_label}",
        lambda c, name=_name: _batch(c, [enqueue_request(name, {})]),
        "jobs[0].queue",
        job_index="0",
    )

for _rpc, _call in EVERY_RPC.items():
    case(f"{_rpc} bad namespace", lambda c, call=_call: call(c, namespace="Bad NS"), "namespace")

for _rpc, _call in BY_ID.items():
    for _label, _id in BAD_IDS.items():
        case(f"{_rpc} id {_label}", lambda c, call=_call, i=_id: call(c, id=i), "id")
    case(
        f"{_rpc} unknown id",
        lambda c, call=_call: call(c, id=UNKNOWN_ID),
        code=NOT_FOUND,
        reason="NOT_FOUND",
    )
    case(
        f"{_rpc} id of another namespace",
        lambda c, call=_call: call(c, namespace="other-ns"),
        code=NOT_FOUND,
        reason="NOT_FOUND",
    )

for _rpc, _call in {"AckJob": _ack, "FailJob": _fail, "ExtendLease": _extend}.items():
    case(f"{_rpc} empty lease_token", lambda c, call=_call: call(c, lease_token=""), "lease_token")
    case(
        f"{_rpc} empty lease_token of an unknown job",
        lambda c, call=_call: call(c, id=UNKNOWN_ID, lease_token=""),
        "lease_token",
    )
    case(
        f"{_rpc} stale lease_token",
        lambda c, call=_call: call(c, lease_token=TOKEN),
        code=grpc.StatusCode.FAILED_PRECONDITION,
        reason="LEASE_LOST",
    )

# --- Enqueue ------------------------------------------------------------------------

case(
    "Enqueue payload of 2 MB",
    lambda c: _enqueue(c, payload={"blob": BIG}),
    code=TOO_LARGE,
    reason="TOO_LARGE",
)
case(
    "Enqueue run_time and delay",
    lambda c: _enqueue(c, run_time=from_now(10), delay=seconds(10)),
    "delay",
)
case("Enqueue negative delay", lambda c: _enqueue(c, delay=seconds(-1)), "delay")
case("Enqueue delay of -1 us", lambda c: _enqueue(c, delay=duration(0, -1000)), "delay")
case("Enqueue max_attempts 1001", lambda c: _enqueue(c, max_attempts=1001), "max_attempts")
case("Enqueue max_attempts -1", lambda c: _enqueue(c, max_attempts=-1), "max_attempts")
case(
    "Enqueue max_attempts int32 min",
    lambda c: _enqueue(c, max_attempts=-(2**31)),
    "max_attempts",
)
case("Enqueue unique_key 257 characters", lambda c: _enqueue(c, unique_key="k" * 257), "unique_key")
case("Enqueue unique_key with newline", lambda c: _enqueue(c, unique_key="a\nb"), "unique_key")
case("Enqueue unique_key with NUL", lambda c: _enqueue(c, unique_key="a\x00b"), "unique_key")
case("Enqueue request_id 257 characters", lambda c: _enqueue(c, request_id="r" * 257), "request_id")
case("Enqueue retry_backoff 0", lambda c: _enqueue(c, retry_backoff=seconds(0)), "retry_backoff")
case(
    "Enqueue negative retry_backoff",
    lambda c: _enqueue(c, retry_backoff=seconds(-1)),
    "retry_backoff",
)
case(
    "Enqueue retry_backoff over 1 hour",
    lambda c: _enqueue(c, retry_backoff=seconds(3601)),
    "retry_backoff",
)
case(
    "Enqueue run_time beyond year 9999",
    lambda c: _enqueue(c, run_time=timestamp_pb2.Timestamp(seconds=10**12)),
    "run_time",
)
case(
    "Enqueue run_time with bad nanos",
    lambda c: _enqueue(c, run_time=timestamp_pb2.Timestamp(seconds=4_000_000_000, nanos=-5)),
    "run_time",
)
case(
    "Enqueue payload with NUL",
    lambda c: _enqueue(c, payload={"s": "a\x00b"}),
    "payload",
)
case(
    "Enqueue payload with NaN",
    lambda c: _enqueue(c, payload={"n": float("nan")}),
    "payload.n",
)

# --- BatchEnqueue -------------------------------------------------------------------

case("BatchEnqueue no jobs", lambda c: _batch(c, []), "jobs")
case(
    "BatchEnqueue 1001 jobs",
    lambda c: _batch(c, [enqueue_request(c.queue, {"i": i}) for i in range(1001)]),
    "jobs",
)
case(
    "BatchEnqueue max_attempts at index 3",
    _batch_with(3, max_attempts=1001),
    "jobs[3].max_attempts",
    job_index="3",
)
case(
    "BatchEnqueue run_time and delay at index 4",
    _batch_with(4, run_time=from_now(5), delay=seconds(5)),
    "jobs[4].delay",
    job_index="4",
)
case(
    "BatchEnqueue negative delay at index 1",
    _batch_with(1, delay=seconds(-5)),
    "jobs[1].delay",
    job_index="1",
)
case(
    "BatchEnqueue unique_key at index 0",
    _batch_with(0, unique_key="k" * 300),
    "jobs[0].unique_key",
    job_index="0",
)
case(
    "BatchEnqueue payload of 2 MB at index 2",
    _batch_with(2, payload={"blob": BIG}),
    code=TOO_LARGE,
    reason="TOO_LARGE",
    job_index="2",
)
case(
    "BatchEnqueue request_id 257 characters",
    lambda c: _batch(c, request_id="r" * 257),
    "request_id",
)

# --- LeaseJobs and ExtendLease ------------------------------------------------------

case("LeaseJobs max_jobs 0", lambda c: _lease(c, max_jobs=0), "max_jobs")
case("LeaseJobs max_jobs 1001", lambda c: _lease(c, max_jobs=1001), "max_jobs")
case("LeaseJobs max_jobs -1", lambda c: _lease(c, max_jobs=-1), "max_jobs")
case("LeaseJobs lease_duration 0", lambda c: _lease(c, lease_duration=seconds(0)), "lease_duration")
case(
    "LeaseJobs negative lease_duration",
    lambda c: _lease(c, lease_duration=seconds(-30)),
    "lease_duration",
)
case(
    "LeaseJobs lease_duration under 1 s",
    lambda c: _lease(c, lease_duration=seconds(0.5)),
    "lease_duration",
)
case(
    "LeaseJobs lease_duration over 12 h",
    lambda c: _lease(c, lease_duration=seconds(12 * 3600 + 1)),
    "lease_duration",
)
case("LeaseJobs negative wait", lambda c: _lease(c, wait=seconds(-1)), "wait")
case("LeaseJobs wait 61 s", lambda c: _lease(c, wait=seconds(61)), "wait")
case(
    "ExtendLease lease_duration 0",
    lambda c: _extend(c, lease_duration=seconds(0)),
    "lease_duration",
)
case(
    "ExtendLease negative lease_duration",
    lambda c: _extend(c, lease_duration=seconds(-5)),
    "lease_duration",
)
case(
    "ExtendLease lease_duration over 12 h",
    lambda c: _extend(c, lease_duration=seconds(13 * 3600)),
    "lease_duration",
)

# --- AckJob and FailJob -------------------------------------------------------------

case(
    "AckJob result of 2 MB",
    lambda c: _ack(c, result=to_struct({"blob": BIG})),
    code=TOO_LARGE,
    reason="TOO_LARGE",
)
case("AckJob result with NUL", lambda c: _ack(c, result=to_struct({"s": "\x00"})), "result")
case("FailJob negative retry_delay", lambda c: _fail(c, retry_delay=seconds(-1)), "retry_delay")

# --- ListJobs -----------------------------------------------------------------------


def _token_of(body: Any) -> str:
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _token_of_other_queue(c: Ctx) -> Any:
    other = unique("q")
    for i in range(3):
        enqueue(c.qs, other, {"i": i})
    token = _list(c, queue=other, page_size=1).next_page_token
    assert token
    return _list(c, page_token=token)


def _token_of_other_state(c: Ctx) -> Any:
    for i in range(2):
        enqueue(c.qs, c.queue, {"i": i})
    token = _list(c, page_size=1).next_page_token
    assert token
    return _list(c, page_token=token, state=queue_pb2.JOB_STATE_COMPLETED)


case("ListJobs negative page_size", lambda c: _list(c, page_size=-1), "page_size")
case("ListJobs garbage page_token", lambda c: _list(c, page_token="garbage!!"), "page_token")
case("ListJobs page_token not base64 json", lambda c: _list(c, page_token="AAAA"), "page_token")
case(
    "ListJobs page_token of another queue",
    _token_of_other_queue,
    "page_token",
)
case("ListJobs page_token of another state", _token_of_other_state, "page_token")
case(
    "ListJobs page_token with a forged key",
    lambda c: _list(c, page_token=_token_of({"v": 1, "q": "0" * 16, "k": [{"$v": [1]}]})),
    "page_token",
)
case("ListJobs unknown state", lambda c: _list(c, state=99), "state")


def new_ctx(channel: Any, lease_seconds: float) -> Ctx:
    """A fresh queue holding one job, leased for `lease_seconds`."""
    qs = queue_stub(channel)
    name = unique("q")
    enqueue(qs, name, {"seed": True}, run_time=from_now(-1))
    [job] = lease(qs, name, lease_seconds=lease_seconds)
    return Ctx(qs, name, job.id, job.lease_token)


@pytest.fixture
def ctx(stubs) -> Ctx:
    """A fresh queue with one job leased for 5 minutes."""
    return new_ctx(stubs.channel, 300)


def changes_state(name: str) -> bool:
    """The cases that enqueue on purpose (to get a page token of another list)."""
    return "another state" in name or "another queue" in name


@pytest.fixture(scope="module")
def shared_ctx(server, stubs_for) -> Ctx:
    """One queue and leased job for every case that changes nothing, the module's
    whole run long (an hour's lease). test_refused_requests_change_nothing sends
    all of them in a row to one ctx and finds it as it was, so each gets the state
    a fresh ctx would give it; a fresh queue per case cost most of this module's
    time."""
    return new_ctx(stubs_for(server).channel, 3600)


@pytest.mark.parametrize("name", CASES.keys(), ids=CASES.keys())
def test_bad_request_gets_the_right_status(shared_ctx, name: str, request):
    bad = CASES[name]
    ctx = request.getfixturevalue("ctx") if changes_state(name) else shared_ctx
    expect_error(lambda: bad.call(ctx), bad.code, bad.reason, bad.field, **bad.metadata)


def test_refused_requests_change_nothing(ctx):
    for name, bad in CASES.items():
        if changes_state(name):
            continue
        with contextlib.suppress(grpc.RpcError):
            bad.call(ctx)
    stats = _stats(ctx)
    assert (stats.available, stats.scheduled, stats.leased, stats.completed) == (0, 0, 1, 0)
    assert (stats.dead, stats.cancelled, stats.paused) == (0, 0, False)
    job = _get(ctx)
    assert (job.state, job.attempt) == (queue_pb2.JOB_STATE_LEASED, 1)
    assert _ack(ctx).state == queue_pb2.JOB_STATE_COMPLETED


# --- requests whose outcome is open, but never a server fault -----------------------

HUGE = duration_pb2.Duration(seconds=315_576_000_000)
"""The largest Duration protobuf allows (10,000 years)."""
OUT_OF_RANGE = duration_pb2.Duration(seconds=10**15)
"""Beyond the range protobuf allows for a Duration."""

ODDITIES: dict[str, Call] = {
    "Enqueue delay of 10,000 years": lambda c: _enqueue(c, delay=HUGE),
    "Enqueue delay beyond the Duration range": lambda c: _enqueue(c, delay=OUT_OF_RANGE),
    "Enqueue retry_backoff beyond the Duration range": lambda c: _enqueue(
        c, retry_backoff=OUT_OF_RANGE
    ),
    "Enqueue run_time year 1": lambda c: _enqueue(
        c, run_time=timestamp_pb2.Timestamp(seconds=-62135596800)
    ),
    "Enqueue run_time year 9999": lambda c: _enqueue(
        c, run_time=timestamp_pb2.Timestamp(seconds=253402300799)
    ),
    "Enqueue priority int32 max": lambda c: _enqueue(c, priority=2**31 - 1),
    "Enqueue priority int32 min": lambda c: _enqueue(c, priority=-(2**31)),
    "Enqueue max_attempts 1000": lambda c: _enqueue(c, max_attempts=1000),
    "Enqueue unique_key 256 characters": lambda c: _enqueue(c, unique_key="k" * 256),
    "Enqueue unique_key non-ascii": lambda c: _enqueue(c, unique_key="ключ ✓"),
    "Enqueue retry_backoff 1 hour": lambda c: _enqueue(c, retry_backoff=seconds(3600)),
    "Enqueue request_id reused with other content": lambda c: (
        _enqueue(c, request_id="reused-" + c.queue, payload={"a": 1}),
        _enqueue(c, request_id="reused-" + c.queue, payload={"a": 2}),
    ),
    "Enqueue 64-character queue name": lambda c: _enqueue(c, queue="q" * 64),
    "LeaseJobs max_jobs 1000": lambda c: _lease(c, max_jobs=1000),
    "LeaseJobs lease_duration 12 h": lambda c: _lease(c, lease_duration=seconds(12 * 3600)),
    "LeaseJobs lease_duration beyond the Duration range": lambda c: _lease(
        c, lease_duration=OUT_OF_RANGE
    ),
    "LeaseJobs wait beyond the Duration range": lambda c: _lease(c, wait=OUT_OF_RANGE),
    "LeaseJobs wait 60 s with a job available": lambda c: (
        enqueue(c.qs, c.queue, {}),
        _lease(c, wait=seconds(60)),
    ),
    "ExtendLease lease_duration beyond the Duration range": lambda c: _extend(
        c, lease_duration=OUT_OF_RANGE
    ),
    "ExtendLease lease_duration 10,000 years": lambda c: _extend(c, lease_duration=HUGE),
    "FailJob retry_delay of 10,000 years": lambda c: _fail(c, retry_delay=HUGE),
    "FailJob retry_delay beyond the Duration range": lambda c: _fail(c, retry_delay=OUT_OF_RANGE),
    "FailJob error of 1 MB": lambda c: _fail(c, error="e" * 1024 * 1024),
    "FailJob error with NUL": lambda c: _fail(c, error="a\x00b", retry_delay=seconds(0)),
    "ListJobs huge page_size": lambda c: _list(c, page_size=2**31 - 1),
    "GetQueueStats of a queue never used": lambda c: _stats(c, queue=unique("q")),
    "ResumeQueue of a queue never paused": lambda c: _resume(c, queue=unique("q")),
}


# Only the oddities: every case of CASES already has its exact status asserted above,
# which excludes UNKNOWN and INTERNAL, so sending it again would prove nothing more.
SWEEP = ODDITIES


@pytest.mark.parametrize("call", SWEEP.values(), ids=SWEEP.keys())
def test_no_request_yields_unknown_or_internal(ctx, call):
    try:
        call(ctx)
    except grpc.RpcError as error:
        assert error.code() not in CALLER_FAULT_CODES, f"{error.code().name}: {error.details()}"
