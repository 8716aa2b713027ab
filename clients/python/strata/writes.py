"""Builders of the writes a Commit applies all-or-nothing.

    from strata import writes

    client.commit(
        [
            writes.create("executions", {"state": "queued"}, record_id="ex-1"),
            writes.update("counters", "executions", {"n": 8}, expected_version=7),
            writes.delete("drafts", "ex-1", allow_missing=True),
            writes.append("ex-1-log", [{"role": "system", "content": "queued"}]),
        ],
        request_id=strata.new_request_id(),
    )

Each builder returns a `strata.v1.transaction_pb2.Write` and takes the arguments
of `create_record`, `update_record`, `delete_record` and `append_entries` but for
`namespace` (the commit's) and `request_id` (the commit has one for all its writes).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Unpack

from strata._record_fields import (
    CreateOptions,
    DeleteOptions,
    UpdateOptions,
    create_fields,
    delete_fields,
    update_fields,
)
from strata._transcript_requests import EntryLike, append_write
from strata.v1 import transaction_pb2

__all__ = ["append", "create", "delete", "new_request_id", "update"]


def create(
    collection: str, data: Mapping[str, Any], **options: Unpack[CreateOptions]
) -> transaction_pb2.Write:
    """A write that creates a record; `record_id` empty lets the server choose."""
    fields = create_fields(collection, data, **options)
    return transaction_pb2.Write(create=transaction_pb2.CreateRecordWrite(**fields))


def update(
    collection: str, id: str, data: Mapping[str, Any], **options: Unpack[UpdateOptions]
) -> transaction_pb2.Write:
    """A write that replaces a record's data, or merges the `update_mask` paths."""
    fields = update_fields(collection, id, data, **options)
    return transaction_pb2.Write(update=transaction_pb2.UpdateRecordWrite(**fields))


def delete(collection: str, id: str, **options: Unpack[DeleteOptions]) -> transaction_pb2.Write:
    """A write that deletes a record."""
    fields = delete_fields(collection, id, **options)
    return transaction_pb2.Write(delete=transaction_pb2.DeleteRecordWrite(**fields))


def append(
    transcript_id: str, entries: Iterable[EntryLike], *, expected_next_seq: int | None = None
) -> transaction_pb2.Write:
    """A write that appends entries to a transcript (strings, or mappings with
    `content`, `role` and `data`): readers see them only if the whole commit
    succeeds."""
    return append_write(transcript_id, entries, expected_next_seq=expected_next_seq)


def new_request_id() -> str:
    """A fresh idempotency key for `create_record` or `commit`.

    Make one per logical write and reuse it when retrying that write yourself:
    the server then applies the write once and returns the first result again.
    """
    return str(uuid.uuid4())
