"""What the artifact tests share: uploading and downloading over real stubs, content
made on the fly, and a view of the blob store behind a server (its data directory
or its bucket), plus the storage ports opened the way the server opens them, to run
the sweep and the integrity check against the server's own storage."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.v1 import artifacts_pb2, artifacts_pb2_grpc
from strata_server.storage.blobs import layout
from tests.support.s3 import S3Server
from tests.support.server import StrataProcess

MIB = 1 << 20


def text_log(lines: int, seed: int = 0) -> bytes:
    """A service log of `lines` lines: compresses well, as real logs do."""
    return b"".join(
        f"2026-03-{i % 28 + 1:02d}T12:{i % 60:02d}:{(i * 7) % 60:02d}Z INFO worker-{i % 7} "
        f"job={seed}-{i} took {(i * 37) % 1000} ms status=ok\n".encode()
        for i in range(lines)
    )


def random_bytes(size: int) -> bytes:
    """Incompressible content."""
    return os.urandom(size)


def header(**fields: Any) -> artifacts_pb2.UploadArtifactRequest:
    """A header message; owner, kind and name default to something valid."""
    values = {"owner": "executions/ex-1", "kind": "log", "name": "build.log", **fields}
    return artifacts_pb2.UploadArtifactRequest(header=artifacts_pb2.ArtifactHeader(**values))


def chunk(data: bytes) -> artifacts_pb2.UploadArtifactRequest:
    """A chunk message."""
    return artifacts_pb2.UploadArtifactRequest(chunk=data)


def chunked(data: bytes, size: int = 256 << 10) -> Iterator[artifacts_pb2.UploadArtifactRequest]:
    """`data` as chunk messages of `size` bytes."""
    for at in range(0, len(data), size):
        yield chunk(data[at : at + size])


def upload(
    stub: artifacts_pb2_grpc.ArtifactServiceStub,
    data: bytes | Iterable[bytes],
    chunk_size: int = 256 << 10,
    **fields: Any,
) -> artifacts_pb2.Artifact:
    """Upload `data` (bytes, or an iterable of pieces) after a header of `fields`."""

    def messages() -> Iterator[artifacts_pb2.UploadArtifactRequest]:
        yield header(**fields)
        if isinstance(data, bytes):
            yield from chunked(data, chunk_size)
        else:
            for piece in data:
                yield chunk(piece)

    return stub.UploadArtifact(messages(), timeout=120)


def download(
    stub: artifacts_pb2_grpc.ArtifactServiceStub, id: str, offset: int = 0, limit: int = 0
) -> tuple[artifacts_pb2.Artifact, bytes]:
    """The first message's artifact and the concatenated chunks."""
    stream = stub.DownloadArtifact(
        artifacts_pb2.DownloadArtifactRequest(id=id, offset=offset, limit=limit), timeout=120
    )
    first = next(stream)
    assert first.WhichOneof("part") == "artifact"
    return first.artifact, b"".join(message.chunk for message in stream)


def sha256(data: bytes) -> str:
    """Lowercase hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class BlobView:
    """The published blobs behind one server: {key: stored bytes}."""

    server: StrataProcess
    s3: S3Server | None

    @property
    def bucket(self) -> str:
        """The server's bucket (S3 shape only)."""
        return self.server.env["STRATA_S3_BUCKET"]

    @property
    def data_dir(self) -> Path:
        """The server's data directory (disk shape)."""
        return self.server.workdir / "data"

    def blobs(self) -> dict[str, int]:
        """Every published blob's key and stored size."""
        if self.s3 is None:
            root = self.data_dir / layout.ROOT
            return {
                str(path.relative_to(self.data_dir)): path.stat().st_size
                for path in root.rglob("*")
                if path.is_file()
            }
        client = self.s3.client()
        return {
            item.object_name: item.size
            for item in client.list_objects(self.bucket, prefix=layout.ROOT + "/", recursive=True)
        }

    def staging(self) -> list[str]:
        """Staging leftovers: temp files, or staging objects in the bucket."""
        if self.s3 is None:
            tmp = self.data_dir / "blobs" / "tmp"
            return [path.name for path in tmp.iterdir()] if tmp.exists() else []
        client = self.s3.client()
        return [
            item.object_name
            for item in client.list_objects(self.bucket, prefix="staging/", recursive=True)
        ]

    def staged_since(self, before: list[str]) -> list[str]:
        """Staging leftovers not in `before`: what the calls since then left. The
        session's servers are shared by every test of a worker, in an order that
        pytest-xdist picks, so a leftover already there is not this test's."""
        return sorted(set(self.staging()) - set(before))

    def unfinished_multipart_uploads(self) -> list[str]:
        """S3 multipart uploads begun and neither completed nor aborted (S3 shape)."""
        assert self.s3 is not None
        result = self.s3.client()._list_multipart_uploads(self.bucket)
        return [upload.object_name for upload in result.uploads]

    def has(self, sha: str) -> bool:
        """Whether a blob with that SHA-256 is published."""
        return any(layout.parse(key) and layout.parse(key)[0] == sha for key in self.blobs())  # type: ignore[index]

    def remove(self, sha: str) -> None:
        """Delete a blob behind the server's back (to simulate loss)."""
        for key in self.blobs():
            parsed = layout.parse(key)
            if parsed and parsed[0] == sha:
                if self.s3 is None:
                    (self.data_dir / key).unlink()
                else:
                    self.s3.client().remove_object(self.bucket, key)

    def corrupt(self, sha: str) -> None:
        """Overwrite a raw blob's bytes behind the server's back (same length)."""

        def flip(data: bytearray) -> bytes:
            data[0] ^= 0xFF
            return bytes(data)

        self._rewrite(sha, flip)

    def truncate(self, sha: str, keep: int) -> None:
        """Cut a raw blob to its first `keep` bytes behind the server's back."""
        self._rewrite(sha, lambda data: bytes(data[:keep]))

    def _rewrite(self, sha: str, change: Callable[[bytearray], bytes]) -> None:
        key = layout.key(sha, layout.parse(next(k for k in self.blobs() if sha in k))[1])  # type: ignore[index]
        if self.s3 is None:
            path = self.data_dir / key
            path.write_bytes(change(bytearray(path.read_bytes())))
        else:
            import io

            client = self.s3.client()
            response = client.get_object(self.bucket, key)
            data = change(bytearray(response.read()))
            response.close()
            client.put_object(self.bucket, key, io.BytesIO(data), len(data))


@asynccontextmanager
async def storage_ports(server: StrataProcess) -> AsyncIterator[tuple[Any, Any]]:
    """(artifact rows, blob store) opened on the server's own storage, as app.py opens them."""
    from strata_server.backends import open_blobs
    from strata_server.config import load_settings
    from strata_server.storage.postgres import open_postgres
    from strata_server.storage.sqlite import open_sqlite

    env = server.env
    settings = load_settings(
        database_url=server.database_url,
        data_dir=server.workdir / "data",
        s3_endpoint=env.get("STRATA_S3_ENDPOINT"),
        s3_access_key=env.get("STRATA_S3_ACCESS_KEY"),
        s3_secret_key=env.get("STRATA_S3_SECRET_KEY"),
        s3_bucket=env.get("STRATA_S3_BUCKET"),
        s3_secure=False,
        s3_region=env.get("STRATA_S3_REGION"),
    )
    target = settings.database
    if target.kind == "sqlite":
        storage = await open_sqlite(target.path, max_record_bytes=1 << 20, readers=1)
    else:
        storage = await open_postgres(target.dsn, max_record_bytes=1 << 20, min_size=1, max_size=2)
    blobs = await open_blobs(settings)
    try:
        yield storage.artifacts, blobs
    finally:
        await blobs.close()
        await storage.close()
