"""services/admin_service.py and the maintenance services in-process: what they
add to one storage call (order, zeros, the caller's reach, blob findings)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from strata_server.core import access_rules as access
from strata_server.core.access_rules import Principal, Role
from strata_server.core.artifact_rules import Header
from strata_server.core.integrity_findings import IntegrityReport
from strata_server.core.models import Actor
from strata_server.core.retention_rules import RetentionPolicy, Target
from strata_server.services.admin_service import Administration
from strata_server.services.artifacts_service import Artifacts, UploadHeader
from strata_server.services.integrity_service import IntegrityCheck

ACTOR = Actor("test")
Part = UploadHeader | bytes | None


def admin(storage: tuple[Any, Any]) -> Administration:
    ports, _ = storage
    return Administration(ports.audit, ports.indexes, ports.retention, ports.usage, ports.quotas)


async def test_retention_policies_list_in_target_order(storage) -> None:
    service = admin(storage)
    day = timedelta(days=1)
    for target, selector in [
        (Target.ARTIFACTS, ""),
        (Target.DEAD_JOBS, "b"),
        (Target.RECORDS, "notes"),
        (Target.DEAD_JOBS, "a"),
    ]:
        policy = RetentionPolicy("default", target, selector, day)
        await service.set_retention(policy, actor=ACTOR)
    found = await service.list_retention("default")
    assert [(p.target, p.selector) for p in found] == [
        (Target.RECORDS, "notes"),
        (Target.DEAD_JOBS, "a"),
        (Target.DEAD_JOBS, "b"),
        (Target.ARTIFACTS, ""),
    ]


async def test_usage_names_a_namespace_that_stores_nothing(storage) -> None:
    usage = await admin(storage).usage("nothing-here", None)
    assert [u.namespace for u in usage.namespaces] == ["nothing-here"]
    assert usage.namespaces[0].records == 0


async def test_quotas_list_only_what_the_caller_may_name(storage) -> None:
    service = admin(storage)
    for namespace in ("mine", "theirs"):
        await service.set_quota(namespace, 1 << 20, actor=ACTOR)
    everyone = await service.list_quotas(None)
    assert [q.namespace for q in everyone] == ["mine", "theirs"]
    with access.bind(Principal("t", Role.ADMIN, frozenset({"mine"}))):
        scoped = await service.list_quotas(None)
    assert [q.namespace for q in scoped] == ["mine"]


async def parts(*items: Part) -> AsyncIterator[Part]:
    for item in items:
        yield item


async def test_integrity_finds_an_artifact_whose_blob_is_gone(storage) -> None:
    ports, blobs = storage
    artifacts = Artifacts(ports.artifacts, ports.quotas, blobs, max_bytes=1 << 24, idle_seconds=30)
    header = UploadHeader("default", Header("o", "log", "a.log", "text/plain"), "", "f")
    stored = await artifacts.upload(parts(header, os.urandom(1000)), actor=ACTOR)
    blob = await blobs.stat(stored.sha256)
    await blobs.delete(blob)
    check = IntegrityCheck(ports.integrity, ports.artifacts, blobs)
    events = [event async for event in check.run("default", repair=False)]
    report = events[-1]
    assert isinstance(report, IntegrityReport)
    missing = [f for f in report.findings if f.check == "blobs"]
    assert [(f.entity, f.entity_id, f.repairable) for f in missing] == [
        ("artifact", stored.id, False)
    ]
