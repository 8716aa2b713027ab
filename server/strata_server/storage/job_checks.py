"""What both adapters' integrity checks share: which contradiction between a job's
state and its columns a row shows (codes of core.integrity_findings.JOB_PROBLEMS),
or NULL, the statements that find such jobs and the repair of each (plain SQL
that SQLite and PostgreSQL read alike, but for how a named parameter is written),
the walk over them (`check_jobs`), and the finding for a declared index the
database lacks (`index_finding`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from strata_server.core.index_paths import field_name
from strata_server.core.integrity_findings import JOB_PROBLEMS, Finding
from strata_server.core.models import Progress
from strata_server.core.values import frozen

JOB_CASE = """
CASE
    WHEN state = 'leased' AND (lease_token IS NULL OR lease_expire_time IS NULL)
        THEN 'lease_broken'
    WHEN state <> 'leased' AND (lease_token IS NOT NULL OR lease_expire_time IS NOT NULL)
        THEN 'lease_stray'
    WHEN state IN ('completed', 'dead', 'cancelled') AND finish_time IS NULL
        THEN 'finish_missing'
    WHEN state IN ('ready', 'leased') AND finish_time IS NOT NULL THEN 'finish_stray'
END
"""


@frozen
class JobChecks:
    """One engine's statements for the jobs check; each takes `namespace` (None:
    every namespace), a repair also `id` (and the engine's `now`, if it has one)."""

    count: str
    bad: str
    """namespace, id and problem code of every job that contradicts its state."""
    repairs: dict[str, str]
    """The repair of each problem code."""


def job_checks(param: Callable[[str], str], optional: str, now: str) -> JobChecks:
    """The statements with `param(name)` for a named placeholder, `optional`
    appended to the namespace where it may be NULL (PostgreSQL's cast) and `now`
    the time of a repair."""
    namespace = param("namespace")
    scope = f"{namespace}{optional} IS NULL OR namespace = {namespace}"
    one = f"namespace = {namespace} AND id = {param('id')}"
    return JobChecks(
        count=f"SELECT count(*) FROM jobs WHERE {scope}",
        bad=(
            f"SELECT namespace, id, {JOB_CASE} AS problem FROM jobs\n"
            f"WHERE ({scope}) AND {JOB_CASE} IS NOT NULL\n"
            "ORDER BY namespace, id"
        ),
        repairs={
            "lease_broken": (
                "UPDATE jobs SET state = 'ready', lease_token = NULL, lease_expire_time = NULL,"
                f" update_time = {now} WHERE {one} AND state = 'leased'"
            ),
            "lease_stray": (
                "UPDATE jobs SET lease_token = NULL, lease_expire_time = NULL,"
                f" update_time = {now} WHERE {one} AND state <> 'leased'"
            ),
            "finish_missing": (
                f"UPDATE jobs SET finish_time = update_time WHERE {one} AND finish_time IS NULL"
            ),
            "finish_stray": (
                f"UPDATE jobs SET finish_time = NULL WHERE {one} AND state IN ('ready', 'leased')"
            ),
        },
    )


async def check_jobs(
    rows: Callable[[str], Awaitable[Sequence[Sequence[Any]]]],
    checks: JobChecks,
    repair: Callable[[str, str, str], Awaitable[None]] | None,
) -> AsyncIterator[Progress | Finding | tuple[str, int]]:
    """The jobs check: `rows(statement)` runs a statement of `checks` for the
    namespace asked for; `repair(namespace, id, code)`, when given, repairs one job."""
    [(total,)] = await rows(checks.count)
    yield Progress("jobs", 0, total, "jobs")
    for ns, id, code in await rows(checks.bad):
        if repair is not None:
            await repair(ns, id, code)
        yield Finding("jobs", ns, "job", id, JOB_PROBLEMS[code], True, repair is not None)
    yield Progress("jobs", total, total, "jobs")
    yield ("jobs", total)


def index_finding(
    namespace: str, collection: str, keys: tuple[str, ...], name: str, state: str, repaired: bool
) -> Finding:
    """A declared index whose database index `name` is in `state` (missing, or
    invalid)."""
    return Finding(
        "indexes",
        namespace,
        "index",
        f"{collection}/{field_name(keys)}",
        f"declared, but its database index {name} is {state}",
        True,
        repaired,
    )
