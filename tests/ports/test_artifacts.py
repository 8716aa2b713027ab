"""The ArtifactStore port: artifact rows, and the pins that keep the blob sweep off
a blob an upload is about to name."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from strata_server.core.artifact_rules import Artifact, ArtifactListQuery, BlobRef, Compression
from strata_server.core.errors import FailedPrecondition, NotFound
from strata_server.core.models import Idempotency
from strata_server.core.validation import new_id
from strata_server.storage.composite import Storage
from strata_server.storage.ports.write_context import WriteContext
from tests.ports.conftest import ACTOR
from tests.ports.helpers import audit


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def artifact(ns: str, content: str, **kw: Any) -> Artifact:
    fields: dict[str, Any] = {
        "namespace": ns,
        "id": new_id(),
        "owner": "ann",
        "kind": "log",
        "name": f"{content}.txt",
        "content_type": "text/plain",
        "sha256": sha(content),
        "size": 100,
        "stored_size": 40,
        "compression": Compression.ZSTD,
        "labels": {"run": "1"},
        "create_time": datetime.now(UTC).replace(microsecond=0),
    }
    fields.update(kw)
    return Artifact(**fields)


async def upload(storage: Storage, ns: str, content: str, **kw: Any) -> Artifact:
    """An upload's two steps: pin the blob, then name it in a row (dropping the pin)."""
    new = artifact(ns, content, **kw)
    upload_id = new_id()
    later = datetime.now(UTC) + timedelta(minutes=5)
    await storage.artifacts.pin_blob(ns, upload_id, new.sha256, later)
    return await storage.artifacts.create_artifact(new, WriteContext(ACTOR), upload_id=upload_id)


async def test_create_get_list_delete(storage: Storage, ns: str) -> None:
    first = await upload(storage, ns, "a")
    assert await storage.artifacts.get_artifact(ns, first.id) == first
    second = await upload(storage, ns, "b", owner="bob", kind="diff")
    third = await upload(storage, ns, "c")
    ids, after = [], None
    while True:
        page = await storage.artifacts.list_artifacts(ns, ArtifactListQuery(2, after=after))
        ids += [a.id for a in page.items]
        if page.last_key is None:
            break
        (after,) = page.last_key
    assert ids == sorted([first.id, second.id, third.id])
    bobs = await storage.artifacts.list_artifacts(ns, ArtifactListQuery(10, owner="bob"))
    assert [a.id for a in bobs.items] == [second.id]
    logs = await storage.artifacts.list_artifacts(ns, ArtifactListQuery(10, "ann", "log"))
    assert [a.id for a in logs.items] == sorted([first.id, third.id])
    assert await storage.artifacts.delete_artifact(ns, first.id, actor=ACTOR) == first
    with pytest.raises(NotFound):
        await storage.artifacts.get_artifact(ns, first.id)
    with pytest.raises(NotFound):
        await storage.artifacts.delete_artifact(ns, first.id, actor=ACTOR)
    actions = [(e.action, e.entity_id) for e in await audit(storage, ns, entity="artifact")]
    assert actions[-1] == ("delete", first.id) and actions.count(("create", first.id)) == 1


async def test_an_upload_without_bytes_needs_the_blob_named_in_its_namespace(
    storage: Storage, ns: str
) -> None:
    with pytest.raises(FailedPrecondition) as missing:
        await storage.artifacts.create_artifact(
            artifact(ns, "x"), WriteContext(ACTOR), upload_id=None
        )
    assert missing.value.reason == "BLOB_NOT_FOUND"
    stored = await upload(storage, ns, "x")
    again = await storage.artifacts.create_artifact(
        artifact(ns, "x"), WriteContext(ACTOR), upload_id=None
    )
    assert again.sha256 == stored.sha256 and again.id != stored.id
    with pytest.raises(FailedPrecondition):  # named in another namespace only
        await storage.artifacts.create_artifact(
            artifact(f"{ns}x", "x"), WriteContext(ACTOR), upload_id=None
        )
    found = await storage.artifacts.namespace_blobs(ns, [sha("x"), sha("y"), sha("x")])
    assert found == {sha("x"): BlobRef(sha("x"), Compression.ZSTD, 100, 40)}
    key = Idempotency("req", "fp")
    first = await storage.artifacts.create_artifact(
        artifact(ns, "x"), WriteContext(ACTOR, key), upload_id=None
    )
    repeat = await storage.artifacts.create_artifact(
        artifact(ns, "x"), WriteContext(ACTOR, key), upload_id=None
    )
    assert repeat == first


async def test_pins_and_references_keep_a_blob_from_the_sweep(storage: Storage, ns: str) -> None:
    now = datetime.now(UTC)
    await storage.artifacts.pin_blob(ns, "u1", sha("pinned"), now + timedelta(minutes=5))
    await storage.artifacts.pin_blob(ns, "u2", sha("stale"), now - timedelta(seconds=1))
    named = await upload(storage, ns, "named")
    candidates = [sha("pinned"), sha("stale"), sha("named"), sha("free")]
    assert await storage.artifacts.unreferenced_blobs(candidates, now) == {
        sha("stale"),
        sha("free"),
    }
    deleted: list[str] = []

    def deleting(name: str) -> Callable[[], Awaitable[None]]:
        async def delete() -> None:
            deleted.append(name)

        return delete

    assert not await storage.artifacts.delete_blob_if_unreferenced(
        sha("named"),
        now,
        deleting("named"),  # type: ignore[arg-type]
    )
    assert await storage.artifacts.delete_blob_if_unreferenced(
        sha("free"),
        now,
        deleting("free"),  # type: ignore[arg-type]
    )
    assert deleted == ["free"]
    assert await storage.artifacts.purge_pins(now) == 1  # the stale one
    await storage.artifacts.unpin_blob(ns, "u1")
    assert sha("pinned") in await storage.artifacts.unreferenced_blobs([sha("pinned")], now)
    await storage.artifacts.delete_artifact(ns, named.id, actor=ACTOR)
    assert await storage.artifacts.unreferenced_blobs([sha("named")], now) == {sha("named")}


async def test_every_artifact_of_every_namespace(storage: Storage, ns: str) -> None:
    made = {(await upload(storage, name, str(i))).id for i, name in enumerate([ns, f"{ns}b"] * 3)}
    assert {a.id async for a in storage.artifacts.all_artifacts()} == made


async def test_archivable_tiers_and_hot_holders(storage: Storage, ns: str) -> None:
    store = storage.artifacts
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    log = await upload(storage, ns, "tier-a", create_time=old)
    diff = await upload(storage, ns, "tier-b", kind="diff", create_time=old)
    fresh = await upload(storage, ns, "tier-a")  # names log's blob, created now
    cutoff = datetime.now(UTC) - timedelta(days=1)
    assert await store.count_archivable(ns, None, cutoff) == 2
    assert await store.count_archivable(ns, "log", cutoff) == 1
    assert [a.id for a in await store.archivable(ns, None, cutoff, 10)] == sorted([log.id, diff.id])
    assert await store.blob_hot_elsewhere(log) and not await store.blob_hot_elsewhere(diff)

    at = datetime.now(UTC).replace(microsecond=0)
    archived = await store.set_tier(ns, fresh.id, at, actor=ACTOR)
    assert archived.archive_time == at and archived.tier == "archived"
    assert await store.get_artifact(ns, fresh.id) == archived
    assert not await store.blob_hot_elsewhere(log), "its only other holder is archived"
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert fresh.id not in [a.id for a in await store.archivable(ns, None, later, 10)]
    restored = await store.set_tier(ns, fresh.id, None, actor=ACTOR)
    assert restored == fresh
    with pytest.raises(NotFound):
        await store.set_tier(ns, new_id(), at, actor=ACTOR)
    actions = [(e.action, e.entity_id) for e in await audit(storage, ns, entity="artifact")]
    assert ("archive", fresh.id) in actions and ("restore", fresh.id) in actions
