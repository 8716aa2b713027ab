"""Protobuf <-> domain conversions every servicer shares: times, JSON data, records
and jobs (a Commit returns both), domain results whose fields the wire names alike,
request fingerprints, the audit actor, and the parts of a request every call
names alike (namespace with id or collection)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from strata.v1 import queue_pb2, records_pb2
from strata_server.api.struct_wire import struct_bytes
from strata_server.core import access_rules as access
from strata_server.core import errors, models, validation
from strata_server.core import job_transitions as queue
from strata_server.core.parent_refs import ParentRef, parent_ref

# The range google.protobuf.Timestamp allows: 0001-01-01 to 9999-12-31, UTC.
_MIN_SECONDS = -62135596800
_MAX_SECONDS = 253402300799


def to_datetime(value: timestamp_pb2.Timestamp, present: bool, field: str) -> datetime | None:
    """A Timestamp field as an aware UTC datetime (microseconds), or None when unset."""
    if not present:
        return None
    if not _MIN_SECONDS <= value.seconds <= _MAX_SECONDS or not 0 <= value.nanos < 10**9:
        raise errors.InvalidArgument.field(field, "is outside 0001-01-01..9999-12-31 UTC")
    return datetime.fromtimestamp(value.seconds, UTC).replace(microsecond=value.nanos // 1000)


_MAX_EXACT = 2**53


class _BadValue(Exception):
    """A Value that cannot be stored; `path` collects where it sits, innermost first,
    as the error unwinds (so the hot, valid path builds no path strings)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description
        self.path: list[str] = []


def _key_step(key: str) -> str:
    return f".{key}" if key.isidentifier() else f"[{json.dumps(key, ensure_ascii=False)}]"


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise _BadValue("numbers must be finite (no NaN or Infinity)")
        # Integral doubles come back as ints, as JSON parsers give them.
        return int(number) if number.is_integer() and abs(number) <= _MAX_EXACT else number
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _struct(value.struct_value)
    if kind == "list_value":
        return _list(value.list_value)
    if kind == "null_value":
        return None
    # No kind at all: a client that set a field its library does not know (a
    # `string_value` key where `stringValue` was expected) sends this. Stored as
    # null it would lose the content silently.
    raise _BadValue(
        "is a google.protobuf.Value with no kind set; set one of null_value, number_value, "
        "string_value, bool_value, struct_value or list_value"
    )


def _struct(value: struct_pb2.Struct) -> dict[str, Any]:
    out = {}
    for key, item in value.fields.items():
        try:
            out[key] = _value(item)
        except _BadValue as bad:
            bad.path.append(_key_step(key))
            raise
    return out


def _list(value: struct_pb2.ListValue) -> list[Any]:
    out = []
    for index, item in enumerate(value.values):
        try:
            out.append(_value(item))
        except _BadValue as bad:
            bad.path.append(f"[{index}]")
            raise
    return out


def data_from_struct(value: struct_pb2.Struct, field: str = "data") -> models.JSON:
    """A Struct as plain Python JSON values; InvalidArgument naming the path of the
    first Value that cannot be stored (`data.tags[2]`): a non-finite number, or a
    Value with no kind set.

    Walks the message directly: json_format.MessageToDict goes through a generic
    printer and is several times slower on this, the hottest conversion of writes.
    """
    try:
        return _struct(value)
    except _BadValue as bad:
        path = field + "".join(reversed(bad.path))
        raise errors.InvalidArgument.field(path, bad.description) from None


def record_to_proto(record: models.Record) -> records_pb2.Record:
    """A domain record as the wire message."""
    message = records_pb2.Record()
    fill_record(message, record)
    return message


def fill_record(message: records_pb2.Record, record: models.Record) -> None:
    """Write a domain record into an empty Record message, such as one a response's
    repeated field just added (`response.records.add()`): a response of many records
    built this way holds each once, where passing finished messages to the response's
    constructor copies every one of them."""
    message.namespace = record.namespace
    message.collection = record.collection
    message.id = record.id
    message.version = record.version
    message.owner = record.owner
    # Parsed from bytes encoded here rather than Struct.update: see api/struct_wire.py.
    message.data.MergeFromString(struct_bytes(record.data))
    set_timestamp(message.create_time, record.create_time)
    set_timestamp(message.update_time, record.update_time)
    if record.expire_time is not None:
        set_timestamp(message.expire_time, record.expire_time)


_STATES = {
    queue.Visible.AVAILABLE: queue_pb2.JOB_STATE_AVAILABLE,
    queue.Visible.SCHEDULED: queue_pb2.JOB_STATE_SCHEDULED,
    queue.Visible.LEASED: queue_pb2.JOB_STATE_LEASED,
    queue.Visible.COMPLETED: queue_pb2.JOB_STATE_COMPLETED,
    queue.Visible.DEAD: queue_pb2.JOB_STATE_DEAD,
    queue.Visible.CANCELLED: queue_pb2.JOB_STATE_CANCELLED,
}
VISIBLE = {value: key for key, value in _STATES.items()}
"""The visible job state of each wire enum value (ListJobs' filter)."""


def job_state(state: queue.Visible) -> queue_pb2.JobState.ValueType:
    """The wire enum of a visible job state."""
    return _STATES[state]


def job_to_proto(job: queue.Job, now: datetime) -> queue_pb2.Job:
    """A domain job as the wire message, with its state as seen at `now`."""
    message = queue_pb2.Job(
        namespace=job.namespace,
        queue=job.queue,
        id=job.id,
        state=_STATES[job.visible_state(now)],
        priority=job.priority,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        lease_token=job.lease_token or "",
        last_error=job.last_error or "",
        unique_key=job.unique_key or "",
    )
    message.payload.update(job.payload)
    if job.result is not None:
        message.result.update(job.result)
    set_timestamp(message.run_time, job.run_time)
    set_timestamp(message.create_time, job.create_time)
    set_timestamp(message.update_time, job.update_time)
    if job.lease_expire_time is not None:
        set_timestamp(message.lease_expire_time, job.lease_expire_time)
    if job.finish_time is not None:
        set_timestamp(message.finish_time, job.finish_time)
    if job.retry_backoff is not None:
        message.retry_backoff.FromTimedelta(job.retry_backoff)
    return message


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def set_timestamp(target: timestamp_pb2.Timestamp, value: datetime) -> None:
    """Timestamp.FromDatetime without its generic conversions: it runs three times
    for every record a response carries, so its cost shows in every read."""
    delta = value - _EPOCH
    target.seconds = delta.days * 86400 + delta.seconds
    target.nanos = delta.microseconds * 1000


M = TypeVar("M", bound=Message)


def message_from(message_type: type[M], value: object, **given: Any) -> M:
    """A `message_type` whose every field is taken from `given`, else from the
    attribute of the same name on `value` (a dataclass field or a property) when it
    has one; None leaves a field unset. Times go in as Timestamps, timedeltas as
    Durations, mappings into map (or Struct) fields, lists and tuples into repeated
    ones.

    Most domain results name their fields as the wire does: this renders them
    without restating each name, and `given` holds the rest (enums, renamed or
    nested fields). Not for the hot records and jobs, which keep hand-written
    converters."""
    message = message_type()
    for field in message.DESCRIPTOR.fields:
        name = field.name
        item = given[name] if name in given else getattr(value, name, None)
        if item is None:
            continue
        if isinstance(item, datetime):
            set_timestamp(getattr(message, name), item)
        elif isinstance(item, timedelta):
            getattr(message, name).FromTimedelta(item)
        elif isinstance(item, Message):
            getattr(message, name).CopyFrom(item)
        elif isinstance(item, Mapping):
            getattr(message, name).update(item)
        elif isinstance(item, list | tuple):
            getattr(message, name).extend(item)
        else:
            setattr(message, name, item)
    return message


def parent_to_proto(parent: ParentRef | None) -> records_pb2.ParentRecord | None:
    """A child's parent record on the wire; None leaves the field unset."""
    if parent is None:
        return None
    return records_pb2.ParentRecord(collection=parent.collection, id=parent.id)


def parent_from_proto(parent: records_pb2.ParentRecord, field: str = "parent") -> ParentRef | None:
    """A request's `parent`, checked; None when unset or empty (BadRequest names
    `field` and its half at fault)."""
    return parent_ref(parent.collection, parent.id, field)


def parent_key(parent: ParentRef | None) -> tuple[str, ...]:
    """What a List's page-token digest adds for its parent filter: nothing without
    one, so tokens of lists without a parent are as before."""
    return () if parent is None else ("parent", parent.collection, parent.id)


def fingerprint(request: Message) -> str:
    """A stable digest of a request without its request_id, so a retried request is
    recognised and a reused id with different content is not."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("request_id")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


def idempotency(request: Any) -> models.Idempotency | None:
    """How a create, enqueue, append or Commit is recognised when retried: by its
    `request_id` and what it asks; None when it names no request id."""
    request_id = validation.request_id(request.request_id)
    return models.Idempotency(request_id, fingerprint(request)) if request_id else None


def actor(context: grpc.aio.ServicerContext[Any, Any]) -> models.Actor:
    """Who the audit log names for this call: the authenticated principal (a
    token's name), with the caller's `x-strata-actor` metadata only as a claimed
    sub-actor; under `--auth none`, the claim alone."""
    claimed = ""
    for key, value in context.invocation_metadata() or ():
        if key == "x-strata-actor" and value:
            claimed = str(value)[:256]
            break
    principal = access.current()
    if not principal.name:
        return models.Actor(claimed) if claimed else models.Actor()
    return models.Actor(principal.actor_claiming(claimed))


def collection_of(request: Any) -> tuple[str, str]:
    """The namespace and the collection a record call (or an index's) names, each
    checked, namespace first."""
    return validation.namespace(request.namespace), validation.collection(request.collection)


def target(request: Any) -> tuple[str, str]:
    """The namespace and the id of what a call names by `id` (every call but a
    create does), each checked, namespace first, so that every service refuses a bad
    one in the same words."""
    return validation.namespace(request.namespace), validation.entity_id(request.id)
