"""services/artifacts_service.py in-process: an upload stream's rules (header first,
once; the idle limit) and a download in bounded pieces."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from strata_server.core.artifact_rules import ArtifactListQuery, Header
from strata_server.core.errors import DeadlineExceeded, InvalidArgument
from strata_server.core.models import Actor
from strata_server.services.artifacts_service import (
    CHUNK_SIZE,
    Artifacts,
    UploadHeader,
)

ACTOR = Actor("test")
Part = UploadHeader | bytes | None


def service(storage: tuple[Any, Any], idle_seconds: float = 30) -> Artifacts:
    ports, blobs = storage
    return Artifacts(
        ports.artifacts, ports.quotas, blobs, max_bytes=1 << 24, idle_seconds=idle_seconds
    )


def header(kind: str = "log", sha256: str = "") -> UploadHeader:
    sent = Header(owner="o", kind=kind, name="run.log", content_type="text/plain", sha256=sha256)
    return UploadHeader(namespace="default", header=sent, request_id="", fingerprint="f")


async def parts(*items: Part, stall: float = 0) -> AsyncIterator[Part]:
    for item in items:
        yield item
    await asyncio.sleep(stall)


async def refused(artifacts: Artifacts, items: Iterable[Part]) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as raised:
        await artifacts.upload(parts(*items), actor=ACTOR)
    return raised.value


async def test_download_gives_the_artifact_then_its_bytes_in_bounded_pieces(storage) -> None:
    artifacts = service(storage)
    data = os.urandom(2 * CHUNK_SIZE + 1000)
    stored = await artifacts.upload(
        parts(header(), data[:CHUNK_SIZE], b"", data[CHUNK_SIZE:]), actor=ACTOR
    )
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    items = [item async for item in artifacts.download("default", stored.id, 0, 0)]
    assert items[0] == stored
    pieces = items[1:]
    assert all(isinstance(piece, bytes) and 0 < len(piece) <= CHUNK_SIZE for piece in pieces)
    assert b"".join(pieces) == data
    ranged = [item async for item in artifacts.download("default", stored.id, 10, 5)]
    assert ranged[1:] == [data[10:15]]


async def test_the_stream_must_start_with_one_header(storage) -> None:
    artifacts = service(storage)
    empty = await refused(artifacts, [])
    assert "the stream is empty" in empty.message
    chunk_first = await refused(artifacts, [b"data", header()])
    assert "the first message must be the header" in chunk_first.message
    blank_first = await refused(artifacts, [None])
    assert "the first message must be the header" in blank_first.message
    blank_later = await refused(artifacts, [header(), b"x", None])
    assert "each message must hold a header or a chunk" in blank_later.message


async def test_a_second_header_is_refused_as_such_whatever_it_holds(storage) -> None:
    artifacts = service(storage)
    bad_kind = header(kind="not a kind!")
    assert (await refused(artifacts, [bad_kind])).violations[0].field == "header.kind"
    twice = await refused(artifacts, [header(), b"x", bad_kind])
    assert "was sent twice" in twice.message
    listed = await artifacts.list_artifacts("default", ArtifactListQuery(10))
    assert listed.items == []


async def test_a_quiet_upload_fails_with_idle_timeout(storage) -> None:
    artifacts = service(storage, idle_seconds=0.1)
    with pytest.raises(DeadlineExceeded) as raised:
        await artifacts.upload(parts(header(), b"x", stall=30), actor=ACTOR)
    assert raised.value.reason == "IDLE_TIMEOUT"
    assert "STRATA_UPLOAD_IDLE_TIMEOUT_SECONDS" in raised.value.message
    listed = await artifacts.list_artifacts("default", ArtifactListQuery(10))
    assert listed.items == []
