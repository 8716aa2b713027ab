"""Records as the client returns them: plain Python values instead of messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strata._convert import datetime_from_timestamp, dict_from_struct
from strata.v1 import records_pb2, transaction_pb2

__all__ = ["Deleted", "Record"]


@dataclass(frozen=True, slots=True)
class Record:
    """A JSON document stored in a collection."""

    namespace: str
    """The tenant or workspace the record belongs to."""
    collection: str
    """The collection the record belongs to."""
    id: str
    """The record's id, unique within namespace and collection."""
    data: dict[str, Any] = field(hash=False)
    """The document itself."""
    version: int
    """Starts at 1 and grows by 1 on every write."""
    create_time: datetime
    """When the record was created (aware, UTC)."""
    update_time: datetime
    """When the record was last written (aware, UTC)."""
    expire_time: datetime | None = None
    """When the record stops being visible (aware, UTC); None means never."""
    owner: str = ""
    """Who the record belongs to; empty means none."""

    @classmethod
    def from_proto(cls, message: records_pb2.Record) -> Record:
        """The record a `strata.v1.Record` message describes."""
        return cls(
            namespace=message.namespace,
            collection=message.collection,
            id=message.id,
            data=dict_from_struct(message.data),
            version=message.version,
            create_time=datetime_from_timestamp(message.create_time),
            update_time=datetime_from_timestamp(message.update_time),
            expire_time=(
                datetime_from_timestamp(message.expire_time)
                if message.HasField("expire_time")
                else None
            ),
            owner=message.owner,
        )


@dataclass(frozen=True, slots=True)
class Deleted:
    """The outcome of a delete write in a Commit."""

    collection: str
    """The record's collection."""
    id: str
    """The record's id."""
    existed: bool
    """Whether a record existed and was removed (False only with allow_missing)."""

    @classmethod
    def from_proto(cls, message: transaction_pb2.DeletedRecord) -> Deleted:
        """The outcome a `strata.v1.DeletedRecord` message describes."""
        return cls(collection=message.collection, id=message.id, existed=message.existed)
