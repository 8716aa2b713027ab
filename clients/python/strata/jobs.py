"""Jobs and queue statistics as the client returns them: plain Python values
instead of `strata.v1.queue_pb2` messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeAlias

from strata._convert import fields_from_message
from strata.v1 import queue_pb2

__all__ = ["JOB_STATES", "Job", "JobState", "QueueStats"]

JobState: TypeAlias = Literal[
    "available", "scheduled", "leased", "completed", "dead", "cancelled", "unspecified"
]
"""Where a job is in its life: `available` (runnable now), `scheduled` (waiting
for its run_time), `leased` (held by a worker), `completed` (acked), `dead` (failed
max_attempts times) or `cancelled`. `unspecified` stands for a state this client
does not know (a newer server's)."""

JOB_STATES: dict[JobState, queue_pb2.JobState.ValueType] = {
    "available": queue_pb2.JOB_STATE_AVAILABLE,
    "scheduled": queue_pb2.JOB_STATE_SCHEDULED,
    "leased": queue_pb2.JOB_STATE_LEASED,
    "completed": queue_pb2.JOB_STATE_COMPLETED,
    "dead": queue_pb2.JOB_STATE_DEAD,
    "cancelled": queue_pb2.JOB_STATE_CANCELLED,
}
"""Each state's `strata.v1.JobState` value."""

_STATE_NAMES = {value: name for name, value in JOB_STATES.items()}


@dataclass(frozen=True, slots=True)
class Job:
    """A unit of work in a queue."""

    namespace: str
    """The tenant or workspace the job belongs to."""
    queue: str
    """The queue the job belongs to."""
    id: str
    """Server-assigned id, unique within the namespace."""
    state: JobState
    """Where the job is in its life, e.g. "available" or "leased"."""
    payload: dict[str, Any] = field(hash=False)
    """What the worker needs to do the work."""
    priority: int
    """Higher runs first."""
    run_time: datetime
    """Not leased before this time (aware, UTC)."""
    attempt: int
    """Attempts started so far (0 before the first lease)."""
    max_attempts: int
    """Attempts allowed before the job is dead."""
    create_time: datetime
    """When the job was enqueued (aware, UTC)."""
    update_time: datetime
    """When the job last changed (aware, UTC)."""
    lease_token: str | None = None
    """The current lease's token: set on the jobs `lease_jobs` returns, and needed
    to ack, fail or extend them. None when the caller does not hold the lease."""
    lease_expire_time: datetime | None = None
    """When the current lease ends unless extended (aware, UTC); None when unleased."""
    last_error: str | None = None
    """The error of the last failed attempt; None when no attempt failed."""
    result: dict[str, Any] | None = field(default=None, hash=False)
    """What the worker returned on ack; None when not completed or acked without one."""
    unique_key: str | None = None
    """The deduplication key, if any."""
    finish_time: datetime | None = None
    """When the job completed, died or was cancelled (aware, UTC); None before."""
    retry_backoff: timedelta | None = None
    """First retry delay (later ones double it); None means the server default."""

    @classmethod
    def from_proto(cls, message: queue_pb2.Job) -> Job:
        """The job a `strata.v1.Job` message describes."""
        state = _STATE_NAMES.get(message.state, "unspecified")
        return cls(**fields_from_message(cls, message, state=state))


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A queue's state and the number of its jobs in each state."""

    namespace: str
    """The tenant or workspace."""
    queue: str
    """The queue."""
    paused: bool
    """Whether leasing is stopped (`pause_queue`)."""
    available: int
    """Jobs runnable now."""
    scheduled: int
    """Jobs waiting for their run_time."""
    leased: int
    """Jobs held by workers."""
    completed: int
    """Completed jobs not yet purged."""
    dead: int
    """Jobs that failed max_attempts times."""
    cancelled: int
    """Cancelled jobs."""
    oldest_available_age: timedelta
    """How long the oldest runnable job has waited; zero when none is."""
    expired_leases: int
    """Leases that expired (and were reclaimed) within the last `expiry_window`."""
    expiry_window: timedelta
    """The window `expired_leases` counts over."""

    @classmethod
    def from_proto(cls, message: queue_pb2.QueueStats) -> QueueStats:
        """The statistics a `strata.v1.QueueStats` message describes."""
        return cls(**fields_from_message(cls, message))
