"""services/transfer_export.py and transfer_import.py in-process: a namespace
exported and imported into another, and an import stream's rules."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from strata_server.core.artifact_rules import ArtifactListQuery, Header
from strata_server.core.errors import InvalidArgument
from strata_server.core.models import Actor, Progress, ServerFacts
from strata_server.core.transfer_format import BLOBS, ConflictPolicy, Kind
from strata_server.services.artifacts_service import Artifacts, UploadHeader
from strata_server.services.topics import Wakeups
from strata_server.services.transfer_export import ExportSummary, NamespaceExport
from strata_server.services.transfer_import import (
    ImportHeader,
    ImportLimits,
    ImportOutcome,
    NamespaceImport,
)
from strata_server.storage.memory.events import LocalEvents

ACTOR = Actor("test")
Part = ImportHeader | bytes | None
LIMITS = ImportLimits(archive_bytes=1 << 26, line_bytes=1 << 20, rows_bytes=1 << 26)


class Forgotten:
    """The record cache's side of an import: which namespaces it was told to drop."""

    def __init__(self) -> None:
        self.namespaces: list[str] = []

    async def __call__(self, namespace: str) -> None:
        self.namespaces.append(namespace)


def importer(storage: tuple[Any, Any], forget: Forgotten) -> NamespaceImport:
    ports, blobs = storage
    return NamespaceImport(
        ports.transfer,
        ports.artifacts,
        blobs,
        limits=LIMITS,
        idle_seconds=30,
        forget=forget,
        wakeups=Wakeups(LocalEvents()),
    )


async def parts(*items: Part) -> AsyncIterator[Part]:
    for item in items:
        yield item


async def upload(storage: tuple[Any, Any], namespace: str, data: bytes) -> None:
    ports, blobs = storage
    artifacts = Artifacts(ports.artifacts, ports.quotas, blobs, max_bytes=1 << 24, idle_seconds=30)
    header = UploadHeader(namespace, Header("o", "log", "a.log", "text/plain"), "", "f")
    await artifacts.upload(parts(header, data), actor=ACTOR)


async def test_an_export_imports_into_another_namespace(storage) -> None:
    ports, blobs = storage
    data = os.urandom(50_000)
    await upload(storage, "source", data)

    async def facts() -> ServerFacts:
        return ServerFacts("sqlite", "test")

    chunks: list[bytes] = []
    summary = None
    async for event in NamespaceExport(ports.transfer, blobs, facts=facts).run("source", None):
        if isinstance(event, bytes):
            chunks.append(event)
        elif isinstance(event, ExportSummary):
            summary = event
    assert summary is not None and summary.counts[Kind.ARTIFACTS.value] == 1
    archive = b"".join(chunks)
    assert summary.archive_bytes == len(archive)

    forget = Forgotten()
    header = ImportHeader("target", ConflictPolicy.FAIL, len(archive))
    events = importer(storage, forget).run(parts(header, archive), actor=ACTOR)
    outcome = [event async for event in events if not isinstance(event, Progress)]
    assert len(outcome) == 1 and isinstance(outcome[0], ImportOutcome)
    assert (outcome[0].namespace, outcome[0].source_namespace) == ("target", "source")
    assert outcome[0].counts[BLOBS].skipped == 1, "the store held the blob already"
    assert forget.namespaces == ["target"]
    imported = await ports.artifacts.list_artifacts("target", ArtifactListQuery(10))
    assert [a.size for a in imported.items] == [len(data)]


@pytest.mark.parametrize(
    ("items", "field", "words"),
    [
        ([], "header", "the first message must be the header"),
        ([b"tar"], "header", "the first message must be the header"),
        ([None], "header", "the first message must be the header"),
        ([ImportHeader("", None, 0)], "header.on_conflict", "is not a ConflictPolicy"),
        ([ImportHeader("", ConflictPolicy.SKIP, -1)], "header.size", "must not be negative"),
        (
            [ImportHeader("", ConflictPolicy.SKIP, 0), b"x", ImportHeader("", None, -1)],
            "header",
            "was sent twice",
        ),
    ],
)
async def test_an_import_stream_starts_with_one_valid_header(
    storage, items: list[Part], field: str, words: str
) -> None:
    forget = Forgotten()
    with pytest.raises(InvalidArgument) as raised:
        async for _ in importer(storage, forget).run(parts(*items), actor=ACTOR):
            pass
    assert raised.value.violations[0].field == field
    assert words in raised.value.message
    assert forget.namespaces == []
