"""AdminService's messages: the enums it names and each domain result as the wire
shows it. api/admin_rpc.py parses requests and calls the services; this renders
what they return."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any, TypeVar

from strata.v1 import access_pb2, admin_pb2
from strata_server.api.convert import message_from
from strata_server.core import errors, models
from strata_server.core.access_rules import Role
from strata_server.core.index_paths import RecordIndex
from strata_server.core.integrity_findings import IntegrityReport
from strata_server.core.quota_rules import Quota
from strata_server.core.retention_rules import CleanupReport, CleanupRun, RetentionPolicy, Target
from strata_server.core.token_rules import Token
from strata_server.services.admin_service import ServerInfo
from strata_server.services.cleanup_schedule import CleanupStatus

T = TypeVar("T")
R = TypeVar("R")

TARGETS: dict[int, Target] = {
    admin_pb2.RETENTION_TARGET_RECORDS: Target.RECORDS,
    admin_pb2.RETENTION_TARGET_COMPLETED_JOBS: Target.COMPLETED_JOBS,
    admin_pb2.RETENTION_TARGET_DEAD_JOBS: Target.DEAD_JOBS,
    admin_pb2.RETENTION_TARGET_SEALED_TRANSCRIPTS: Target.SEALED_TRANSCRIPTS,
    admin_pb2.RETENTION_TARGET_ARTIFACTS: Target.ARTIFACTS,
    admin_pb2.RETENTION_TARGET_AUDIT_LOG: Target.AUDIT_LOG,
    admin_pb2.RETENTION_TARGET_REQUEST_LOG: Target.REQUEST_LOG,
    admin_pb2.RETENTION_TARGET_ARCHIVE_TRANSCRIPTS: Target.ARCHIVE_TRANSCRIPTS,
    admin_pb2.RETENTION_TARGET_ARCHIVE_ARTIFACTS: Target.ARCHIVE_ARTIFACTS,
}
_TARGET_ENUMS = {
    target: admin_pb2.RetentionTarget.ValueType(value) for value, target in TARGETS.items()
}
ROLES: dict[int, Role] = {
    access_pb2.ROLE_READER: Role.READER,
    access_pb2.ROLE_WRITER: Role.WRITER,
    access_pb2.ROLE_ADMIN: Role.ADMIN,
}
_ROLE_ENUMS = {role: access_pb2.Role.ValueType(value) for value, role in ROLES.items()}


def target(value: int) -> Target:
    """A RetentionTarget from the wire; INVALID_ARGUMENT for UNSPECIFIED or unknown."""
    found = TARGETS.get(value)
    if found is None:
        raise errors.InvalidArgument.field(
            "target",
            "must be RETENTION_TARGET_RECORDS, _COMPLETED_JOBS, _DEAD_JOBS,"
            " _SEALED_TRANSCRIPTS, _ARTIFACTS, _AUDIT_LOG, _REQUEST_LOG, _ARCHIVE_TRANSCRIPTS"
            " or _ARCHIVE_ARTIFACTS",
        )
    return found


def progress_to_proto(progress: models.Progress) -> admin_pb2.Progress:
    """The Progress message every long admin operation streams."""
    return admin_pb2.Progress(
        phase=progress.phase, done=progress.done, total=progress.total, unit=progress.unit
    )


async def with_progress(
    events: AsyncIterator[models.Progress | T],
    response: Callable[..., R],
    field: str,
    render: Callable[[T], Any],
) -> AsyncIterator[R]:
    """A long operation's stream: each Progress as `response(progress=...)`, its
    result as `response(<field>=render(result))`."""
    async for event in events:
        if isinstance(event, models.Progress):
            yield response(progress=progress_to_proto(event))
        else:
            yield response(**{field: render(event)})


def index_responses(
    events: AsyncIterator[models.Progress | RecordIndex],
) -> AsyncIterator[admin_pb2.CreateIndexResponse]:
    """CreateIndex's stream: progress, then the index."""
    return with_progress(events, admin_pb2.CreateIndexResponse, "index", index_to_proto)


def integrity_responses(
    events: AsyncIterator[models.Progress | IntegrityReport],
) -> AsyncIterator[admin_pb2.CheckIntegrityResponse]:
    """CheckIntegrity's stream: progress, then the report."""
    return with_progress(events, admin_pb2.CheckIntegrityResponse, "report", integrity_to_proto)


def cleanup_responses(
    events: AsyncIterator[models.Progress | CleanupReport],
) -> AsyncIterator[admin_pb2.RunCleanupResponse]:
    """RunCleanup's stream: progress, then the report."""
    return with_progress(events, admin_pb2.RunCleanupResponse, "report", cleanup_to_proto)


def server_info_to_proto(info: ServerInfo) -> admin_pb2.GetServerInfoResponse:
    """GetServerInfo's answer."""
    stats = info.cache_stats
    response = admin_pb2.GetServerInfoResponse(
        version=info.version,
        database_backend=info.facts.backend,
        cache_backend=info.backends.cache,
        blob_backend=info.backends.blobs,
        schema_version=info.facts.schema_version,
        capabilities=list(info.facts.capabilities),
        task_count=info.task_count,
        cache_stats=message_from(admin_pb2.CacheStats, stats, record_cache_enabled=stats.enabled),
    )
    response.start_time.FromDatetime(info.start_time)
    return response


def policy_to_proto(policy: RetentionPolicy) -> admin_pb2.RetentionPolicy:
    """A retention policy."""
    return message_from(admin_pb2.RetentionPolicy, policy, target=_TARGET_ENUMS[policy.target])


def integrity_to_proto(report: IntegrityReport) -> admin_pb2.IntegrityReport:
    """CheckIntegrity's report."""
    return message_from(
        admin_pb2.IntegrityReport,
        report,
        findings=[message_from(admin_pb2.IntegrityFinding, f) for f in report.findings],
        checked=[admin_pb2.CheckCount(check=name, count=n) for name, n in report.checked],
        start_time=report.started,
        end_time=report.finished,
    )


def integrity_status_to_proto(
    report: IntegrityReport | None, interval: float
) -> admin_pb2.GetIntegrityStatusResponse:
    """GetIntegrityStatus's answer: the last report (if any) and the schedule."""
    response = admin_pb2.GetIntegrityStatusResponse()
    if report is not None:
        response.last_report.CopyFrom(integrity_to_proto(report))
    if interval > 0:
        response.schedule_interval.FromTimedelta(timedelta(seconds=interval))
    return response


def cleanup_to_proto(report: CleanupReport) -> admin_pb2.CleanupReport:
    """RunCleanup's report."""
    return message_from(
        admin_pb2.CleanupReport,
        report,
        steps=[message_from(admin_pb2.CleanupStep, step) for step in report.steps],
        start_time=report.started,
        end_time=report.finished,
    )


def cleanup_status_to_proto(status: CleanupStatus) -> admin_pb2.GetCleanupStatusResponse:
    """GetCleanupStatus: the pass running now and the last finished one."""
    return admin_pb2.GetCleanupStatusResponse(
        running=_pass_to_proto(status.running) if status.running else None,
        last=_pass_to_proto(status.last) if status.last else None,
    )


def _pass_to_proto(run: CleanupRun) -> admin_pb2.CleanupPass:
    running = run.finished is None
    return message_from(
        admin_pb2.CleanupPass,
        run,
        start_time=run.started,
        end_time=run.finished,
        steps=[message_from(admin_pb2.CleanupStep, step) for step in run.steps],
        total=sum(step.count for step in run.steps),
        progress=admin_pb2.Progress(phase=run.phase, done=run.done, total=run.total, unit="items")
        if running
        else None,
        error=run.error or "",
    )


def quota_to_proto(quota: Quota) -> access_pb2.Quota:
    """A namespace's quota and what it stores."""
    return message_from(access_pb2.Quota, quota)


def index_to_proto(index: RecordIndex) -> admin_pb2.Index:
    """A declared index."""
    return message_from(admin_pb2.Index, index)


def token_to_proto(token: Token) -> access_pb2.Token:
    """A token as the wire shows it: everything but a secret (none is kept)."""
    return message_from(
        access_pb2.Token,
        token,
        role=_ROLE_ENUMS[token.role],
        namespaces=sorted(token.namespaces),
    )


def audit_to_proto(entry: models.LoggedAudit) -> admin_pb2.AuditEntry:
    """One audit log entry."""
    return message_from(admin_pb2.AuditEntry, entry)
