"""The Python client's artifact calls, sync and async, against both shapes."""

from __future__ import annotations

import hashlib
import io
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

import strata
from tests.contract.artifacts_support import random_bytes, text_log
from tests.support.server import StrataProcess


def owner() -> str:
    return f"executions/{uuid.uuid4().hex[:12]}"


def test_upload_and_download_a_path_with_progress(server: StrataProcess, tmp_path: Path) -> None:
    source = tmp_path / "build.log"
    source.write_bytes(text_log(20_000))
    seen: list[tuple[int, int | None]] = []
    with strata.Client(server.target) as client:
        made = client.upload(
            source, owner=owner(), kind="log", progress=lambda n, t: seen.append((n, t))
        )
        assert (made.name, made.content_type, made.compression) == (
            "build.log",
            "text/plain",
            "zstd",
        )
        assert made.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
        assert seen[-1] == (made.size, made.size) and len(seen) > 1

        target = tmp_path / "out"
        got = client.download(made.id, target)
        assert got == made and target.read_bytes() == source.read_bytes()
        buffer = io.BytesIO()
        client.download(made.id, buffer, offset=1000, limit=5000)
        assert buffer.getvalue() == source.read_bytes()[1000:6000]
        assert client.get_artifact(made.id) == made
        assert [a.id for a in client.list_artifacts(made.owner)] == [made.id]


def test_upload_skips_bytes_the_server_has(server: StrataProcess) -> None:
    data = random_bytes(3 << 20)
    with strata.Client(server.target) as client:
        first = client.upload(io.BytesIO(data), owner=owner(), kind="blob", name="a.bin")
        progress: list[tuple[int, int | None]] = []
        second = client.upload(
            io.BytesIO(data),
            owner=owner(),
            kind="blob",
            name="b.bin",
            progress=lambda n, t: progress.append((n, t)),
        )
        assert progress == [(len(data), len(data))], "no chunk was sent"
        assert second.sha256 == first.sha256 and second.id != first.id
        assert client.find_missing_blobs([first.sha256, "0" * 64]) == ["0" * 64]
        client.delete_artifact(first.id)
        with pytest.raises(strata.NotFound):
            client.get_artifact(first.id)


def test_a_stream_that_cannot_seek_is_sent_without_a_hash(
    server: StrataProcess, tmp_path: Path
) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
            chunk = self._inner.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    data = random_bytes(1 << 20)
    with strata.Client(server.target) as client:
        made = client.upload(Pipe(data), owner=owner(), kind="blob", name="p.bin")  # type: ignore[arg-type]
        assert made.sha256 == hashlib.sha256(data).hexdigest()


def test_errors_are_typed(server: StrataProcess, tmp_path: Path) -> None:
    with strata.Client(server.target) as client:
        made = client.upload(io.BytesIO(b"abc"), owner=owner(), kind="x", name="x")
        with pytest.raises(strata.OutOfRange):
            client.download(made.id, tmp_path / "never", offset=4)
        assert not (tmp_path / "never").exists()
        assert list(tmp_path.iterdir()) == []
        with pytest.raises(strata.InvalidArgument):
            client.upload(io.BytesIO(b"abc"), owner="", kind="x", name="x")


async def test_async_upload_and_download(server: StrataProcess, tmp_path: Path) -> None:
    data = text_log(5000) + random_bytes(100_000)
    async with strata.AsyncClient(server.target) as client:
        made = await client.upload(io.BytesIO(data), owner=owner(), kind="log", name="mix.log")
        again = await client.upload(
            io.BytesIO(data), owner=made.owner, kind="log", name="again.log"
        )
        assert again.sha256 == made.sha256
        target = tmp_path / "mix.log"
        seen: list[int] = []
        await client.download(made.id, target, progress=lambda n, t: seen.append(n))
        assert target.read_bytes() == data and seen[-1] == len(data)
        listed = [a.id async for a in client.list_artifacts(made.owner, "log")]
        assert listed == [made.id, again.id]


def test_archive_restore_and_reindex(server: StrataProcess) -> None:
    ns = f"cl-{uuid.uuid4().hex[:12]}"
    with strata.Client(server.target) as client:
        made = client.upload(
            io.BytesIO(text_log(500)), owner=owner(), kind="log", name="a.log", namespace=ns
        )
        assert not made.archived
        client.set_retention_policy("archive_artifacts", timedelta(seconds=1), namespace=ns)
        time.sleep(1.2)
        client.run_cleanup(namespace=ns)
        assert client.get_artifact(made.id, namespace=ns).archived
        assert client.restore_artifact(made.id, namespace=ns) == made
        seen: list[object] = []
        report = client.reindex_artifacts(namespace=ns, rebuild=True, progress=seen.append)
        assert (report.artifacts, report.indexed) == (1, 1) and seen
