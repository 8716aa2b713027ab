"""The unary artifact calls, described without I/O (see `strata._rpc`).

`upload` and `download` stream files: they are machines, in
`strata._artifact_streams`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.empty_pb2 import Empty

from strata._convert import parent_record
from strata._rpc import PagedRpc, Rpc, namespaced_call, paged_call
from strata.artifacts import Artifact
from strata.v1 import artifacts_pb2


def get_artifact(id: str, *, namespace: str | None = None) -> Rpc[artifacts_pb2.Artifact, Artifact]:
    """Return an artifact's metadata. Raises NotFound."""
    return namespaced_call(
        "artifacts",
        "GetArtifact",
        artifacts_pb2.GetArtifactRequest(id=id),
        Artifact.from_proto,
        namespace,
        True,
    )


def list_artifacts(
    owner: str | None = None,
    kind: str | None = None,
    *,
    page_size: int = 0,
    namespace: str | None = None,
    parent: tuple[str, str] | None = None,
) -> PagedRpc[Artifact]:
    """Iterate over artifacts, oldest first, only those of `owner`, `kind` and the
    record `parent` (collection, id) if given, fetching `page_size` per call (0:
    the server's default)."""
    query = artifacts_pb2.ListArtifactsRequest(
        owner=owner or "", kind=kind or "", page_size=page_size, parent=parent_record(parent)
    )
    return paged_call(
        "ListArtifacts",
        query,
        _listed,
        namespace,
        "artifacts",
    )


def _listed(response: artifacts_pb2.ListArtifactsResponse) -> list[Artifact]:
    return [Artifact.from_proto(item) for item in response.artifacts]


def delete_artifact(id: str, *, namespace: str | None = None) -> Rpc[Empty, None]:
    """Delete an artifact (its content goes once no artifact names it). Raises NotFound."""
    return namespaced_call(
        "artifacts",
        "DeleteArtifact",
        artifacts_pb2.DeleteArtifactRequest(id=id),
        lambda _: None,
        namespace,
        False,
    )


def restore_artifact(
    id: str, *, namespace: str | None = None
) -> Rpc[artifacts_pb2.Artifact, Artifact]:
    """Bring an archived artifact back to the hot tier; a hot one is returned
    unchanged (so it is retried). Raises NotFound for an unknown id."""
    return namespaced_call(
        "artifacts",
        "RestoreArtifact",
        artifacts_pb2.RestoreArtifactRequest(id=id),
        Artifact.from_proto,
        namespace,
        True,
    )


def find_missing_blobs(
    sha256s: Sequence[str], *, namespace: str | None = None
) -> Rpc[artifacts_pb2.FindMissingBlobsResponse, list[str]]:
    """Of these content hashes, those the server does not store for the namespace."""
    return namespaced_call(
        "artifacts",
        "FindMissingBlobs",
        artifacts_pb2.FindMissingBlobsRequest(sha256s=list(sha256s)),
        lambda response: list(response.missing_sha256s),
        namespace,
        True,
    )


def artifact_url(
    id: str, *, expiry: timedelta = timedelta(hours=1), namespace: str | None = None
) -> Rpc[artifacts_pb2.GetArtifactUrlResponse, tuple[str, datetime]]:
    """A presigned HTTP URL of the artifact's stored bytes and when it expires (S3
    blob stores only: FailedPrecondition on local disk). A `zstd` artifact's URL
    serves the zstd stream with `Content-Encoding: zstd`."""
    duration = Duration()
    duration.FromTimedelta(expiry)
    return namespaced_call(
        "artifacts",
        "GetArtifactUrl",
        artifacts_pb2.GetArtifactUrlRequest(id=id, expiry=duration),
        lambda response: (response.url, response.expire_time.ToDatetime(UTC)),
        namespace,
        True,
    )
