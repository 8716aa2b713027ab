"""Each kind's transfer row as the JSON object an export writes, one a line.

Objects never carry the namespace (an archive can be imported under another one);
times are `transfer_format.format_time` strings; every column a row has in the
database is kept, so an import restores versions, job states and attempts, seqs
and byte offsets exactly (`transfer_row_decoding` reads them back).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from strata_server.core.job_transitions import Job, backoff_us
from strata_server.core.models import LoggedAudit
from strata_server.core.transcript_rules import Transcript
from strata_server.core.transfer_format import Kind, format_time
from strata_server.core.transfer_rows import ArchivedEntry


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def encode(kind: Kind, row: Any) -> dict[str, Any]:
    """The JSON object of one row."""
    return _ENCODERS[kind](row)


def _columns(row: Any, leave_out: str = "namespace") -> dict[str, Any]:
    """Every field of `row` but `leave_out`, in field order: times as `format_time`
    strings, enums as their values, other mappings as objects, tuples as lists. The
    kinds whose JSON names their fields as the row does are encoded by this one walk,
    so a column added to one of them cannot be left out of the export."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(row):
        name = field.name
        if name == leave_out:
            continue
        value = getattr(row, name)
        if isinstance(value, datetime):
            value = format_time(value)
        elif isinstance(value, Enum):
            value = value.value
        elif isinstance(value, Mapping) and not isinstance(value, dict):
            value = dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)  # a transcript's or artifact's parent
        out[name] = value
    return out


def _job(row: Job) -> dict[str, Any]:
    # By hand: its backoff is written in microseconds, and the id comes first.
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
    # Not its tier: an import writes every entry it reads as a hot row.
    out = _columns(row)
    del out["archive_time"]
    return out


def _entry(row: ArchivedEntry) -> dict[str, Any]:
    # By hand: an export writes millions of entries, and their offsets are left out
    # (an import works them out again from the sizes).
    return {
        "transcript_id": row.transcript_id,
        "seq": row.seq,
        "size": row.size,
        "role": row.role,
        "content": row.content,
        "data": row.data,
        "create_time": format_time(row.create_time),
    }


def _audit(row: LoggedAudit) -> dict[str, Any]:
    # No seq: it numbers one server's log. Lines keep the log's order instead.
    # The lists only on a purge batch's row, so every other line reads as before.
    out = _columns(row, leave_out="seq")
    if not row.entity_ids:
        del out["entity_ids"], out["entity_versions"]
    return out


_ENCODERS: dict[Kind, Callable[[Any], dict[str, Any]]] = {
    Kind.QUEUES: _columns,
    Kind.RECORDS: _columns,
    Kind.JOBS: _job,
    Kind.TRANSCRIPTS: _transcript,
    Kind.ENTRIES: _entry,
    Kind.ARTIFACTS: _columns,
    Kind.AUDIT: _audit,
}
