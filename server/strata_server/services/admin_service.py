"""AdminService's use cases that are more than one storage call: what the server
says about itself, retention policies in a stable order, usage that names an empty
namespace, and quotas seen only as far as the caller's token reaches. Cleanup,
integrity and transfer have their own modules; tokens are services/access_service.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

from strata_server import __version__
from strata_server.core import access_rules as access
from strata_server.core.index_paths import RecordIndex
from strata_server.core.models import (
    Actor,
    AuditQuery,
    CacheStats,
    LoggedAudit,
    NamespaceUsage,
    Page,
    Progress,
    ServerFacts,
    Usage,
)
from strata_server.core.quota_rules import Quota
from strata_server.core.retention_rules import RetentionPolicy, Target, check_policy
from strata_server.core.values import frozen
from strata_server.storage.ports import (
    AuditLog,
    IndexAdmin,
    QuotaStore,
    RetentionStore,
    UsageReport,
)

_TARGET_ORDER = {target: rank for rank, target in enumerate(Target)}


@frozen
class Backends:
    """Names of the backends this process was started with."""

    cache: str
    blobs: str


@frozen
class ServerInfo:
    """GetServerInfo's figures, read at the time of the call."""

    version: str
    facts: ServerFacts
    backends: Backends
    start_time: datetime
    cache_stats: CacheStats
    task_count: int
    """The asyncio tasks alive in this process: streams and background work."""


@frozen
class ServerDescription:
    """What this process says about itself to operators and clients."""

    facts: Callable[[], Awaitable[ServerFacts]]
    backends: Backends
    start_time: datetime
    cache_stats: Callable[[], CacheStats] = CacheStats

    async def describe(self) -> ServerInfo:
        """The version, backends, schema, uptime and live figures of this process."""
        facts = await self.facts()
        return ServerInfo(
            __version__,
            facts,
            self.backends,
            self.start_time,
            self.cache_stats(),
            len(asyncio.all_tasks()),
        )


@frozen
class Administration:
    """Audit, indexes, retention policies, usage and quotas over their ports."""

    audit: AuditLog
    indexes: IndexAdmin
    retention: RetentionStore
    usage_report: UsageReport
    quotas: QuotaStore

    async def list_audit(self, namespace: str, query: AuditQuery) -> Page[LoggedAudit]:
        """A page of the audit log, newest first."""
        return await self.audit.list_audit(namespace, query)

    def create_index(
        self, namespace: str, collection: str, path: tuple[str, ...], *, actor: Actor
    ) -> AsyncIterator[Progress | RecordIndex]:
        """Declare an index and build it: progress, then the index."""
        return self.indexes.create_index(namespace, collection, path, actor=actor)

    async def list_indexes(self, namespace: str, collection: str | None) -> list[RecordIndex]:
        """The declared indexes of a namespace (or one collection)."""
        return await self.indexes.list_indexes(namespace, collection)

    async def drop_index(
        self, namespace: str, collection: str, path: tuple[str, ...], *, actor: Actor
    ) -> None:
        """Remove a declared index."""
        await self.indexes.drop_index(namespace, collection, path, actor=actor)

    async def set_retention(self, policy: RetentionPolicy, *, actor: Actor) -> RetentionPolicy:
        """Check and save a policy (replacing the one for the same target and selector)."""
        check_policy(policy.target, policy.selector, policy.max_age)
        return await self.retention.set_retention(policy, actor=actor)

    async def list_retention(self, namespace: str) -> list[RetentionPolicy]:
        """The namespace's policies by target (in Target's order), then selector."""
        found = await self.retention.list_retention(namespace)
        found.sort(key=lambda policy: (_TARGET_ORDER[policy.target], policy.selector))
        return found

    async def delete_retention(
        self, namespace: str, target: Target, selector: str, *, actor: Actor
    ) -> None:
        """Remove a policy."""
        await self.retention.delete_retention(namespace, target, selector, actor=actor)

    async def usage(self, namespace: str | None, owner: str | None) -> Usage:
        """What one namespace (None: each) stores; a namespace that stores nothing
        is still named, with zeros."""
        found = await self.usage_report.usage(namespace, owner)
        if namespace is not None and not found.namespaces:
            return Usage((NamespaceUsage(namespace),), found.blobs)
        return found

    async def set_quota(self, namespace: str, max_bytes: int, *, actor: Actor) -> Quota:
        """Create, change or (0) remove a namespace's storage quota."""
        return await self.quotas.set_quota(namespace, max_bytes, actor=actor)

    async def list_quotas(self, namespace: str | None) -> list[Quota]:
        """The quotas of one namespace (None: of all) that the caller may name."""
        caller = access.current()
        found = await self.quotas.list_quotas(namespace)
        return [quota for quota in found if caller.covers(quota.namespace)]
