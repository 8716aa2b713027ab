"""What an import writes for each archived row, for either SQL dialect.

Each kind's `Shape` gives its table, key columns, and the values of an archived row
by column name; the import tables (`transfer_tables.ImportTable`)
take them in their own column order. The dialects differ only in how a time is
stored (`Time`: PostgreSQL takes the datetime, SQLite microseconds).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from strata_server.core.artifact_rules import Artifact
from strata_server.core.job_transitions import Job, backoff_us
from strata_server.core.models import LoggedAudit, Record
from strata_server.core.parent_refs import ParentRef
from strata_server.core.transcript_rules import Transcript
from strata_server.core.transfer_format import Kind
from strata_server.core.transfer_rows import ArchivedEntry, QueueSetting
from strata_server.core.values import frozen
from strata_server.storage import entry_wire

Time = Callable[[datetime], Any]
Values = dict[str, Any]


def dumps(value: Any) -> str:
    """JSON text as both dialects store it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _at(time: Time, value: datetime | None) -> Any:
    return None if value is None else time(value)


def _queue(ns: str, q: QueueSetting, time: Time) -> Values:
    return {"namespace": ns, "queue": q.queue, "paused": q.paused}


def _record(ns: str, r: Record, time: Time) -> Values:
    return {
        "namespace": ns,
        "collection": r.collection,
        "id": r.id,
        "data": dumps(r.data),
        "version": r.version,
        "create_time": time(r.create_time),
        "update_time": time(r.update_time),
        "expire_time": _at(time, r.expire_time),
        "owner": r.owner or None,
    }


def _job(ns: str, j: Job, time: Time) -> Values:
    return {
        "namespace": ns,
        "id": j.id,
        "queue": j.queue,
        "state": j.state.value,
        "payload": dumps(j.payload),
        "priority": j.priority,
        "run_time": time(j.run_time),
        "attempt": j.attempt,
        "max_attempts": j.max_attempts,
        "create_time": time(j.create_time),
        "update_time": time(j.update_time),
        "retry_backoff_us": backoff_us(j.retry_backoff),
        "unique_key": j.unique_key,
        "lease_token": j.lease_token,
        "lease_expire_time": _at(time, j.lease_expire_time),
        "last_error": j.last_error,
        "result": None if j.result is None else dumps(j.result),
        "finish_time": _at(time, j.finish_time),
    }


def _parent(parent: ParentRef | None) -> Values:
    """A child's parent columns (both NULL for none)."""
    return {
        "parent_collection": parent.collection if parent is not None else None,
        "parent_id": parent.id if parent is not None else None,
    }


def _transcript(ns: str, t: Transcript, time: Time) -> Values:
    return {
        "namespace": ns,
        "id": t.id,
        "owner": t.owner,
        "title": t.title,
        "labels": dumps(dict(t.labels)),
        "next_seq": t.next_seq,
        "size_bytes": t.size_bytes,
        "create_time": time(t.create_time),
        "update_time": time(t.update_time),
        "seal_time": _at(time, t.seal_time),
        **_parent(t.parent),
    }


def _artifact(ns: str, a: Artifact, time: Time) -> Values:
    return {
        "namespace": ns,
        "id": a.id,
        "owner": a.owner,
        "kind": a.kind,
        "name": a.name,
        "content_type": a.content_type,
        "sha256": a.sha256,
        "size": a.size,
        "stored_size": a.stored_size,
        "compression": a.compression.value,
        "labels": dumps(dict(a.labels)),
        "create_time": time(a.create_time),
        **_parent(a.parent),
        "archive_time": None,  # an import writes every artifact hot, like transcripts
    }


@frozen
class Shape:
    """One kind's table as an import writes it: its key columns, the key of an
    archived row (in that order), its values by column, and the columns that hold
    JSON text (jsonb on PostgreSQL)."""

    table: str
    keys: tuple[str, ...]
    key: Callable[[Any], Any]
    values: Callable[[str, Any, Time], Values]
    json_columns: tuple[str, ...] = ()


SHAPES: dict[Kind, Shape] = {
    Kind.QUEUES: Shape("queue_settings", ("queue",), lambda q: q.queue, _queue),
    Kind.RECORDS: Shape(
        "records", ("collection", "id"), lambda r: (r.collection, r.id), _record, ("data",)
    ),
    Kind.JOBS: Shape("jobs", ("id",), lambda j: j.id, _job, ("payload", "result")),
    Kind.TRANSCRIPTS: Shape("transcripts", ("id",), lambda t: t.id, _transcript, ("labels",)),
    Kind.ARTIFACTS: Shape("artifacts", ("id",), lambda a: a.id, _artifact, ("labels",)),
}


def entry_params(ns: str, e: ArchivedEntry, time: Time) -> tuple[Any, ...]:
    """An archived entry's values in the order both engines' entry inserts take:
    namespace, transcript_id, seq, start_offset, size, role, content, create_time,
    wire_head, wire_tail (the data is in the tail only, migration 0023)."""
    return (
        ns,
        e.transcript_id,
        e.seq,
        e.start_offset,
        e.size,
        e.role,
        e.content,
        time(e.create_time),
        *entry_wire.stored_parts(
            e.seq, e.role, e.content, e.data, entry_wire.time_field(e.create_time)
        ),
    )


def audit_params(
    first: Any, a: LoggedAudit, time: Time, listed: Callable[[list[Any]], Any]
) -> tuple[Any, ...]:
    """An archived audit entry's values after `first` (the namespace, or the
    staging order on PostgreSQL): time, actor, action, entity, entity_id, version,
    changed_fields, request_id, entity_ids, entity_versions (each list as `listed`
    stores it, NULL unless the entry is a purge batch's row)."""
    batch = bool(a.entity_ids)
    return (
        first,
        time(a.time),
        a.actor,
        a.action,
        a.entity,
        a.entity_id,
        a.version,
        dumps(list(a.changed_fields)),
        a.request_id,
        listed(list(a.entity_ids)) if batch else None,
        listed(list(a.entity_versions)) if batch else None,
    )
