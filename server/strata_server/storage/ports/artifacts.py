"""The artifacts port: artifact rows and blob pins, and one upload's staging."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol

from strata_server.core.artifact_rules import (
    Artifact,
    ArtifactListQuery,
    BlobRef,
    StagedBlob,
    StoredBlob,
)
from strata_server.core.models import Actor, Page
from strata_server.storage.ports.write_context import WriteContext


class ArtifactStore(Protocol):
    """Artifact rows, and the pins that order uploads against the blob sweep.

    Uploads and the sweep serialize per blob (SQLite: the one writer; PostgreSQL: a
    transaction-scoped advisory lock on the SHA-256), so the sweep never deletes a
    blob between an upload deciding it is stored and the upload's row naming it.
    Every artifact mutation appends its audit entry in the same transaction.
    """

    async def pin_blob(
        self, namespace: str, upload_id: str, sha256: str, expire_time: datetime
    ) -> None:
        """Keep the sweep off `sha256` until the upload's row exists or the pin expires.
        Waits for a sweep deleting that blob to finish first, so afterwards the blob
        store's answer to "is it stored?" stays true."""
        ...

    async def create_artifact(
        self, artifact: Artifact, context: WriteContext, *, upload_id: str | None
    ) -> Artifact:
        """Insert the row (and its audit entry) and drop the upload's pin, in one
        transaction. Without `upload_id` (an upload that sent no bytes), the blob must
        already be named by an artifact of the namespace, else FailedPrecondition
        BLOB_NOT_FOUND. A repeated request_id returns the first result instead."""
        ...

    async def unpin_blob(self, namespace: str, upload_id: str) -> None:
        """Drop an upload's pin (the upload failed after pinning)."""
        ...

    async def get_artifact(self, namespace: str, id: str) -> Artifact:
        """One artifact, or NotFound."""
        ...

    async def list_artifacts(self, namespace: str, query: ArtifactListQuery) -> Page[Artifact]:
        """Artifacts in id (= creation) order after the id `query.after`, optionally
        only those of one owner, kind or parent record; `last_key` is (id,) when more
        may follow."""
        ...

    async def delete_artifact(self, namespace: str, id: str, *, actor: Actor) -> Artifact:
        """Delete the row (the blob stays for the sweep); NotFound when absent."""
        ...

    async def namespace_blobs(self, namespace: str, sha256s: Sequence[str]) -> dict[str, BlobRef]:
        """Of `sha256s`, those an artifact of the namespace names, with how it is stored."""
        ...

    async def unreferenced_blobs(self, sha256s: Sequence[str], now: datetime) -> set[str]:
        """Of `sha256s`, those no artifact (any namespace) names and no live pin holds."""
        ...

    async def delete_blob_if_unreferenced(
        self, sha256: str, now: datetime, delete: Callable[[], Awaitable[None]]
    ) -> bool:
        """Under the blob's lock: if still unreferenced and unpinned, run `delete`
        (which removes the bytes) and return True; else False."""
        ...

    async def purge_pins(self, now: datetime) -> int:
        """Delete expired pins (left by crashed uploads); how many."""
        ...

    def all_artifacts(self) -> AsyncIterator[Artifact]:
        """Every artifact of every namespace, in pages (for the integrity check)."""
        ...

    async def count_archivable(self, namespace: str, kind: str | None, before: datetime) -> int:
        """How many hot artifacts of the namespace (of `kind`, when given) were
        created before `before` (an archive_artifacts policy's step)."""
        ...

    async def archivable(
        self, namespace: str, kind: str | None, before: datetime, limit: int
    ) -> list[Artifact]:
        """Up to `limit` of those, oldest first."""
        ...

    async def blob_hot_elsewhere(self, artifact: Artifact) -> bool:
        """Whether a hot artifact other than `artifact` (any namespace) names its blob."""
        ...

    async def set_tier(
        self, namespace: str, id: str, archive_time: datetime | None, *, actor: Actor
    ) -> Artifact:
        """Archive (a time) or restore (None) the artifact's row, audited as "archive"
        or "restore"; NotFound when absent."""
        ...


class BlobStaging(Protocol):
    """One upload's bytes on their way into a blob store.

    `write` each chunk, then `finish` (hash and sizes known, nothing visible yet),
    then `publish` to make the blob visible under its SHA-256 atomically. `discard`
    is always called last, whatever happened: it removes every staged byte that was
    not published (a cancelled or failed upload leaves nothing behind).
    """

    async def write(self, chunk: bytes) -> None:
        """Stage the next content bytes (hashed, maybe compressed)."""
        ...

    async def finish(self) -> StagedBlob:
        """All content received: the SHA-256, sizes and encoding; publishes nothing."""
        ...

    async def publish(self) -> StoredBlob:
        """Make the blob visible, unless it already is (then no new bytes are stored);
        returns the stored blob either way."""
        ...

    async def discard(self) -> None:
        """Remove whatever was staged and not published; idempotent."""
        ...
