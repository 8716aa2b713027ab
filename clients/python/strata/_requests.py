"""The client's calls, described without doing any I/O.

Each call builder (`create_record` ... `server_info`, at the end, and the job
queue's in `strata._queue_requests`) is one method of `Client` and
`AsyncClient`, with its signature and docstring: it checks and converts the
caller's arguments and returns an `Rpc` (or, for List-style calls, a `PagedRpc`)
naming the stub method, the request, how to read the response and
whether a retry is safe. The two clients only send what these describe, so they
cannot disagree about the API. The option types and field builders before them
are shared with `strata.writes`, whose Commit writes take the same arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeAlias, TypedDict, TypeVar, Unpack

from google.protobuf.empty_pb2 import Empty
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from strata._convert import field_mask, struct_from_dict, timestamp_from_datetime
from strata.jobs import Job
from strata.records import Deleted, Record
from strata.transcripts import Appended
from strata.v1 import (
    admin_pb2,
    artifacts_pb2,
    queue_pb2,
    records_pb2,
    transaction_pb2,
    transcripts_pb2,
)

RespT = TypeVar("RespT")
OutT = TypeVar("OutT")
ItemT = TypeVar("ItemT")

Service = Literal["records", "transactions", "admin", "queue", "transcripts", "cache", "artifacts"]
"""Which generated stub serves a call."""


@dataclass(frozen=True, slots=True)
class Rpc(Generic[RespT, OutT]):
    """One unary call, ready to send."""

    service: Service
    """The stub that has the method."""
    method: str
    """The stub's method, e.g. "GetRecord"."""
    build: Callable[[str], Message]
    """The request for a namespace."""
    parse: Callable[[RespT], OutT]
    """The caller's result from the response."""
    idempotent: bool
    """Whether sending the request twice has the effect of sending it once, so
    that it may be retried after UNAVAILABLE."""
    namespace: str | None = None
    """The caller's namespace; None means the client's default."""
    wait: float = 0.0
    """Seconds the server may hold the call before it answers (a long poll),
    added to the client's timeout to make the call's deadline."""

    def request(self, default_namespace: str) -> Message:
        """The request to send when the client's namespace is `default_namespace`."""
        return self.build(self.namespace or default_namespace)


MessageT = TypeVar("MessageT", bound=Message)


def namespaced_call(
    service: Service,
    method: str,
    fields: Message,
    parse: Callable[[RespT], OutT],
    namespace: str | None,
    idempotent: bool,
    wait: float = 0.0,
) -> Rpc[RespT, OutT]:
    """A call whose request is `fields` in the caller's namespace (`in_namespace`)."""
    return Rpc(
        service,
        method,
        lambda ns: in_namespace(fields, ns),
        parse,
        idempotent=idempotent,
        namespace=namespace,
        wait=wait,
    )


def in_namespace(fields: MessageT, namespace: str) -> MessageT:
    """A request of `fields`' type holding `fields`, in `namespace` unless `fields`
    names one itself. Every Strata request message has a `namespace` field; the
    protobuf stubs' Message can't say so, hence the one untyped assignment."""
    request = type(fields)()
    named: Any = request
    named.namespace = namespace
    request.MergeFrom(fields)
    return request


@dataclass(frozen=True, slots=True)
class Page(Generic[ItemT]):
    """One page of a List-style call."""

    items: list[ItemT]
    """The page's results."""
    next_page_token: str
    """Token of the next page; empty on the last one."""


PagedRpc: TypeAlias = Callable[[str], Rpc[Any, Page[ItemT]]]
"""A List-style call: given a page token ("" for the first), the call for that page."""


class CreateOptions(TypedDict, total=False):
    """Optional arguments of a create.

    record_id: the new record's id; empty (the default) lets the server choose.
    expire_time: timezone-aware time from which the record is invisible.
    """

    record_id: str
    expire_time: datetime | None


class UpdateOptions(TypedDict, total=False):
    """Optional arguments of an update.

    update_mask: paths to change (`data`, `data.<key>[.<key>...]`,
      `expire_time`); a path absent from `data` is removed. None replaces the
      whole document and expire_time.
    expected_version: write only if the record is at this version, else raise
      VersionConflict.
    allow_missing: create the record when it does not exist.
    expire_time: new expiry, applied on a full replace or when in the mask.
    """

    update_mask: Sequence[str] | None
    expected_version: int | None
    allow_missing: bool
    expire_time: datetime | None


class DeleteOptions(TypedDict, total=False):
    """Optional arguments of a delete.

    expected_version: delete only if the record is at this version, else raise
      VersionConflict.
    allow_missing: succeed when the record does not exist.
    """

    expected_version: int | None
    allow_missing: bool


class CreateFields(TypedDict):
    """The fields CreateRecordRequest shares with CreateRecordWrite."""

    collection: str
    record_id: str
    data: Struct
    expire_time: Timestamp | None


class UpdateFields(TypedDict):
    """The fields UpdateRecordRequest shares with UpdateRecordWrite."""

    collection: str
    id: str
    data: Struct
    update_mask: FieldMask | None
    expected_version: int
    allow_missing: bool
    expire_time: Timestamp | None


class DeleteFields(TypedDict):
    """The fields DeleteRecordRequest shares with DeleteRecordWrite."""

    collection: str
    id: str
    expected_version: int
    allow_missing: bool


def create_fields(
    collection: str,
    data: Mapping[str, Any],
    *,
    record_id: str = "",
    expire_time: datetime | None = None,
) -> CreateFields:
    """The fields of a create, converted; the defaults of CreateOptions."""
    return {
        "collection": collection,
        "record_id": record_id,
        "data": struct_from_dict(data),
        "expire_time": timestamp_from_datetime(expire_time, "expire_time"),
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
    }


def delete_fields(
    collection: str,
    id: str,
    *,
    expected_version: int | None = None,
    allow_missing: bool = False,
) -> DeleteFields:
    """The fields of a delete, converted; the defaults of DeleteOptions."""
    return {
        "collection": collection,
        "id": id,
        "expected_version": expected_version or 0,
        "allow_missing": allow_missing,
    }


PageRequestT = TypeVar(
    "PageRequestT",
    records_pb2.ListRecordsRequest,
    records_pb2.SearchRecordsRequest,
    queue_pb2.ListJobsRequest,
    transcripts_pb2.ListTranscriptsRequest,
    transcripts_pb2.SearchTranscriptsRequest,
    artifacts_pb2.ListArtifactsRequest,
)
PageResponseT = TypeVar(
    "PageResponseT",
    records_pb2.ListRecordsResponse,
    records_pb2.SearchRecordsResponse,
    queue_pb2.ListJobsResponse,
    transcripts_pb2.ListTranscriptsResponse,
    transcripts_pb2.SearchTranscriptsResponse,
    artifacts_pb2.ListArtifactsResponse,
)


def paged_call(
    method: str,
    query: PageRequestT,
    items: Callable[[PageResponseT], list[ItemT]],
    namespace: str | None,
    service: Service = "records",
) -> PagedRpc[ItemT]:
    """A List-style call: `query` is its request without namespace and page
    token, `items` reads a page's results."""

    def page(token: str) -> Rpc[PageResponseT, Page[ItemT]]:
        def build(ns: str) -> Message:
            request = type(query)(namespace=ns, page_token=token)
            request.MergeFrom(query)
            return request

        return Rpc(
            service,
            method,
            build,
            lambda response: Page(items(response), response.next_page_token),
            idempotent=True,
            namespace=namespace,
        )

    return page


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


def server_info() -> Rpc[admin_pb2.GetServerInfoResponse, admin_pb2.GetServerInfoResponse]:
    """Describe the server: version, backends, schema version, capabilities and
    start time, as the `strata.v1.admin_pb2.GetServerInfoResponse` message."""
    return Rpc(
        "admin",
        "GetServerInfo",
        lambda _: admin_pb2.GetServerInfoRequest(),
        lambda response: response,
        idempotent=True,
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
