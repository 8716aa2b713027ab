"""What the port-contract tests share: writing a record, and reading the audit log
oldest first."""

from __future__ import annotations

from typing import Any

from strata_server.core.models import AuditQuery, CreateRecord, LoggedAudit, Record
from strata_server.storage.composite import Storage
from strata_server.storage.ports import CommitRequest
from tests.ports.conftest import ACTOR


async def create(
    storage: Storage, ns: str, id: str, data: dict[str, Any], *, collection: str = "c", **kw: Any
) -> Record:
    """Create one record through the one write path."""
    [record] = await storage.records.commit(
        CommitRequest(ns, [CreateRecord(collection, id, data, **kw)], ACTOR)
    )
    assert isinstance(record, Record)
    return record


async def audit(storage: Storage, ns: str, **filters: Any) -> list[LoggedAudit]:
    """Every audit entry of a namespace (matching `filters`), oldest first."""
    page = await storage.audit.list_audit(ns, AuditQuery(limit=1000, **filters))
    return list(reversed(page.items))
