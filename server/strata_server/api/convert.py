"""Protobuf <-> domain conversions for the record-shaped messages."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from strata.v1 import records_pb2
from strata_server.core import models


def to_datetime(value: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    """A Timestamp field as an aware UTC datetime (microseconds), or None when unset."""
    if not present:
        return None
    return datetime.fromtimestamp(value.seconds, UTC).replace(microsecond=value.nanos // 1000)


def data_from_struct(value: struct_pb2.Struct) -> models.JSON:
    """A Struct as plain Python JSON values."""
    return MessageToDict(value)


def record_to_proto(record: models.Record) -> records_pb2.Record:
    """A domain record as the wire message."""
    message = records_pb2.Record(
        namespace=record.namespace,
        collection=record.collection,
        id=record.id,
        version=record.version,
    )
    message.data.update(record.data)
    message.create_time.FromDatetime(record.create_time)
    message.update_time.FromDatetime(record.update_time)
    if record.expire_time is not None:
        message.expire_time.FromDatetime(record.expire_time)
    return message


def fingerprint(request: Message) -> str:
    """A stable digest of a request without its request_id, so a retried request is
    recognised and a reused id with different content is not."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("request_id")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


def actor(metadata: Any) -> models.Actor:
    """The caller's declared identity (`x-strata-actor` metadata) for the audit log."""
    for key, value in metadata or ():
        if key == "x-strata-actor" and value:
            return models.Actor(str(value)[:256])
    return models.Actor()
