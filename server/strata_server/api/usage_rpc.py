"""GetUsage's proto side: core.models.Usage to GetUsageResponse, with the totals
summed over the namespaces (except the blobs, which the adapter counts over all
of them at once, so a blob named from two namespaces counts once)."""

from __future__ import annotations

from typing import Any

from strata.v1 import admin_pb2
from strata_server.api.convert import job_state
from strata_server.core import job_transitions as queue
from strata_server.core import models


def usage_to_proto(found: models.Usage) -> admin_pb2.GetUsageResponse:
    """The response: one NamespaceUsage per namespace, and their totals."""
    response = admin_pb2.GetUsageResponse(
        namespaces=[namespace_to_proto(u) for u in found.namespaces]
    )
    total = response.total
    jobs: dict[int, int] = {}
    kinds: dict[str, admin_pb2.ArtifactKindUsage] = {}
    for usage in response.namespaces:
        for name in _SUMMED:
            setattr(total, name, getattr(total, name) + getattr(usage, name))
        if usage.HasField("transcript_tiers"):
            _add(total.transcript_tiers, usage.transcript_tiers, _TIER_SUMMED)
        if usage.HasField("artifact_tiers"):
            _add(total.artifact_tiers, usage.artifact_tiers, _ARTIFACT_TIER_SUMMED)
        for count in usage.jobs:
            jobs[count.state] = jobs.get(count.state, 0) + count.count
        for kind in usage.artifact_kinds:
            into = kinds.setdefault(kind.kind, admin_pb2.ArtifactKindUsage(kind=kind.kind))
            into.artifact_count += kind.artifact_count
            into.artifact_bytes += kind.artifact_bytes
            into.artifact_stored_bytes += kind.artifact_stored_bytes
    total.jobs.extend(
        admin_pb2.JobStateCount(state=state, count=count)  # type: ignore[arg-type]
        for state, count in sorted(jobs.items())
    )
    total.artifact_kinds.extend(kinds[name] for name in sorted(kinds))
    total.blobs.CopyFrom(_blobs_to_proto(found.blobs))
    return response


def _add(into: Any, each: Any, names: tuple[str, ...]) -> None:
    for name in names:
        setattr(into, name, getattr(into, name) + getattr(each, name))


_SUMMED = (
    "record_count",
    "record_bytes",
    "job_count",
    "transcript_count",
    "entry_count",
    "entry_bytes",
    "artifact_count",
    "artifact_bytes",
    "artifact_stored_bytes",
)
"""NamespaceUsage's figures that the totals sum."""
_TIER_SUMMED = (
    "hot_transcripts",
    "hot_bytes",
    "archived_transcripts",
    "archived_bytes",
    "archived_stored_bytes",
)
"""And its transcript_tiers' figures, all summed."""
_ARTIFACT_TIER_SUMMED = tuple(admin_pb2.ArtifactTierUsage.DESCRIPTOR.fields_by_name)
"""And its artifact_tiers' figures, all summed."""


def namespace_to_proto(usage: models.NamespaceUsage) -> admin_pb2.NamespaceUsage:
    """One namespace's figures."""
    jobs = sorted((job_state(queue.Visible(state)), count) for state, count in usage.jobs)
    return admin_pb2.NamespaceUsage(
        namespace=usage.namespace,
        record_count=usage.records,
        record_bytes=usage.record_bytes,
        collections=[
            admin_pb2.CollectionUsage(
                collection=c.collection, record_count=c.records, record_bytes=c.bytes
            )
            for c in usage.collections
        ],
        job_count=sum(count for _, count in usage.jobs),
        jobs=[admin_pb2.JobStateCount(state=state, count=count) for state, count in jobs],
        transcript_count=usage.transcripts,
        entry_count=usage.entries,
        entry_bytes=usage.entry_bytes,
        artifact_count=sum(k.artifacts for k in usage.kinds),
        artifact_bytes=sum(k.bytes for k in usage.kinds),
        artifact_stored_bytes=sum(k.stored_bytes for k in usage.kinds),
        artifact_kinds=[
            admin_pb2.ArtifactKindUsage(
                kind=k.kind,
                artifact_count=k.artifacts,
                artifact_bytes=k.bytes,
                artifact_stored_bytes=k.stored_bytes,
            )
            for k in usage.kinds
        ],
        blobs=_blobs_to_proto(usage.blobs),
        transcript_tiers=_tiers_to_proto(usage),
        artifact_tiers=_artifact_tiers_to_proto(usage),
    )


def _artifact_tiers_to_proto(usage: models.NamespaceUsage) -> admin_pb2.ArtifactTierUsage | None:
    """Artifact bytes per tier; None (unset) where there is no artifact."""
    kinds = usage.kinds
    if not kinds:
        return None
    archived = sum(k.archived for k in kinds)
    archived_bytes = sum(k.archived_bytes for k in kinds)
    archived_stored = sum(k.archived_stored_bytes for k in kinds)
    return admin_pb2.ArtifactTierUsage(
        hot_artifacts=sum(k.artifacts for k in kinds) - archived,
        hot_bytes=sum(k.bytes for k in kinds) - archived_bytes,
        hot_stored_bytes=sum(k.stored_bytes for k in kinds) - archived_stored,
        archived_artifacts=archived,
        archived_bytes=archived_bytes,
        archived_stored_bytes=archived_stored,
    )


def _tiers_to_proto(usage: models.NamespaceUsage) -> admin_pb2.TranscriptTierUsage | None:
    """Transcript bytes per tier; None (unset) where there is no transcript."""
    if not usage.transcripts:
        return None
    return admin_pb2.TranscriptTierUsage(
        hot_transcripts=usage.transcripts - usage.archived.transcripts,
        hot_bytes=usage.entry_bytes - usage.archived.entry_bytes,
        archived_transcripts=usage.archived.transcripts,
        archived_bytes=usage.archived.entry_bytes,
        archived_stored_bytes=usage.archived.stored_bytes,
    )


def _blobs_to_proto(blobs: models.BlobUsage) -> admin_pb2.BlobUsage:
    return admin_pb2.BlobUsage(
        blob_count=blobs.blobs,
        referenced_bytes=blobs.referenced,
        unique_bytes=blobs.unique,
        stored_bytes=blobs.stored,
        dedup_saved_bytes=blobs.dedup_saved,
    )
