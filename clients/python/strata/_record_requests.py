"""The record calls (RecordService, TransactionService), described without doing
any I/O.

Each call builder below is one method of `Client` and `AsyncClient`, with its
signature and docstring: it checks and converts the caller's arguments and
returns an `Rpc` (or, for List-style calls, a `PagedRpc`) naming the stub
method, the request, how to read the response and whether a retry is safe. The
two clients only send what these describe, so they cannot disagree about the
API. The option types and field builders are in `strata._record_fields`, shared
with `strata.writes`, whose Commit writes take the same arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias, Unpack

from google.protobuf.empty_pb2 import Empty

from strata._record_fields import (
    CreateOptions,
    DeleteOptions,
    UpdateOptions,
    create_fields,
    delete_fields,
    update_fields,
)
from strata._rpc import PagedRpc, Rpc, paged_call
from strata.jobs import Job
from strata.records import Deleted, Record
from strata.transcripts import Appended
from strata.v1 import records_pb2, transaction_pb2

# The calls. Each docstring below is the documentation of the client method.


def create_record(
    collection: str,
    data: Mapping[str, Any],
    *,
    request_id: str | None = None,
    namespace: str | None = None,
    **options: Unpack[CreateOptions],
) -> Rpc[records_pb2.Record, Record]:
    """Create a record holding `data` (a JSON object) and return it at version 1.

    `record_id` empty lets the server choose the id. `expire_time` (timezone-aware)
    hides the record from then on. With a `request_id` (see `strata.new_request_id`)
    the create is idempotent: a retry returns the first result and writes nothing,
    so the client retries it after UNAVAILABLE; without one it is never retried.
    Raises AlreadyExists, InvalidArgument, ResourceExhausted (data too large).
    """
    fields = create_fields(collection, data, **options)
    return Rpc(
        "records",
        "CreateRecord",
        lambda ns: records_pb2.CreateRecordRequest(
            namespace=ns, request_id=request_id or "", **fields
        ),
        Record.from_proto,
        idempotent=bool(request_id),
        namespace=namespace,
    )


def get_record(
    collection: str, id: str, *, namespace: str | None = None
) -> Rpc[records_pb2.Record, Record]:
    """Return one record. Raises NotFound when it does not exist or has expired."""
    return Rpc(
        "records",
        "GetRecord",
        lambda ns: records_pb2.GetRecordRequest(namespace=ns, collection=collection, id=id),
        Record.from_proto,
        idempotent=True,
        namespace=namespace,
    )


def batch_get_records(
    collection: str, ids: Iterable[str], *, namespace: str | None = None
) -> Rpc[records_pb2.BatchGetRecordsResponse, tuple[list[Record], list[str]]]:
    """Return `(records, missing_ids)`: the records that exist among up to 1000
    ids, in the order asked, and the ids that do not exist or have expired."""
    id_list = _strings(ids, "ids")
    return Rpc(
        "records",
        "BatchGetRecords",
        lambda ns: records_pb2.BatchGetRecordsRequest(
            namespace=ns, collection=collection, ids=id_list
        ),
        lambda response: (
            [Record.from_proto(record) for record in response.records],
            list(response.missing_ids),
        ),
        idempotent=True,
        namespace=namespace,
    )


def update_record(
    collection: str,
    id: str,
    data: Mapping[str, Any],
    *,
    namespace: str | None = None,
    **options: Unpack[UpdateOptions],
) -> Rpc[records_pb2.Record, Record]:
    """Replace a record's data, or with `update_mask` change only the paths named
    (`data`, `data.<key>[.<key>...]`, `expire_time`; a path absent from `data` is
    removed), and return the record as written.

    `expected_version` makes the write conditional: a stale one raises
    VersionConflict, whose `current_version` says where the record is.
    `allow_missing` creates the record when it does not exist. `expire_time` sets
    a new expiry (on a full replace, or when `expire_time` is in the mask).
    Raises NotFound, InvalidArgument, ResourceExhausted. Not retried after
    UNAVAILABLE, since it may have been applied.
    """
    fields = update_fields(collection, id, data, **options)
    return Rpc(
        "records",
        "UpdateRecord",
        lambda ns: records_pb2.UpdateRecordRequest(namespace=ns, **fields),
        Record.from_proto,
        idempotent=False,
        namespace=namespace,
    )


def delete_record(
    collection: str,
    id: str,
    *,
    namespace: str | None = None,
    **options: Unpack[DeleteOptions],
) -> Rpc[Empty, None]:
    """Delete a record. Raises NotFound when it does not exist (unless
    `allow_missing`), VersionConflict when `expected_version` is stale."""
    fields = delete_fields(collection, id, **options)
    return Rpc(
        "records",
        "DeleteRecord",
        lambda ns: records_pb2.DeleteRecordRequest(namespace=ns, **fields),
        lambda _: None,
        idempotent=False,
        namespace=namespace,
    )


def list_records(
    collection: str,
    *,
    filter: str = "",
    order_by: str = "",
    page_size: int = 0,
    namespace: str | None = None,
) -> PagedRpc[Record]:
    """Iterate over the records of a collection that match an AIP-160 `filter`
    (e.g. `data.status = "open" AND data.size > 3`), in `order_by` order (e.g.
    `data.rank desc`; the id breaks ties), fetching `page_size` records per call
    (0: the server's default) until the last page. Pages are fetched as the
    iteration reaches them. Raises InvalidArgument for a bad filter or order_by."""

    query = records_pb2.ListRecordsRequest(
        collection=collection, filter=filter, order_by=order_by, page_size=page_size
    )
    return paged_call("ListRecords", query, _listed_records, namespace)


def count_records(
    collection: str, filter: str = "", *, namespace: str | None = None
) -> Rpc[records_pb2.CountRecordsResponse, int]:
    """Count the live records of a collection that match an AIP-160 `filter`
    (empty: all). Raises InvalidArgument for a bad filter."""
    return Rpc(
        "records",
        "CountRecords",
        lambda ns: records_pb2.CountRecordsRequest(
            namespace=ns, collection=collection, filter=filter
        ),
        lambda response: response.count,
        idempotent=True,
        namespace=namespace,
    )


def search_records(
    collection: str, query: str, page_size: int = 0, *, namespace: str | None = None
) -> PagedRpc[tuple[Record, float]]:
    """Iterate over `(record, score)` pairs whose data's string values hold every
    word of `query`, best first, fetching `page_size` hits per call (0: the
    server's default). Raises InvalidArgument for an empty query."""

    search = records_pb2.SearchRecordsRequest(
        collection=collection, query=query, page_size=page_size
    )
    return paged_call("SearchRecords", search, _search_hits, namespace)


def commit(
    writes: Iterable[transaction_pb2.Write],
    *,
    request_id: str | None = None,
    namespace: str | None = None,
) -> Rpc[transaction_pb2.CommitResponse, list[WriteResult]]:
    """Apply writes built with `strata.writes` all-or-nothing, in order, and
    return one result per write: the `Record` written by a create or update, a
    `Deleted` for a delete, the `Job` of an enqueue, an `Appended` for an append.

    The first failing write's error is raised with its position in
    `error.write_index`, and nothing is written. With a `request_id` the commit is
    idempotent and retried after UNAVAILABLE; without one it is never retried.
    """
    write_list = list(writes)
    for index, write in enumerate(write_list):
        if not isinstance(write, transaction_pb2.Write):
            raise TypeError(f"writes[{index}] is not a strata.v1.transaction_pb2.Write")
    return Rpc(
        "transactions",
        "Commit",
        lambda ns: transaction_pb2.CommitRequest(
            namespace=ns, writes=write_list, request_id=request_id or ""
        ),
        lambda response: [_write_result(result) for result in response.results],
        idempotent=bool(request_id),
        namespace=namespace,
    )


def _listed_records(response: records_pb2.ListRecordsResponse) -> list[Record]:
    return [Record.from_proto(record) for record in response.records]


def _search_hits(response: records_pb2.SearchRecordsResponse) -> list[tuple[Record, float]]:
    return [(Record.from_proto(hit.record), hit.score) for hit in response.hits]


WriteResult: TypeAlias = Record | Deleted | Job | Appended
"""What one write of a Commit produced."""


def _write_result(result: transaction_pb2.WriteResult) -> WriteResult:
    kind = result.WhichOneof("result")
    if kind == "deleted":
        return Deleted.from_proto(result.deleted)
    if kind == "job":
        return Job.from_proto(result.job)
    if kind == "appended":
        return Appended.from_proto(result.appended)
    return Record.from_proto(result.record)


def _strings(values: Iterable[str], name: str) -> list[str]:
    if isinstance(values, str):
        raise TypeError(f"{name} must be a list of strings, not a string")
    return list(values)
