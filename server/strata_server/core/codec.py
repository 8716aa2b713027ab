"""JSON forms of domain values, for what adapters store as JSON (idempotent results,
audit details) and must read back exactly."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from strata_server.core.job_transitions import Job, job_from_json, job_to_json
from strata_server.core.jsontypes import JSON, fields_from_json, fields_to_json
from strata_server.core.models import Deleted, Record, WriteResult
from strata_server.core.transcript_rules import Appended, appended_from_json, appended_to_json


def record_to_json(record: Record) -> JSON:
    """A record as a JSON object, times as ISO 8601 strings."""
    return fields_to_json(record)


def record_from_json(value: JSON) -> Record:
    """Inverse of record_to_json; a result stored before records had owners has none."""
    return fields_from_json(Record, {"owner": "", **value})


def results_to_json(results: Sequence[WriteResult]) -> list[Any]:
    """A Commit's results as JSON, to store beside its request_id."""
    out: list[Any] = []
    for result in results:
        if isinstance(result, Record):
            out.append({"record": record_to_json(result)})
        elif isinstance(result, Job):
            out.append({"job": job_to_json(result)})
        elif isinstance(result, Appended):
            out.append({"appended": appended_to_json(result)})
        else:
            out.append(
                {
                    "deleted": {
                        "collection": result.collection,
                        "id": result.id,
                        "existed": result.existed,
                    }
                }
            )
    return out


def results_from_json(value: list[Any]) -> list[WriteResult]:
    """Inverse of results_to_json."""
    out: list[WriteResult] = []
    for item in value:
        if "record" in item:
            out.append(record_from_json(item["record"]))
        elif "job" in item:
            out.append(job_from_json(item["job"]))
        elif "appended" in item:
            out.append(appended_from_json(item["appended"]))
        else:
            deleted = item["deleted"]
            out.append(Deleted(deleted["collection"], deleted["id"], deleted["existed"]))
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def record_to_cache(record: Record) -> bytes:
    """A record as the record cache stores it: compact JSON of what its key does not
    already say (version, times as integer microseconds, data, then the owner only
    when there is one, so unowned records cost no more than before owners)."""
    expire = _micros(record.expire_time) if record.expire_time is not None else None
    fields: list[Any] = [
        record.version,
        _micros(record.create_time),
        _micros(record.update_time),
        expire,
        record.data,
    ]
    if record.owner:
        fields.append(record.owner)
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()


def record_from_cache(namespace: str, collection: str, id: str, value: bytes) -> Record:
    """Inverse of record_to_cache, for the record under (namespace, collection, id);
    an entry written before records had owners reads as unowned."""
    version, create, update, expire, data, *owner = json.loads(value)
    return Record(
        namespace,
        collection,
        id,
        data,
        version,
        _from_micros(create),
        _from_micros(update),
        _from_micros(expire) if expire is not None else None,
        owner[0] if owner else "",
    )
