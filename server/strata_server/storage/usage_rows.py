"""GetUsage's rows, as both adapters' grouped queries return them, put together
into core.models.Usage: one NamespaceUsage per namespace that stores anything
(or the one asked for), by name. Each adapter keeps its own SQL (usage.py); the
shape of the rows is the same on both, and so is the order they are read in
(`usage_of`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from strata_server.core.models import (
    ArchivedUsage,
    BlobUsage,
    CollectionUsage,
    KindUsage,
    NamespaceUsage,
    Usage,
)
from strata_server.core.values import frozen

Row = Sequence[Any]


@dataclass(slots=True)
class _Parts:
    collections: list[CollectionUsage] = field(default_factory=list)
    jobs: list[tuple[str, int]] = field(default_factory=list)
    transcripts: tuple[int, int, int] = (0, 0, 0)
    archived: ArchivedUsage = field(default_factory=ArchivedUsage)
    kinds: list[KindUsage] = field(default_factory=list)
    blobs: BlobUsage = field(default_factory=BlobUsage)


def blob_usage(row: Row | None) -> BlobUsage:
    """(blobs, referenced, unique, stored), any of them NULL when nothing matched."""
    if row is None:
        return BlobUsage()
    blobs, referenced, unique, stored = (int(value or 0) for value in row)
    return BlobUsage(blobs, referenced, unique, stored)


def assemble(
    *,
    records: Iterable[Row],
    jobs: Iterable[Row],
    transcripts: Iterable[Row],
    kinds: Iterable[Row],
    blobs: Iterable[Row],
    total_blobs: Row | None,
) -> Usage:
    """Rows keyed by namespace first: records (ns, collection, count, bytes), jobs
    (ns, visible state, count), transcripts (ns, count, entries, entry bytes, archived
    count, archived entry bytes, archived stored bytes), kinds (ns, kind, count,
    bytes, stored bytes, then the archived ones' three), blobs (ns, blobs,
    referenced, unique, stored); `total_blobs` the same figures over every namespace asked for."""
    parts: dict[str, _Parts] = {}

    def of(ns: str) -> _Parts:
        return parts.setdefault(ns, _Parts())

    for ns, collection, count, size in records:
        of(ns).collections.append(CollectionUsage(collection, int(count), int(size)))
    for ns, state, count in jobs:
        of(ns).jobs.append((state, int(count)))
    for ns, count, entries, size, archived, archived_size, stored in transcripts:
        of(ns).transcripts = (int(count), int(entries or 0), int(size or 0))
        of(ns).archived = ArchivedUsage(
            int(archived or 0), int(archived_size or 0), int(stored or 0)
        )
    for ns, kind, count, size, stored, *archived in kinds:
        of(ns).kinds.append(
            KindUsage(kind, int(count), int(size), int(stored), *(int(v or 0) for v in archived))
        )
    for ns, *figures in blobs:
        of(ns).blobs = blob_usage(figures)
    return Usage(
        tuple(
            NamespaceUsage(
                ns,
                tuple(p.collections),
                tuple(p.jobs),
                *p.transcripts,
                kinds=tuple(p.kinds),
                blobs=p.blobs,
                archived=p.archived,
            )
            for ns, p in sorted(parts.items())
        ),
        blob_usage(total_blobs),
    )


@frozen
class UsageSql:
    """One engine's GetUsage statements, each taking the same named parameters and
    returning the rows `assemble` takes of its name."""

    records: str
    jobs: str
    transcripts: str
    kinds: str
    blobs: str
    total_blobs: str


async def usage_of(
    fetch: Callable[[str], Awaitable[Sequence[Row]]], sql: UsageSql, owner: str | None
) -> Usage:
    """Run the statements through `fetch` and put their rows together; jobs have
    no owner, so an owner's usage leaves them out (its records are counted)."""
    unowned = owner is None
    [total] = await fetch(sql.total_blobs)
    return assemble(
        records=await fetch(sql.records),
        jobs=await fetch(sql.jobs) if unowned else (),
        transcripts=await fetch(sql.transcripts),
        kinds=await fetch(sql.kinds),
        blobs=await fetch(sql.blobs),
        total_blobs=tuple(total),
    )
