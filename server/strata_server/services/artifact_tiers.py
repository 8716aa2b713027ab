"""The archive tier of artifacts: archive (an archive_artifacts policy's step) and
RestoreArtifact (docs/artifacts.md, "Tiers").

The rule for shared blobs: blobs are content-addressed and deduplicated, so one blob
may be named by several artifacts, in several namespaces. A blob moves to the colder
storage class only when the artifact being archived is the last hot artifact naming
it; while any hot artifact names it, it stays in the standard class (its readers
pay no retrieval fee). Restoring any artifact brings its blob back to the standard
class, whatever else names it.

Order, and why a crash anywhere is safe: the blob's class changes first (an in-place
S3 copy, same key, so every read, URL and integrity check finds the same bytes),
then one transaction marks the row and audits. A crash between leaves a hot row
whose blob is cold (still read transparently), which the next run archives again;
a restore likewise copies first, so a crash leaves an archived row whose blob is
standard, fixed by running the restore again. An upload racing an archive may name
a blob the archive has just made cold: the new artifact is hot and reads the same,
and a RestoreArtifact of either puts the blob back in the standard class.
"""

from __future__ import annotations

from datetime import UTC, datetime

from strata_server.core.artifact_rules import Artifact
from strata_server.core.models import Actor
from strata_server.core.values import frozen
from strata_server.storage.ports import ArtifactStore, BlobStore


@frozen
class ArtifactTiers:
    """Moves artifacts between the tiers over the artifact rows and the blob store."""

    artifacts: ArtifactStore
    blobs: BlobStore

    async def archive(self, artifact: Artifact, *, actor: Actor) -> Artifact:
        """Archive one hot artifact (see the module docstring for the order)."""
        if artifact.archive_time is not None:
            return artifact
        if not await self.artifacts.blob_hot_elsewhere(artifact):
            await self.blobs.set_storage_class(artifact.blob, cold=True)
        return await self.artifacts.set_tier(
            artifact.namespace, artifact.id, datetime.now(UTC), actor=actor
        )

    async def restore(self, namespace: str, id: str, *, actor: Actor) -> Artifact:
        """Bring an artifact back hot: its blob to the standard class, then its row; a
        hot artifact is returned unchanged (its blob checked standard all the same)."""
        artifact = await self.artifacts.get_artifact(namespace, id)
        await self.blobs.set_storage_class(artifact.blob, cold=False)
        if artifact.archive_time is None:
            return artifact
        return await self.artifacts.set_tier(namespace, id, None, actor=actor)
