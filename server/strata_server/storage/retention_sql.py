"""Which finished jobs a retention count or purge takes, in SQL both dialects share.

The engines differ only in how a named parameter is written (and PostgreSQL's cast of
a parameter it compares with NULL), so each builds its statements from `old_jobs`
with its own `param`; the precedence of job policies is written once, in `_SCOPE`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strata_server.core.retention_rules import Exclude, Target
from strata_server.storage.ports.admin import OldJobs
from strata_server.storage.sqlquery import Dialect

_SCOPE = {
    Exclude.NONE: "",
    Exclude.NAMED: (
        " AND NOT EXISTS (SELECT 1 FROM retention_policies AS p"
        " WHERE p.namespace = jobs.namespace AND p.target = {target}"
        " AND p.selector = jobs.queue)"
    ),
    Exclude.ANY: (
        " AND NOT EXISTS (SELECT 1 FROM retention_policies AS p"
        " WHERE p.namespace = jobs.namespace AND p.target = {target}"
        " AND p.selector IN ('', jobs.queue))"
    ),
}
"""Which finished jobs a purge may take, beyond state, age, namespace and queue: a
queue's own policy takes all of its jobs; a namespace-wide one, the queues no
policy names; the server default, the queues no policy of the namespace covers."""


def old_jobs(exclude: Exclude, param: Callable[[str], str], optional: str = "") -> str:
    """FROM and WHERE of the finished jobs in `exclude`'s scope that `job_params`
    selects; `param(name)` writes a named placeholder, `optional` is appended to
    the placeholders that may be NULL (a cast PostgreSQL needs to type them)."""
    namespace, queue = param("namespace") + optional, param("queue") + optional
    return (
        f"FROM jobs WHERE state = {param('state')} AND finish_time < {param('before')}"
        f" AND ({namespace} IS NULL OR namespace = {param('namespace')})"
        f" AND ({queue} IS NULL OR queue = {param('queue')})"
        + _SCOPE[exclude].format(target=param("target"))
    )


def job_params(jobs: OldJobs, dialect: Dialect) -> dict[str, Any]:
    """The parameters of `old_jobs`, with `before` as the engine stores a time."""
    target = Target.COMPLETED_JOBS if jobs.state == "completed" else Target.DEAD_JOBS
    return {
        "namespace": jobs.namespace,
        "queue": jobs.queue,
        "state": jobs.state,
        "before": dialect.time_param(jobs.before),
        "target": target.value,
    }
