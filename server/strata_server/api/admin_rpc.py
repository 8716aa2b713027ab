"""AdminService: what operators ask of a running server, as proto <-> the admin
services (services/admin_service.py, cleanup_service.py, integrity_service.py,
search_reindex.py, access.py; transfers through api/transfer_rpc.py), nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import KW_ONLY
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import duration_pb2

from strata.v1 import access_pb2, admin_pb2, admin_pb2_grpc
from strata_server.api import admin_messages as render
from strata_server.api.convert import actor, collection_of, to_datetime
from strata_server.api.page_tokens import next_page_token, paging, resume_after
from strata_server.api.status_codes import rpcs
from strata_server.api.transfer_rpc import TransferRpc
from strata_server.api.usage_rpc import usage_to_proto
from strata_server.core import errors, models, validation
from strata_server.core.access_rules import ALL_NAMESPACES
from strata_server.core.index_paths import parse_field
from strata_server.core.paging import PageTokens, page_size, query_digest
from strata_server.core.quota_rules import check_max_bytes
from strata_server.core.retention_rules import RetentionPolicy
from strata_server.core.token_rules import check_new_token
from strata_server.core.values import frozen
from strata_server.services.access_service import TokenAdmin
from strata_server.services.admin_service import Administration, ServerDescription
from strata_server.services.cleanup_schedule import CleanupSchedule
from strata_server.services.cleanup_service import Cleanup
from strata_server.services.integrity_service import IntegrityCheck
from strata_server.services.owner_cleanup import OwnerCleanup
from strata_server.services.search_reindex import Reindexing

Context = grpc.aio.ServicerContext[Any, Any]
MAX_FILTER_CHARS = 512
"""The longest audit filter value (entity, entity_id, actor, action)."""


@rpcs(admin_pb2.DESCRIPTOR.services_by_name["AdminService"])
@frozen
class AdminService(admin_pb2_grpc.AdminServiceServicer):
    """Server information, audit, indexes, retention, usage, maintenance, transfers,
    tokens and quotas for operators and clients."""

    server: ServerDescription
    admin: Administration
    cleanup: Cleanup
    integrity: IntegrityCheck
    _: KW_ONLY
    transfer: TransferRpc
    schedule: CleanupSchedule
    token_admin: TokenAdmin
    tokens: PageTokens
    owner_cleanup: OwnerCleanup
    reindexing: Reindexing

    async def GetServerInfo(
        self, request: admin_pb2.GetServerInfoRequest, context: Context
    ) -> admin_pb2.GetServerInfoResponse:
        return render.server_info_to_proto(await self.server.describe())

    async def ListAuditEntries(
        self, request: admin_pb2.ListAuditEntriesRequest, context: Context
    ) -> admin_pb2.ListAuditEntriesResponse:
        namespace, query, digest = self._audit_query(request)
        page = await self.admin.list_audit(namespace, query)
        return admin_pb2.ListAuditEntriesResponse(
            entries=[render.audit_to_proto(entry) for entry in page.items],
            next_page_token=next_page_token(self.tokens, digest, page),
        )

    def _audit_query(
        self, request: admin_pb2.ListAuditEntriesRequest
    ) -> tuple[str, models.AuditQuery, str]:
        """The namespace, the query and its page token digest."""
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
        values = (value or "" for value in filters.values())
        digest = query_digest("audit", namespace, *values, str(start), str(end))
        before = resume_after(self.tokens, request.page_token, digest, int)
        query = models.AuditQuery(
            **filters,
            start_time=start,
            end_time=end,
            limit=page_size(request.page_size),
            before_seq=before,
        )
        return namespace, query, digest

    def CreateIndex(
        self, request: admin_pb2.CreateIndexRequest, context: Context
    ) -> AsyncIterator[admin_pb2.CreateIndexResponse]:
        events = self.admin.create_index(*_index_target(request), actor=actor(context))
        return render.index_responses(events)

    async def ListIndexes(
        self, request: admin_pb2.ListIndexesRequest, context: Context
    ) -> admin_pb2.ListIndexesResponse:
        namespace = validation.namespace(request.namespace)
        collection = validation.collection(request.collection) if request.collection else None
        found = await self.admin.list_indexes(namespace, collection)
        return admin_pb2.ListIndexesResponse(indexes=[render.index_to_proto(i) for i in found])

    async def DropIndex(
        self, request: admin_pb2.DropIndexRequest, context: Context
    ) -> admin_pb2.DropIndexResponse:
        await self.admin.drop_index(*_index_target(request), actor=actor(context))
        return admin_pb2.DropIndexResponse()

    async def SetRetentionPolicy(
        self, request: admin_pb2.SetRetentionPolicyRequest, context: Context
    ) -> admin_pb2.RetentionPolicy:
        namespace = validation.namespace(request.namespace)
        target = render.target(request.target)
        max_age = _lifetime(request.max_age, "max_age")
        saved = await self.admin.set_retention(
            RetentionPolicy(namespace, target, request.selector, max_age),
            actor=actor(context),
        )
        return render.policy_to_proto(saved)

    async def ListRetentionPolicies(
        self, request: admin_pb2.ListRetentionPoliciesRequest, context: Context
    ) -> admin_pb2.ListRetentionPoliciesResponse:
        found = await self.admin.list_retention(validation.namespace(request.namespace))
        return admin_pb2.ListRetentionPoliciesResponse(
            policies=[render.policy_to_proto(policy) for policy in found]
        )

    async def DeleteRetentionPolicy(
        self, request: admin_pb2.DeleteRetentionPolicyRequest, context: Context
    ) -> admin_pb2.DeleteRetentionPolicyResponse:
        namespace = validation.namespace(request.namespace)
        target = render.target(request.target)
        await self.admin.delete_retention(namespace, target, request.selector, actor=actor(context))
        return admin_pb2.DeleteRetentionPolicyResponse()

    async def GetUsage(
        self, request: admin_pb2.GetUsageRequest, context: Context
    ) -> admin_pb2.GetUsageResponse:
        namespace = _scope(request.namespace, request.all_namespaces)
        owner = validation.owner_filter(request.owner)
        return usage_to_proto(await self.admin.usage(namespace, owner))

    def CheckIntegrity(
        self, request: admin_pb2.CheckIntegrityRequest, context: Context
    ) -> AsyncIterator[admin_pb2.CheckIntegrityResponse]:
        namespace = _scope(request.namespace, request.all_namespaces)
        if request.verify_sample_percent > 100:
            raise errors.InvalidArgument.field(
                "verify_sample_percent", "must be a percentage, from 0 to 100"
            )
        events = self.integrity.run(
            namespace,
            repair=request.repair,
            verify_blobs=request.verify_blobs,
            sample=request.verify_sample_percent / 100,
        )
        return render.integrity_responses(events)

    async def GetIntegrityStatus(
        self, request: admin_pb2.GetIntegrityStatusRequest, context: Context
    ) -> admin_pb2.GetIntegrityStatusResponse:
        namespace = _scope(request.namespace, request.all_namespaces)
        report = await self.integrity.last_report(namespace)
        return render.integrity_status_to_proto(report, self.integrity.interval)

    def RunCleanup(
        self, request: admin_pb2.RunCleanupRequest, context: Context
    ) -> AsyncIterator[admin_pb2.RunCleanupResponse]:
        namespace = _scope(request.namespace, request.all_namespaces)
        if request.owner:
            owner = validation.owner(request.owner)
            if namespace is None:
                raise errors.InvalidArgument.field(
                    "all_namespaces", "an owner's cleanup covers one namespace"
                )
            owned = self.owner_cleanup.run(
                namespace, owner, dry_run=request.dry_run, actor=actor(context)
            )
            return render.cleanup_responses(owned)
        events = self.cleanup.run(namespace=namespace, dry_run=request.dry_run)
        return render.cleanup_responses(events)

    def ReindexArtifacts(
        self, request: admin_pb2.ReindexArtifactsRequest, context: Context
    ) -> AsyncIterator[admin_pb2.ReindexArtifactsResponse]:
        namespace = _scope(request.namespace, request.all_namespaces)
        events = self.reindexing.run(namespace, rebuild=request.rebuild)
        return render.with_progress(
            events,
            admin_pb2.ReindexArtifactsResponse,
            "report",
            lambda report: admin_pb2.ReindexReport(**report),
        )

    async def GetCleanupStatus(
        self, request: admin_pb2.GetCleanupStatusRequest, context: Context
    ) -> admin_pb2.GetCleanupStatusResponse:
        return render.cleanup_status_to_proto(await self.schedule.status())

    def ExportNamespace(
        self, request: admin_pb2.ExportNamespaceRequest, context: Context
    ) -> AsyncIterator[admin_pb2.ExportNamespaceResponse]:
        return self.transfer.export(request, context)

    def ImportNamespace(
        self, request_iterator: AsyncIterator[admin_pb2.ImportNamespaceRequest], context: Context
    ) -> AsyncIterator[admin_pb2.ImportNamespaceResponse]:
        return self.transfer.import_(request_iterator, context)

    async def CreateToken(
        self, request: access_pb2.CreateTokenRequest, context: Context
    ) -> access_pb2.CreateTokenResponse:
        ttl = _lifetime(request.ttl, "ttl") if request.HasField("ttl") else None
        token = check_new_token(
            request.name,
            render.ROLES.get(request.role),
            request.namespaces,
            ttl,
            request.rate_limit,
            request.burst,
        )
        stored, secret = await self.token_admin.create(token, actor=actor(context))
        return access_pb2.CreateTokenResponse(token=render.token_to_proto(stored), secret=secret)

    async def ListTokens(
        self, request: access_pb2.ListTokensRequest, context: Context
    ) -> access_pb2.ListTokensResponse:
        pages = paging(self.tokens, request, "tokens", str(request.show_inactive), default=100)
        page = await self.token_admin.list(
            pages.after(str), pages.limit, inactive=request.show_inactive
        )
        return access_pb2.ListTokensResponse(
            tokens=[render.token_to_proto(token) for token in page.items],
            next_page_token=pages.next_token(page),
        )

    async def RevokeToken(
        self, request: access_pb2.RevokeTokenRequest, context: Context
    ) -> access_pb2.Token:
        if not request.name:
            raise errors.InvalidArgument.field("name", "is required")
        revoked = await self.token_admin.revoke(request.name, actor=actor(context))
        return render.token_to_proto(revoked)

    async def SetQuota(
        self, request: access_pb2.SetQuotaRequest, context: Context
    ) -> access_pb2.Quota:
        namespace = validation.namespace(request.namespace)
        max_bytes = check_max_bytes(request.max_bytes)
        saved = await self.admin.set_quota(namespace, max_bytes, actor=actor(context))
        return render.quota_to_proto(saved)

    async def ListQuotas(
        self, request: access_pb2.ListQuotasRequest, context: Context
    ) -> access_pb2.ListQuotasResponse:
        namespace = validation.namespace(request.namespace) if request.namespace else None
        found = await self.admin.list_quotas(namespace)
        return access_pb2.ListQuotasResponse(quotas=[render.quota_to_proto(q) for q in found])


def _index_target(
    request: admin_pb2.CreateIndexRequest | admin_pb2.DropIndexRequest,
) -> tuple[str, str, tuple[str, ...]]:
    """The namespace, collection and data path an index call names."""
    return (*collection_of(request), parse_field(request.field))


def _scope(namespace: str, all_namespaces: bool) -> str | None:
    """The namespace an admin call covers; None for every namespace."""
    if all_namespaces and namespace:
        raise errors.InvalidArgument.field("namespace", "must be empty when all_namespaces is set")
    return None if all_namespaces else validation.namespace(namespace)


def _lifetime(value: duration_pb2.Duration, field: str) -> timedelta:
    """A retention max_age or a token ttl; one too long for a timedelta is refused in
    the words of the range the rules check next."""
    try:
        return value.ToTimedelta()
    except (OverflowError, ValueError):
        raise errors.InvalidArgument.field(field, "must be from 1 second to 100 years") from None
