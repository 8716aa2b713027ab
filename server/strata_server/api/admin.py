"""AdminService: what operators ask of a running server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import grpc

from strata.v1 import access_pb2, admin_pb2, admin_pb2_grpc
from strata_server import __version__
from strata_server.api.archive import NamespaceTransfer
from strata_server.api.convert import actor, set_timestamp, to_datetime
from strata_server.api.errors import streaming, unary
from strata_server.api.usage import usage_to_proto
from strata_server.cleanup import Cleanup
from strata_server.core import access, errors, models, validation
from strata_server.core.access import ALL_NAMESPACES, Role
from strata_server.core.indexes import RecordIndex, parse_field
from strata_server.core.integrity import IntegrityReport
from strata_server.core.paging import PageTokens, page_size, query_digest
from strata_server.core.quotas import Quota, check_max_bytes
from strata_server.core.retention import CleanupReport, RetentionPolicy, Target, check_policy
from strata_server.core.tokens import Token, check_new_token
from strata_server.integrity import check_integrity
from strata_server.services.access import TokenAdmin
from strata_server.storage.composite import Storage
from strata_server.storage.ports import BlobStore

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True, slots=True)
class Backends:
    """Names of the backends this process was started with."""

    cache: str
    blobs: str


class AdminService(admin_pb2_grpc.AdminServiceServicer):
    """Server information for operators and clients."""

    def __init__(
        self,
        database: Storage,
        backends: Backends,
        start_time: datetime,
        cache_stats: Callable[[], models.CacheStats] = models.CacheStats,
        cleanup: Cleanup | None = None,
        blobs: BlobStore | None = None,
        blob_grace: timedelta = timedelta(hours=1),
        transfer: NamespaceTransfer | None = None,
        *,
        tokens: PageTokens,
        token_admin: TokenAdmin | None = None,
    ) -> None:
        self._tokens = tokens
        self._transfer = transfer
        self._token_admin_service = token_admin
        self._database = database
        self._cleanup = cleanup or Cleanup(database, keep_completed=timedelta(days=7))
        self._blobs = blobs
        self._blob_grace = blob_grace
        self._backends = backends
        self._start_time = start_time
        self._cache_stats = cache_stats

    @unary
    async def GetServerInfo(
        self, request: admin_pb2.GetServerInfoRequest, context: Context
    ) -> admin_pb2.GetServerInfoResponse:
        facts = await self._database.facts()
        response = admin_pb2.GetServerInfoResponse(
            version=__version__,
            database_backend=facts.backend,
            cache_backend=self._backends.cache,
            blob_backend=self._backends.blobs,
            schema_version=facts.schema_version,
            capabilities=list(facts.capabilities),
            task_count=len(asyncio.all_tasks()),
        )
        response.start_time.FromDatetime(self._start_time)
        stats = self._cache_stats()
        response.cache_stats.CopyFrom(
            admin_pb2.CacheStats(
                record_cache_enabled=stats.enabled,
                available=stats.available,
                hits=stats.hits,
                misses=stats.misses,
                bypassed=stats.bypassed,
                outages=stats.outages,
                pending_invalidations=stats.pending_invalidations,
            )
        )
        return response

    @unary
    async def ListAuditEntries(
        self, request: admin_pb2.ListAuditEntriesRequest, context: Context
    ) -> admin_pb2.ListAuditEntriesResponse:
        # "*" holds what belongs to no namespace (token mutations); the auth
        # interceptor lets only principals for every namespace name it.
        namespace = (
            ALL_NAMESPACES
            if request.namespace == ALL_NAMESPACES
            else validation.namespace(request.namespace)
        )
        start = to_datetime(request.start_time, request.HasField("start_time"), "start_time")
        end = to_datetime(request.end_time, request.HasField("end_time"), "end_time")
        if start is not None and end is not None and start > end:
            raise errors.InvalidArgument.field("start_time", "is after end_time")
        filters = {
            name: getattr(request, name) or None
            for name in ("entity", "entity_id", "actor", "action")
        }
        for name, value in filters.items():
            if value is not None and (len(value) > MAX_FILTER_CHARS or not value.isprintable()):
                raise errors.InvalidArgument.field(
                    name, f"must be at most {MAX_FILTER_CHARS} printable characters"
                )
        digest = query_digest(
            "audit",
            namespace,
            *(value or "" for value in filters.values()),
            str(start),
            str(end),
        )
        before = None
        if request.page_token:
            key, _ = self._tokens.decode(request.page_token, digest)
            if key is None or len(key) != 1 or type(key[0]) is not int:
                raise errors.InvalidArgument.field("page_token", "is not a token for this list")
            before = key[0]
        page = await self._database.audit.list_audit(
            namespace,
            models.AuditQuery(
                **filters,
                start_time=start,
                end_time=end,
                limit=page_size(request.page_size),
                before_seq=before,
            ),
        )
        return admin_pb2.ListAuditEntriesResponse(
            entries=[_audit_to_proto(entry) for entry in page.items],
            next_page_token=self._tokens.encode(digest, page.last_key) if page.last_key else "",
        )

    @streaming
    async def CreateIndex(
        self, request: admin_pb2.CreateIndexRequest, context: Context
    ) -> AsyncIterator[admin_pb2.CreateIndexResponse]:
        namespace = validation.namespace(request.namespace)
        collection = validation.collection(request.collection)
        path = parse_field(request.field)
        events = self._database.indexes.create_index(
            namespace, collection, path, actor=actor(context.invocation_metadata())
        )
        async for event in events:
            if isinstance(event, models.Progress):
                yield admin_pb2.CreateIndexResponse(progress=progress_to_proto(event))
            else:
                yield admin_pb2.CreateIndexResponse(index=_index_to_proto(event))

    @unary
    async def ListIndexes(
        self, request: admin_pb2.ListIndexesRequest, context: Context
    ) -> admin_pb2.ListIndexesResponse:
        namespace = validation.namespace(request.namespace)
        collection = validation.collection(request.collection) if request.collection else None
        found = await self._database.indexes.list_indexes(namespace, collection)
        return admin_pb2.ListIndexesResponse(indexes=[_index_to_proto(index) for index in found])

    @unary
    async def DropIndex(
        self, request: admin_pb2.DropIndexRequest, context: Context
    ) -> admin_pb2.DropIndexResponse:
        namespace = validation.namespace(request.namespace)
        collection = validation.collection(request.collection)
        path = parse_field(request.field)
        await self._database.indexes.drop_index(
            namespace, collection, path, actor=actor(context.invocation_metadata())
        )
        return admin_pb2.DropIndexResponse()

    @unary
    async def SetRetentionPolicy(
        self, request: admin_pb2.SetRetentionPolicyRequest, context: Context
    ) -> admin_pb2.RetentionPolicy:
        namespace = validation.namespace(request.namespace)
        target = _target(request.target)
        try:
            max_age = request.max_age.ToTimedelta()
        except (OverflowError, ValueError):
            raise errors.InvalidArgument.field(
                "max_age", "must be from 1 second to 100 years"
            ) from None
        check_policy(target, request.selector, max_age)
        saved = await self._database.retention.set_retention(
            RetentionPolicy(namespace, target, request.selector, max_age),
            actor=actor(context.invocation_metadata()),
        )
        return _policy_to_proto(saved)

    @unary
    async def ListRetentionPolicies(
        self, request: admin_pb2.ListRetentionPoliciesRequest, context: Context
    ) -> admin_pb2.ListRetentionPoliciesResponse:
        namespace = validation.namespace(request.namespace)
        found = await self._database.retention.list_retention(namespace)
        found.sort(key=lambda policy: (_TARGET_ENUMS[policy.target], policy.selector))
        return admin_pb2.ListRetentionPoliciesResponse(
            policies=[_policy_to_proto(policy) for policy in found]
        )

    @unary
    async def DeleteRetentionPolicy(
        self, request: admin_pb2.DeleteRetentionPolicyRequest, context: Context
    ) -> admin_pb2.DeleteRetentionPolicyResponse:
        namespace = validation.namespace(request.namespace)
        target = _target(request.target)
        await self._database.retention.delete_retention(
            namespace, target, request.selector, actor=actor(context.invocation_metadata())
        )
        return admin_pb2.DeleteRetentionPolicyResponse()

    @unary
    async def GetUsage(
        self, request: admin_pb2.GetUsageRequest, context: Context
    ) -> admin_pb2.GetUsageResponse:
        namespace = _scope(request.namespace, request.all_namespaces)
        owner = validation.owner_filter(request.owner)
        found = await self._database.usage.usage(namespace, owner)
        if namespace is not None and not found.namespaces:
            found = models.Usage((models.NamespaceUsage(namespace),), found.blobs)
        return usage_to_proto(found)

    @streaming
    async def CheckIntegrity(
        self, request: admin_pb2.CheckIntegrityRequest, context: Context
    ) -> AsyncIterator[admin_pb2.CheckIntegrityResponse]:
        namespace = _scope(request.namespace, request.all_namespaces)
        events = check_integrity(
            self._database,
            namespace,
            repair=request.repair,
            blobs=self._blobs,
            verify_blobs=request.verify_blobs,
            blob_grace=self._blob_grace,
        )
        async for event in events:
            if isinstance(event, models.Progress):
                yield admin_pb2.CheckIntegrityResponse(progress=progress_to_proto(event))
            else:
                yield admin_pb2.CheckIntegrityResponse(report=_integrity_to_proto(event))

    @streaming
    async def RunCleanup(
        self, request: admin_pb2.RunCleanupRequest, context: Context
    ) -> AsyncIterator[admin_pb2.RunCleanupResponse]:
        namespace = _scope(request.namespace, request.all_namespaces)
        async for event in self._cleanup.run(namespace=namespace, dry_run=request.dry_run):
            if isinstance(event, models.Progress):
                yield admin_pb2.RunCleanupResponse(progress=progress_to_proto(event))
            else:
                yield admin_pb2.RunCleanupResponse(report=_report_to_proto(event))

    # --- export / import (api/archive.py holds their messages) ---------------------

    @streaming
    async def ExportNamespace(
        self, request: admin_pb2.ExportNamespaceRequest, context: Context
    ) -> AsyncIterator[admin_pb2.ExportNamespaceResponse]:
        async for message in self._transfers().export(request, context):
            yield message

    @streaming
    async def ImportNamespace(
        self, request_iterator: AsyncIterator[admin_pb2.ImportNamespaceRequest], context: Context
    ) -> AsyncIterator[admin_pb2.ImportNamespaceResponse]:
        async for message in self._transfers().import_(request_iterator, context):
            yield message

    # --- tokens (services/access.py) -------------------------------------------------

    @unary
    async def CreateToken(
        self, request: access_pb2.CreateTokenRequest, context: Context
    ) -> access_pb2.CreateTokenResponse:
        ttl = None
        if request.HasField("ttl"):
            try:
                ttl = request.ttl.ToTimedelta()
            except (OverflowError, ValueError):
                raise errors.InvalidArgument.field(
                    "ttl", "must be from 1 second to 100 years"
                ) from None
        token = check_new_token(
            request.name,
            _ROLES.get(request.role),
            request.namespaces,
            ttl,
            request.rate_limit,
            request.burst,
        )
        stored, secret = await self._token_admin().create(
            token, actor=actor(context.invocation_metadata())
        )
        return access_pb2.CreateTokenResponse(token=token_to_proto(stored), secret=secret)

    @unary
    async def ListTokens(
        self, request: access_pb2.ListTokensRequest, context: Context
    ) -> access_pb2.ListTokensResponse:
        limit = page_size(request.page_size, default=100)
        digest = query_digest("tokens", str(request.show_inactive))
        after = None
        if request.page_token:
            key, _ = self._tokens.decode(request.page_token, digest)
            if key is None or len(key) != 1 or not isinstance(key[0], str):
                raise errors.InvalidArgument.field("page_token", "is not a token for this list")
            after = key[0]
        page = await self._token_admin().list(after, limit, inactive=request.show_inactive)
        return access_pb2.ListTokensResponse(
            tokens=[token_to_proto(token) for token in page.items],
            next_page_token=self._tokens.encode(digest, page.last_key) if page.last_key else "",
        )

    @unary
    async def RevokeToken(
        self, request: access_pb2.RevokeTokenRequest, context: Context
    ) -> access_pb2.Token:
        if not request.name:
            raise errors.InvalidArgument.field("name", "is required")
        revoked = await self._token_admin().revoke(
            request.name, actor=actor(context.invocation_metadata())
        )
        return token_to_proto(revoked)

    # --- quotas -------------------------------------------------------------------

    @unary
    async def SetQuota(
        self, request: access_pb2.SetQuotaRequest, context: Context
    ) -> access_pb2.Quota:
        namespace = validation.namespace(request.namespace)
        max_bytes = check_max_bytes(request.max_bytes)
        saved = await self._database.quotas.set_quota(
            namespace, max_bytes, actor=actor(context.invocation_metadata())
        )
        return _quota_to_proto(saved)

    @unary
    async def ListQuotas(
        self, request: access_pb2.ListQuotasRequest, context: Context
    ) -> access_pb2.ListQuotasResponse:
        namespace = validation.namespace(request.namespace) if request.namespace else None
        caller = access.current()
        found = await self._database.quotas.list_quotas(namespace)
        # Only the namespaces the caller may name (a token scoped to some of them).
        return access_pb2.ListQuotasResponse(
            quotas=[_quota_to_proto(quota) for quota in found if caller.covers(quota.namespace)]
        )

    def _token_admin(self) -> TokenAdmin:
        if self._token_admin_service is None:
            raise errors.FailedPrecondition("tokens are not set up on this server")
        return self._token_admin_service

    def _transfers(self) -> NamespaceTransfer:
        if self._transfer is None:
            raise errors.FailedPrecondition("export and import are not set up on this server")
        return self._transfer


MAX_FILTER_CHARS = 512


def _scope(namespace: str, all_namespaces: bool) -> str | None:
    """The namespace an admin call covers; None for every namespace."""
    if all_namespaces and namespace:
        raise errors.InvalidArgument.field("namespace", "must be empty when all_namespaces is set")
    return None if all_namespaces else validation.namespace(namespace)


_TARGETS: dict[int, Target] = {
    admin_pb2.RETENTION_TARGET_RECORDS: Target.RECORDS,
    admin_pb2.RETENTION_TARGET_COMPLETED_JOBS: Target.COMPLETED_JOBS,
    admin_pb2.RETENTION_TARGET_DEAD_JOBS: Target.DEAD_JOBS,
    admin_pb2.RETENTION_TARGET_SEALED_TRANSCRIPTS: Target.SEALED_TRANSCRIPTS,
    admin_pb2.RETENTION_TARGET_ARTIFACTS: Target.ARTIFACTS,
}
_TARGET_ENUMS = {
    target: admin_pb2.RetentionTarget.ValueType(value) for value, target in _TARGETS.items()
}


def _target(value: int) -> Target:
    target = _TARGETS.get(value)
    if target is None:
        raise errors.InvalidArgument.field(
            "target",
            "must be RETENTION_TARGET_RECORDS, _COMPLETED_JOBS, _DEAD_JOBS,"
            " _SEALED_TRANSCRIPTS or _ARTIFACTS",
        )
    return target


def _policy_to_proto(policy: RetentionPolicy) -> admin_pb2.RetentionPolicy:
    message = admin_pb2.RetentionPolicy(
        namespace=policy.namespace, target=_TARGET_ENUMS[policy.target], selector=policy.selector
    )
    message.max_age.FromTimedelta(policy.max_age)
    if policy.create_time is not None:
        set_timestamp(message.create_time, policy.create_time)
    if policy.update_time is not None:
        set_timestamp(message.update_time, policy.update_time)
    return message


def _integrity_to_proto(report: IntegrityReport) -> admin_pb2.IntegrityReport:
    message = admin_pb2.IntegrityReport(
        findings=[
            admin_pb2.IntegrityFinding(
                check=f.check,
                namespace=f.namespace,
                entity=f.entity,
                entity_id=f.entity_id,
                problem=f.problem,
                repairable=f.repairable,
                repaired=f.repaired,
            )
            for f in report.findings
        ],
        checked=[admin_pb2.CheckCount(check=name, count=n) for name, n in report.checked],
        repair=report.repair,
        repaired=report.repaired,
    )
    set_timestamp(message.start_time, report.started)
    set_timestamp(message.end_time, report.finished)
    return message


def _report_to_proto(report: CleanupReport) -> admin_pb2.CleanupReport:
    message = admin_pb2.CleanupReport(
        dry_run=report.dry_run,
        total=report.total,
        steps=[
            admin_pb2.CleanupStep(
                name=step.name,
                target=step.target,
                namespace=step.namespace or "",
                selector=step.selector,
                count=step.count,
            )
            for step in report.steps
        ],
    )
    set_timestamp(message.start_time, report.started)
    set_timestamp(message.end_time, report.finished)
    return message


def progress_to_proto(progress: models.Progress) -> admin_pb2.Progress:
    """The Progress message every long admin operation streams."""
    return admin_pb2.Progress(
        phase=progress.phase, done=progress.done, total=progress.total, unit=progress.unit
    )


def _quota_to_proto(quota: Quota) -> access_pb2.Quota:
    return access_pb2.Quota(
        namespace=quota.namespace, max_bytes=quota.max_bytes, used_bytes=quota.used_bytes
    )


def _index_to_proto(index: RecordIndex) -> admin_pb2.Index:
    message = admin_pb2.Index(
        collection=index.collection,
        field=index.field,
        index_name=index.index_name,
        ready=index.ready,
    )
    set_timestamp(message.create_time, index.create_time)
    return message


_ROLES: dict[int, Role] = {
    access_pb2.ROLE_READER: Role.READER,
    access_pb2.ROLE_WRITER: Role.WRITER,
    access_pb2.ROLE_ADMIN: Role.ADMIN,
}
_ROLE_ENUMS = {role: access_pb2.Role.ValueType(value) for value, role in _ROLES.items()}


def token_to_proto(token: Token) -> access_pb2.Token:
    """A token as the wire shows it: everything but a secret (none is kept)."""
    message = access_pb2.Token(
        name=token.name,
        role=_ROLE_ENUMS[token.role],
        namespaces=sorted(token.namespaces),
        rate_limit=token.rate_limit,
        burst=token.burst,
        created_by=token.created_by,
    )
    set_timestamp(message.create_time, token.create_time)
    if token.expire_time is not None:
        set_timestamp(message.expire_time, token.expire_time)
    if token.revoke_time is not None:
        set_timestamp(message.revoke_time, token.revoke_time)
    return message


def _audit_to_proto(entry: models.LoggedAudit) -> admin_pb2.AuditEntry:
    message = admin_pb2.AuditEntry(
        seq=entry.seq,
        actor=entry.actor,
        action=entry.action,
        entity=entry.entity,
        entity_id=entry.entity_id,
        version=entry.version,
        changed_fields=list(entry.changed_fields),
        request_id=entry.request_id or "",
    )
    set_timestamp(message.time, entry.time)
    return message
