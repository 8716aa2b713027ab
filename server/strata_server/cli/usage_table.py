"""The table `strata usage` prints: one row per thing stored (records per
collection, jobs per state, transcripts, artifacts per kind and, once any is
archived, per tier, blobs), with a bar
for its bytes against the largest row, then the totals. Kept apart from
admin_commands.py, which only asks the server and prints this."""

from __future__ import annotations

from rich.bar import Bar
from rich.table import Table

from strata.v1 import admin_pb2, queue_pb2
from strata_server.core.values import frozen

BAR_WIDTH = 24


@frozen
class Row:
    """One line: what, how many, its bytes (0: none to show) and stored bytes."""

    namespace: str
    type: str
    name: str
    count: int
    size: int = 0
    stored: int | None = None


def size_text(value: int) -> str:
    """Bytes for people: 512 B, 1.5 KiB, 20.0 MiB, ..."""
    if value < 1024:
        return f"{value:,} B"
    units = ("KiB", "MiB", "GiB", "TiB")
    size, step = value / 1024, 0
    while size >= 1024 and step < len(units) - 1:
        size, step = size / 1024, step + 1
    return f"{size:,.1f} {units[step]}"


def rows(space: admin_pb2.NamespaceUsage, name: str) -> list[Row]:
    """The lines of one namespace (or of the totals, `name` "total")."""
    found: list[Row] = []
    for c in space.collections:
        found.append(Row(name, "records", c.collection, c.record_count, c.record_bytes))
    for j in space.jobs:
        state = queue_pb2.JobState.Name(j.state).removeprefix("JOB_STATE_").lower()
        found.append(Row(name, "jobs", state, j.count))
    if space.transcript_count:
        found.append(Row(name, "transcripts", "", space.transcript_count))
        found.append(Row(name, "entries", "", space.entry_count, space.entry_bytes))
    for k in space.artifact_kinds:
        found.append(
            Row(
                name,
                "artifacts",
                k.kind,
                k.artifact_count,
                k.artifact_bytes,
                k.artifact_stored_bytes,
            )
        )
    tiers = space.artifact_tiers
    if tiers.archived_artifacts:  # all hot: the kinds' lines say it already
        for tier, count, size, stored in (
            ("hot", tiers.hot_artifacts, tiers.hot_bytes, tiers.hot_stored_bytes),
            (
                "archived",
                tiers.archived_artifacts,
                tiers.archived_bytes,
                tiers.archived_stored_bytes,
            ),
        ):
            found.append(Row(name, "artifact tier", tier, count, size, stored))
    blobs = space.blobs
    if blobs.blob_count:
        found.append(
            Row(name, "blobs", "distinct", blobs.blob_count, blobs.unique_bytes, blobs.stored_bytes)
        )
        if blobs.dedup_saved_bytes:
            found.append(Row(name, "blobs", "dedup saved", 0, blobs.dedup_saved_bytes))
    return found


def usage_table(found: admin_pb2.GetUsageResponse, owner: str = "") -> Table:
    """Every namespace's lines, then the totals' (by type), with bars."""
    lines = [row for space in found.namespaces for row in rows(space, space.namespace)]
    totals = rows(_by_type(found.total), "total")
    largest = max((row.size for row in lines + totals), default=0) or 1
    title = f"usage of owner {owner}" if owner else "usage"
    table = Table("namespace", "type", "name", "count", "bytes", "stored", "", title=title)
    for section in (lines, totals):
        for row in section:
            bar = Bar(size=largest, begin=0, end=row.size, width=BAR_WIDTH) if row.size else ""
            table.add_row(
                row.namespace,
                row.type,
                row.name,
                f"{row.count:,}" if row.count else "",
                size_text(row.size) if row.size else "",
                size_text(row.stored) if row.stored is not None else "",
                bar,
            )
        table.add_section()
    return table


def _by_type(total: admin_pb2.NamespaceUsage) -> admin_pb2.NamespaceUsage:
    """The totals with records summed over collections (collection names repeat
    across namespaces and mean different things)."""
    merged = admin_pb2.NamespaceUsage()
    merged.CopyFrom(total)
    del merged.collections[:]
    if total.record_count:
        merged.collections.add(record_count=total.record_count, record_bytes=total.record_bytes)
    return merged
