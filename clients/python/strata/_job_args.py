"""The arguments the job queue's calls share, checked: a job given as a `Job` or
its id, its lease token, one job of a batch, and the text a failure leaves.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Required, TypeAlias, TypedDict

from strata.jobs import Job

JobRef: TypeAlias = Job | str
"""A job, or its id. A `Job` also gives its namespace, and its lease token to
`ack_job`, `fail_job` and `extend_lease`."""


class EnqueueSpec(TypedDict, total=False):
    """One job of `batch_enqueue(queue, specs=[...])`: its `payload` and any of
    the options of `enqueue` but `request_id`, e.g.
    `{"payload": {"to": "a@example.com"}, "priority": 5, "delay": timedelta(minutes=1)}`."""

    payload: Required[Mapping[str, Any]]
    priority: int
    run_time: datetime | None
    delay: timedelta | None
    max_attempts: int
    unique_key: str | None
    retry_backoff: timedelta | None


def error_text(error: str | BaseException) -> str:
    """What `fail_job` records for `error`: a string as it is, an exception as
    its type and message (`"ValueError: bad address\\n"`)."""
    if isinstance(error, BaseException):
        return "".join(traceback.format_exception_only(error))
    if not isinstance(error, str):
        raise TypeError(f"error must be a string or an exception, not {type(error).__name__}")
    return error


def reference(job: JobRef, namespace: str | None) -> tuple[str, str | None]:
    """The id and namespace of a job given as a `Job` or an id; `namespace=`
    wins over the job's own."""
    if isinstance(job, Job):
        return job.id, namespace or job.namespace
    if not isinstance(job, str):
        raise TypeError(f"job must be a strata.Job or an id, not {type(job).__name__}")
    return job, namespace


def lease_token(job: JobRef, lease_token: str | None) -> str:
    token = lease_token or (job.lease_token if isinstance(job, Job) else None)
    if not token:
        raise ValueError("no lease token: pass the Job that lease_jobs returned, or lease_token=")
    return token


def items(values: Iterable[Any], name: str) -> list[Any]:
    if isinstance(values, Mapping | str):
        raise TypeError(f"{name} must be a list, not a {type(values).__name__}")
    return list(values)
