"""Retention policies and what a cleanup run does with them.

A policy says how long one kind of data of a namespace is kept: the records of a
collection (by update_time), the completed or dead jobs of a queue or of every
queue (by finish_time). A job policy naming a queue wins over the namespace's
policy for every queue; completed jobs that no policy covers are kept for the
server's STRATA_COMPLETED_JOB_RETENTION_SECONDS; dead jobs without a policy are
kept. Records also go once their own expire_time passes, whatever the policies.

Sealed transcripts go, with their entries, once sealed longer than max_age (an
open transcript is never removed: someone may still append); an
`archive_transcripts` policy instead moves the entries of the transcripts sealed
longer than its max_age to the archive tier (docs/transcripts.md, "Tiers"), and
an `archive_artifacts` policy the artifacts of a kind (empty selector: of every
kind) created longer ago than its max_age (docs/artifacts.md, "Tiers").
Artifacts of a kind (or, empty selector, of every kind no policy of the namespace
names) go once created longer ago than max_age; their blobs then go through the
orphan-blob sweep, which keeps any blob another artifact still names. Without a
policy, all of these are kept.

The audit log and the idempotency request log are kept per namespace by their own
policy (an empty selector), or, without one, for the server's
STRATA_AUDIT_RETENTION_SECONDS and STRATA_REQUEST_LOG_RETENTION_SECONDS (0: kept
for ever). Open transcripts with no append for STRATA_TRANSCRIPT_AUTO_SEAL_SECONDS
(0: never) are sealed by cleanup, after which the sealed transcripts policy applies.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from strata_server.core import validation
from strata_server.core.artifact_rules import KIND_RE
from strata_server.core.errors import InvalidArgument
from strata_server.core.values import frozen

MIN_AGE = timedelta(seconds=1)
MAX_AGE = timedelta(days=100 * 366)
KEEP_RUNS = 50
"""How many scheduled cleanup passes the database remembers (GetCleanupStatus)."""


class Target(enum.StrEnum):
    """What a policy removes."""

    RECORDS = "records"
    COMPLETED_JOBS = "completed_jobs"
    DEAD_JOBS = "dead_jobs"
    SEALED_TRANSCRIPTS = "sealed_transcripts"
    ARTIFACTS = "artifacts"
    AUDIT_LOG = "audit_log"
    REQUEST_LOG = "request_log"
    ARCHIVE_TRANSCRIPTS = "archive_transcripts"
    """Not removed: sealed transcripts moved to the archive tier."""
    ARCHIVE_ARTIFACTS = "archive_artifacts"
    """Not removed: artifacts moved to the archive tier (docs/artifacts.md, "Tiers")."""


LOGS = frozenset({Target.AUDIT_LOG, Target.REQUEST_LOG})
"""The targets that name a namespace's whole log: their selector is always empty."""


class Exclude(enum.Enum):
    """Which jobs a job purge leaves to other policies (core of the precedence)."""

    NONE = "none"
    """A policy naming its queue: every job of that queue is its own."""
    NAMED = "named"
    """A namespace-wide policy: not the queues a policy names."""
    ANY = "any"
    """The server default: not the queues any policy of their namespace covers."""


@frozen
class RetentionPolicy:
    """How long `target` data of `namespace` (`selector`: the collection, the
    queue or the artifact kind, "" for every queue or kind; always "" for sealed
    transcripts) is kept."""

    namespace: str
    target: Target
    selector: str
    max_age: timedelta
    create_time: datetime | None = None
    update_time: datetime | None = None


def check_policy(target: Target, selector: str, max_age: timedelta) -> None:
    """INVALID_ARGUMENT for a policy that names nothing or keeps data for no time."""
    if target in (Target.SEALED_TRANSCRIPTS, Target.ARCHIVE_TRANSCRIPTS) or target in LOGS:
        if selector:
            raise InvalidArgument.field(
                "selector", "must be empty for " + target.value.replace("_", " ")
            )
    elif target in (Target.ARTIFACTS, Target.ARCHIVE_ARTIFACTS):
        if selector and not KIND_RE.fullmatch(selector):
            raise InvalidArgument.field(
                "selector",
                "must be an artifact kind: a letter, then up to 63 letters, digits, _ or -",
            )
    elif target is Target.RECORDS or selector:
        validation.collection(selector, "selector")
    if not MIN_AGE <= max_age <= MAX_AGE:
        raise InvalidArgument.field("max_age", "must be from 1 second to 100 years")


@frozen
class CleanupStep:
    """One thing a cleanup run removes: with `policy` None, a built-in step
    (expired records, completed jobs past the server default, orphan blobs)."""

    name: str
    target: str
    namespace: str | None
    selector: str
    count: int


@frozen
class CleanupReport:
    """What a cleanup run removed (or, on a dry run, would remove)."""

    dry_run: bool
    steps: tuple[CleanupStep, ...]
    started: datetime
    finished: datetime

    @property
    def total(self) -> int:
        """Items removed (or that would be) over every step."""
        return sum(step.count for step in self.steps)


@frozen
class CleanupRun:
    """One scheduled cleanup pass as every replica sees it (AdminService
    GetCleanupStatus): which replica ran it, the steps done so far, and while it
    runs the step it is on (`phase`, `done` of `total`)."""

    replica: str
    started: datetime
    finished: datetime | None
    steps: tuple[CleanupStep, ...]
    phase: str = ""
    done: int = 0
    total: int = 0
    error: str | None = None


def steps_to_json(steps: tuple[CleanupStep, ...]) -> list[dict[str, object]]:
    """A run's steps as the cleanup_runs table stores them (JSON)."""
    return [
        {
            "name": step.name,
            "target": step.target,
            "namespace": step.namespace,
            "selector": step.selector,
            "count": step.count,
        }
        for step in steps
    ]


def steps_from_json(value: object) -> tuple[CleanupStep, ...]:
    """`steps_to_json` read back."""
    assert isinstance(value, list)
    return tuple(
        CleanupStep(
            str(item["name"]),
            str(item["target"]),
            None if item["namespace"] is None else str(item["namespace"]),
            str(item["selector"]),
            int(item["count"]),
        )
        for item in value
    )
