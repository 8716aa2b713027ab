"""`export_namespace` and `import_namespace`: a namespace's portable archive to
and from a file, written once for both clients as machines (`strata._machines`).

An export writes the archive's chunks as they stream in; to a path, it writes
a file beside it that becomes the path only once the whole archive is on disk
(fsync, then rename), so that a failed export leaves nothing. An import sends a
header, then the file in chunks; the server applies all of it or nothing.
"""

from __future__ import annotations

import os
from functools import partial
from typing import IO, Any, Literal, TypeAlias

from strata._admin_requests import ProgressCallback
from strata._machines import Blocking, Chunks, Machine, Open, Read, progressed
from strata._rpc import StreamRpc
from strata.artifacts import Sink, Source, Target, open_source
from strata.errors import StrataError
from strata.v1 import admin_pb2

IMPORT_CHUNK = 256 << 10
"""Archive bytes per ImportNamespace message."""

ConflictPolicy: TypeAlias = Literal["skip", "overwrite", "fail"]
"""What an import does with an id the namespace already holds: keep what is
stored, replace it, or import nothing at all."""

_POLICIES: dict[str, admin_pb2.ConflictPolicy.ValueType] = {
    "skip": admin_pb2.CONFLICT_POLICY_SKIP,
    "overwrite": admin_pb2.CONFLICT_POLICY_OVERWRITE,
    "fail": admin_pb2.CONFLICT_POLICY_FAIL,
}


def _remaining(file: IO[bytes]) -> int:
    """Bytes from the file's position to its end; 0 when it cannot seek (unknown)."""
    try:
        start = file.tell()
        end = file.seek(0, os.SEEK_END)
        file.seek(start)
    except (AttributeError, OSError):
        return 0
    return end - start


def _import_chunk(piece: bytes) -> admin_pb2.ImportNamespaceRequest:
    return admin_pb2.ImportNamespaceRequest(chunk=piece)


# The calls; each docstring is the documentation of the client method.


def export_namespace(
    target: Target,
    *,
    owner: str | None = None,
    progress: ProgressCallback | None = None,
    namespace: str | None = None,
) -> Machine[admin_pb2.ArchiveSummary]:
    """Export the namespace (or only `owner`'s transcripts and artifacts) as
    one archive into `target`: a path (written beside it, renamed into place
    once complete and on disk) or a binary file object. Returns the
    `admin_pb2.ArchiveSummary` (counts per kind, archive bytes). Raises
    InvalidArgument, DataLoss (a blob missing from the blob store)."""
    rpc: StreamRpc[Any, Any] = StreamRpc(
        "admin",
        "ExportNamespace",
        lambda ns: admin_pb2.ExportNamespaceRequest(namespace=ns, owner=owner or ""),
        lambda event: event,
        namespace,
    )
    sink: Sink = yield Blocking(partial(Sink, target))
    try:
        stream = yield Open(rpc)
        summary: admin_pb2.ArchiveSummary | None = None
        while (event := (yield Read(stream))) is not None:
            part = event.WhichOneof("event")
            if part == "chunk":
                yield Blocking(partial(sink.file.write, event.chunk))
            elif part == "progress":
                if progress is not None:
                    progress(event.progress)
            else:
                summary = event.summary
        if summary is None:
            raise StrataError("the server ended ExportNamespace without its summary")
        yield Blocking(partial(sink.finish, durable=True))
        return summary
    except BaseException:
        yield Blocking(sink.abort)
        raise


def import_namespace(
    source: Source,
    *,
    into: str | None = None,
    on_conflict: ConflictPolicy = "fail",
    progress: ProgressCallback | None = None,
) -> Machine[admin_pb2.ImportResult]:
    """Import an archive made by `export_namespace` (a path, or a binary file
    object from its position) into the namespace `into` (None: the one it was
    exported from): all of it or, on any error, nothing. `on_conflict` says
    what to do with ids already stored: "skip", "overwrite" or "fail" (raises
    AlreadyExists). Returns the `admin_pb2.ImportResult` (counts per kind).
    Raises InvalidArgument (reason BAD_ARCHIVE), ResourceExhausted."""
    if on_conflict not in _POLICIES:
        raise ValueError(f"on_conflict must be skip, overwrite or fail, not {on_conflict!r}")
    file, opened = yield Blocking(partial(open_source, source))
    try:
        size = yield Blocking(partial(_remaining, file))
        header = admin_pb2.ImportHeader(
            namespace=into or "", on_conflict=_POLICIES[on_conflict], size=size
        )
        rpc: StreamRpc[Any, Any] = StreamRpc(
            "admin",
            "ImportNamespace",
            lambda _: admin_pb2.ImportNamespaceRequest(header=header),
            lambda event: event,
        )
        chunks = Chunks(file, _import_chunk, IMPORT_CHUNK)
        result: admin_pb2.ImportResult = yield from progressed(rpc, "result", progress, chunks)
        return result
    finally:
        if opened:
            yield Blocking(file.close)
