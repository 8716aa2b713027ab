"""The SQL both adapters' integrity checks share: which contradiction between a
job's state and its columns a row shows (codes of core.integrity_findings.JOB_PROBLEMS),
or NULL, the statements that find such jobs and the repair of each. Plain SQL that
SQLite and PostgreSQL read alike, but for how a named parameter is written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
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
