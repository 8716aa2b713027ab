"""The record fields that a call and a Commit write share, checked and converted.

`create_record` / `writes.create`, `update_record` / `writes.update` and
`delete_record` / `writes.delete` take the same optional arguments (the
`*Options` below) and send the same fields (the `*Fields`), so that a write in a
Commit behaves as the call does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from strata._convert import field_mask, struct_from_dict, timestamp_from_datetime


class CreateOptions(TypedDict, total=False):
    """Optional arguments of a create.

    record_id: the new record's id; empty (the default) lets the server choose.
    expire_time: timezone-aware time from which the record is invisible.
    owner: who the record belongs to (at most 256 printable characters); empty
      means none.
    """

    record_id: str
    expire_time: datetime | None
    owner: str


class UpdateOptions(TypedDict, total=False):
    """Optional arguments of an update.

    update_mask: paths to change (`data`, `data.<key>[.<key>...]`,
      `expire_time`); a path absent from `data` is removed. None replaces the
      whole document and expire_time.
    expected_version: write only if the record is at this version, else raise
      VersionConflict.
    allow_missing: create the record when it does not exist.
    expire_time: new expiry, applied on a full replace or when in the mask.
    owner: the new owner ("" removes it); None (the default) keeps the record's.
    """

    update_mask: Sequence[str] | None
    expected_version: int | None
    allow_missing: bool
    expire_time: datetime | None
    owner: str | None


class DeleteOptions(TypedDict, total=False):
    """Optional arguments of a delete.

    expected_version: delete only if the record is at this version, else raise
      VersionConflict.
    allow_missing: succeed when the record does not exist.
    cascade: also delete the transcripts and artifacts whose parent is the
      record; without it a record with any raises FailedPrecondition (reason
      HAS_CHILDREN).
    """

    expected_version: int | None
    allow_missing: bool
    cascade: bool


class CreateFields(TypedDict):
    """The fields CreateRecordRequest shares with CreateRecordWrite."""

    collection: str
    record_id: str
    data: Struct
    expire_time: Timestamp | None
    owner: str


class UpdateFields(TypedDict):
    """The fields UpdateRecordRequest shares with UpdateRecordWrite."""

    collection: str
    id: str
    data: Struct
    update_mask: FieldMask | None
    expected_version: int
    allow_missing: bool
    expire_time: Timestamp | None
    owner: str | None


class DeleteFields(TypedDict):
    """The fields DeleteRecordRequest shares with DeleteRecordWrite."""

    collection: str
    id: str
    expected_version: int
    allow_missing: bool
    cascade: bool


def create_fields(
    collection: str,
    data: Mapping[str, Any],
    *,
    record_id: str = "",
    expire_time: datetime | None = None,
    owner: str = "",
) -> CreateFields:
    """The fields of a create, converted; the defaults of CreateOptions."""
    return {
        "collection": collection,
        "record_id": record_id,
        "data": struct_from_dict(data),
        "expire_time": timestamp_from_datetime(expire_time, "expire_time"),
        "owner": owner,
    }


def update_fields(
    collection: str,
    id: str,
    data: Mapping[str, Any],
    *,
    update_mask: Sequence[str] | None = None,
    expected_version: int | None = None,
    allow_missing: bool = False,
    expire_time: datetime | None = None,
    owner: str | None = None,
) -> UpdateFields:
    """The fields of an update, converted; the defaults of UpdateOptions."""
    return {
        "collection": collection,
        "id": id,
        "data": struct_from_dict(data),
        "update_mask": field_mask(update_mask),
        "expected_version": expected_version or 0,
        "allow_missing": allow_missing,
        "expire_time": timestamp_from_datetime(expire_time, "expire_time"),
        "owner": owner,
    }


def delete_fields(
    collection: str,
    id: str,
    *,
    expected_version: int | None = None,
    allow_missing: bool = False,
    cascade: bool = False,
) -> DeleteFields:
    """The fields of a delete, converted; the defaults of DeleteOptions."""
    return {
        "collection": collection,
        "id": id,
        "expected_version": expected_version or 0,
        "allow_missing": allow_missing,
        "cascade": cascade,
    }
