"""Proto messages -> domain writes: records, jobs and transcript appends.

Each write arrives in two shapes, on its own RPC (CreateRecordRequest) and inside a
Commit (CreateRecordWrite), with the same fields. Both are parsed here by one
function, so a write is validated the same way whichever way it comes; inside a
Commit the `prefix` names where it sits (`writes[2].create.`) in the field errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from google.protobuf import duration_pb2, field_mask_pb2, struct_pb2, timestamp_pb2

from strata.v1 import queue_pb2, transaction_pb2, transcripts_pb2
from strata_server.api.convert import data_from_struct, to_datetime
from strata_server.core import errors, models, validation
from strata_server.core import job_transitions as queue
from strata_server.core import transcript_rules as transcripts
from strata_server.core.jsontypes import serialize
from strata_server.core.update import parse_mask

MAX_DELAY = timedelta(days=3650)
"""Longest delay before a job runs (enqueue delay, fail retry_delay)."""


def duration(value: duration_pb2.Duration, field: str, limit: timedelta = MAX_DELAY) -> timedelta:
    """A Duration field as a timedelta of at most `limit`."""
    try:
        result = value.ToTimedelta()
    except (OverflowError, ValueError):
        result = None
    if result is None or result > limit:
        raise errors.InvalidArgument.field(field, f"must be at most {limit.days} days")
    return result


class _DataShape(Protocol):
    """What a create and an update carry (their requests and their Commit writes)."""

    @property
    def collection(self) -> str: ...
    @property
    def data(self) -> struct_pb2.Struct: ...
    @property
    def expire_time(self) -> timestamp_pb2.Timestamp: ...
    def HasField(self, name: Any) -> bool: ...


class _CreateShape(_DataShape, Protocol):
    """CreateRecordRequest and CreateRecordWrite share these fields."""

    @property
    def record_id(self) -> str: ...
    @property
    def owner(self) -> str: ...


class _DeleteShape(Protocol):
    """DeleteRecordRequest and DeleteRecordWrite share these fields."""

    @property
    def collection(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def expected_version(self) -> int: ...
    @property
    def allow_missing(self) -> bool: ...


class _CascadeShape(_DeleteShape, Protocol):
    """A delete's own fields: what becomes of the record's children."""

    @property
    def cascade(self) -> bool: ...


class _UpdateShape(_DataShape, _DeleteShape, Protocol):
    """UpdateRecordRequest and UpdateRecordWrite share these fields: a delete's, the
    data and its expiry, and which paths to replace."""

    @property
    def update_mask(self) -> field_mask_pb2.FieldMask: ...
    @property
    def owner(self) -> str: ...


def _expire_time(message: _CreateShape | _UpdateShape, prefix: str) -> datetime | None:
    value = to_datetime(
        message.expire_time, message.HasField("expire_time"), f"{prefix}expire_time"
    )
    if value is not None and value <= datetime.now(UTC):
        raise errors.InvalidArgument.field(f"{prefix}expire_time", "must be in the future")
    return value


def _expected_version(value: int, prefix: str) -> int | None:
    if value < 0:
        raise errors.InvalidArgument.field(f"{prefix}expected_version", "must not be negative")
    return value or None


def _data(value: struct_pb2.Struct, max_bytes: int, field: str) -> models.JSON:
    # Cheap early refusal of grossly oversized data before converting it; the exact
    # limit is enforced on the stored JSON by core.writes.
    size = value.ByteSize()
    if size > 4 * max_bytes:
        raise errors.TooLarge(
            f"record data is about {size} bytes, over the {max_bytes}-byte limit; "
            "store large content as an artifact",
            metadata={"size": str(size), "limit": str(max_bytes)},
        )
    return data_from_struct(value, field)


def create_write(message: _CreateShape, max_bytes: int, prefix: str = "") -> models.CreateRecord:
    """Validate a create (request or Commit write) into a domain write."""
    collection = validation.collection(message.collection, f"{prefix}collection")
    record_id = (
        validation.entity_id(message.record_id, f"{prefix}record_id")
        if message.record_id
        else validation.new_id()
    )
    data = _data(message.data, max_bytes, f"{prefix}data")
    owner = validation.owner(message.owner, f"{prefix}owner")
    return models.CreateRecord(collection, record_id, data, _expire_time(message, prefix), owner)


def update_write(message: _UpdateShape, max_bytes: int, prefix: str = "") -> models.UpdateRecord:
    """Validate an update (request or Commit write) into a domain write."""
    paths = (
        parse_mask(list(message.update_mask.paths), f"{prefix}update_mask")
        if message.update_mask.paths
        else None
    )
    return models.UpdateRecord(
        collection=validation.collection(message.collection, f"{prefix}collection"),
        id=validation.entity_id(message.id, f"{prefix}id"),
        data=_data(message.data, max_bytes, f"{prefix}data"),
        paths=paths,
        expected_version=_expected_version(message.expected_version, prefix),
        allow_missing=message.allow_missing,
        expire_time=_expire_time(message, prefix),
        owner=(
            validation.owner(message.owner, f"{prefix}owner") if message.HasField("owner") else None
        ),
    )


def delete_write(message: _CascadeShape, prefix: str = "") -> models.DeleteRecord:
    """Validate a delete (request or Commit write) into a domain write."""
    return models.DeleteRecord(
        collection=validation.collection(message.collection, f"{prefix}collection"),
        id=validation.entity_id(message.id, f"{prefix}id"),
        expected_version=_expected_version(message.expected_version, prefix),
        allow_missing=message.allow_missing,
        cascade=message.cascade,
    )


def new_job(
    request: queue_pb2.EnqueueRequest | transaction_pb2.EnqueueJobWrite,
    max_bytes: int,
    now: datetime,
    prefix: str = "",
) -> queue.NewJob:
    """Validate one enqueue (alone, inside a batch or inside a Commit)."""
    name = validation.collection(request.queue, f"{prefix}queue")
    payload = data_from_struct(request.payload, f"{prefix}payload")
    serialize(payload, max_bytes, f"{prefix}payload", "job payload")
    if request.HasField("run_time") and request.HasField("delay"):
        raise errors.InvalidArgument.field(f"{prefix}delay", "give run_time or delay, not both")
    run_time = to_datetime(request.run_time, request.HasField("run_time"), f"{prefix}run_time")
    if request.HasField("delay"):
        delay = duration(request.delay, f"{prefix}delay")
        if delay < timedelta(0):
            raise errors.InvalidArgument.field(f"{prefix}delay", "must not be negative")
        run_time = now + delay
    max_attempts = request.max_attempts or queue.DEFAULT_MAX_ATTEMPTS
    if not 1 <= max_attempts <= queue.MAX_ATTEMPTS_LIMIT:
        raise errors.InvalidArgument.field(
            f"{prefix}max_attempts", f"must be between 1 and {queue.MAX_ATTEMPTS_LIMIT}"
        )
    unique_key = request.unique_key or None
    if unique_key is not None and (
        len(unique_key) > queue.MAX_UNIQUE_KEY or not unique_key.isprintable()
    ):
        raise errors.InvalidArgument.field(
            f"{prefix}unique_key", f"must be at most {queue.MAX_UNIQUE_KEY} printable characters"
        )
    backoff = None
    if request.HasField("retry_backoff"):
        backoff = duration(request.retry_backoff, f"{prefix}retry_backoff")
        if not timedelta(0) < backoff <= queue.MAX_BACKOFF:
            raise errors.InvalidArgument.field(
                f"{prefix}retry_backoff", "must be positive and at most 1 hour"
            )
    return queue.NewJob(
        name, payload, request.priority, run_time, max_attempts, unique_key, backoff
    )


def new_entries(
    entries: Sequence[transcripts_pb2.Entry], max_entry_bytes: int, prefix: str = ""
) -> list[transcripts.NewEntry]:
    """Validate the entries of an append (alone or inside a Commit); errors carry
    `entry_index`."""
    if not 1 <= len(entries) <= transcripts.MAX_APPEND_ENTRIES:
        raise errors.InvalidArgument.field(
            f"{prefix}entries", f"must hold 1 to {transcripts.MAX_APPEND_ENTRIES} entries"
        )
    checked = []
    for index, entry in enumerate(entries):
        field = f"{prefix}entries[{index}]."
        try:
            data = data_from_struct(entry.data, f"{field}data") if entry.HasField("data") else None
            checked.append(
                transcripts.new_entry(entry.role, entry.content, data, max_entry_bytes, field)
            )
        except errors.StrataError as error:
            error.metadata.setdefault("entry_index", str(index))
            raise
    return checked


def append_write(
    request: transcripts_pb2.AppendEntriesRequest | transaction_pb2.AppendEntriesWrite,
    max_entry_bytes: int,
    prefix: str = "",
) -> transcripts.AppendEntries:
    """Validate an append (an AppendEntries call, or a Commit's append write)."""
    id = validation.entity_id(request.id, f"{prefix}id")
    if request.expected_next_seq < 0:
        raise errors.InvalidArgument.field(
            f"{prefix}expected_next_seq", "must be positive (or 0 for no check)"
        )
    return transcripts.AppendEntries(
        id,
        new_entries(request.entries, max_entry_bytes, prefix),
        request.expected_next_seq or None,
    )
