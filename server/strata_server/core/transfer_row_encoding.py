"""Each kind's transfer row as the JSON object an export writes, one a line.

Objects never carry the namespace (an archive can be imported under another one);
times are `transfer_format.format_time` strings; every column a row has in the
database is kept, so an import restores versions, job states and attempts, seqs
and byte offsets exactly (`transfer_row_decoding` reads them back).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from strata_server.core.artifact_rules import Artifact
from strata_server.core.job_transitions import Job, backoff_us
from strata_server.core.models import LoggedAudit, Record
from strata_server.core.transcript_rules import Transcript
from strata_server.core.transfer_format import Kind, format_time
from strata_server.core.transfer_rows import ArchivedEntry, QueueSetting


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def encode(kind: Kind, row: Any) -> dict[str, Any]:
    """The JSON object of one row."""
    return _ENCODERS[kind](row)


def _queue(row: QueueSetting) -> dict[str, Any]:
    return {"queue": row.queue, "paused": row.paused}


def _record(row: Record) -> dict[str, Any]:
    return {
        "collection": row.collection,
        "id": row.id,
        "data": row.data,
        "version": row.version,
        "create_time": format_time(row.create_time),
        "update_time": format_time(row.update_time),
        "expire_time": _time(row.expire_time),
    }


def _job(row: Job) -> dict[str, Any]:
    return {
        "id": row.id,
        "queue": row.queue,
        "state": row.state.value,
        "payload": row.payload,
        "priority": row.priority,
        "run_time": format_time(row.run_time),
        "attempt": row.attempt,
        "max_attempts": row.max_attempts,
        "create_time": format_time(row.create_time),
        "update_time": format_time(row.update_time),
        "retry_backoff_us": backoff_us(row.retry_backoff),
        "unique_key": row.unique_key,
        "lease_token": row.lease_token,
        "lease_expire_time": _time(row.lease_expire_time),
        "last_error": row.last_error,
        "result": row.result,
        "finish_time": _time(row.finish_time),
    }


def _transcript(row: Transcript) -> dict[str, Any]:
    return {
        "id": row.id,
        "owner": row.owner,
        "title": row.title,
        "labels": dict(row.labels),
        "next_seq": row.next_seq,
        "size_bytes": row.size_bytes,
        "create_time": format_time(row.create_time),
        "update_time": format_time(row.update_time),
        "seal_time": _time(row.seal_time),
    }


def _entry(row: ArchivedEntry) -> dict[str, Any]:
    return {
        "transcript_id": row.transcript_id,
        "seq": row.seq,
        "size": row.size,
        "role": row.role,
        "content": row.content,
        "data": row.data,
        "create_time": format_time(row.create_time),
    }


def _artifact(row: Artifact) -> dict[str, Any]:
    return {
        "id": row.id,
        "owner": row.owner,
        "kind": row.kind,
        "name": row.name,
        "content_type": row.content_type,
        "sha256": row.sha256,
        "size": row.size,
        "stored_size": row.stored_size,
        "compression": row.compression.value,
        "labels": dict(row.labels),
        "create_time": format_time(row.create_time),
    }


def _audit(row: LoggedAudit) -> dict[str, Any]:
    # No seq: it numbers one server's log. Lines keep the log's order instead.
    return {
        "time": format_time(row.time),
        "actor": row.actor,
        "action": row.action,
        "entity": row.entity,
        "entity_id": row.entity_id,
        "version": row.version,
        "changed_fields": list(row.changed_fields),
        "request_id": row.request_id,
    }


_ENCODERS: dict[Kind, Callable[[Any], dict[str, Any]]] = {
    Kind.QUEUES: _queue,
    Kind.RECORDS: _record,
    Kind.JOBS: _job,
    Kind.TRANSCRIPTS: _transcript,
    Kind.ENTRIES: _entry,
    Kind.ARTIFACTS: _artifact,
    Kind.AUDIT: _audit,
}
