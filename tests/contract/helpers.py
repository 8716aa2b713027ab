"""Small helpers the contract tests share: building requests, paging, reading errors."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from strata.v1 import (
    admin_pb2_grpc,
    queue_pb2,
    queue_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
    transaction_pb2,
    transaction_pb2_grpc,
)
from tests.conftest import Stubs

T = TypeVar("T")

CALLER_FAULT_CODES = frozenset(
    {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE}
)
"""Codes a healthy server must never answer a caller's request with: UNKNOWN and
INTERNAL are server bugs, UNAVAILABLE claims the (running) backend is down."""


def stubs_over(channel: grpc.Channel) -> Stubs:
    """Generated stubs over `channel` (which the caller closes)."""
    return Stubs(
        channel,
        records_pb2_grpc.RecordServiceStub(channel),
        transaction_pb2_grpc.TransactionServiceStub(channel),
        admin_pb2_grpc.AdminServiceStub(channel),
    )


def expect_error(
    call: Callable[[], Any],
    code: grpc.StatusCode,
    reason: str | None = None,
    field: str | None = None,
    **metadata: str,
) -> tuple[error_details_pb2.ErrorInfo, error_details_pb2.BadRequest | None]:
    """Run `call`, assert it fails with `code` (and ErrorInfo `reason`, a BadRequest
    violation naming `field`, ErrorInfo `metadata`), and return the details."""
    error = raised_by(call)
    assert error.code() == code, f"expected {code.name}, got {error.code().name}: {error.details()}"
    info, bad_request = details_of(error)
    if reason is not None:
        assert info.reason == reason, f"reason {info.reason!r} != {reason!r} ({error.details()})"
    if field is not None:
        assert bad_request is not None, f"no BadRequest detail in {error.details()!r}"
        fields = [violation.field for violation in bad_request.field_violations]
        assert field in fields, f"BadRequest names {fields}, not {field!r}"
    for key, value in metadata.items():
        assert info.metadata.get(key) == value, (
            f"ErrorInfo.metadata[{key!r}] is {info.metadata.get(key)!r}, not {value!r}"
            f" (metadata: {dict(info.metadata)})"
        )
    return info, bad_request


def raised_by(call: Callable[[], Any]) -> grpc.RpcError:
    """The RpcError `call` raises; fails the test when it succeeds."""
    try:
        result = call()
    except grpc.RpcError as error:
        return error
    raise AssertionError(f"expected an error, got {result!r}")


def details_of(
    error: grpc.RpcError,
) -> tuple[error_details_pb2.ErrorInfo, error_details_pb2.BadRequest | None]:
    """The ErrorInfo (always present) and BadRequest (if any) of a failed call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"{error.code().name} carries no google.rpc.Status details"
    info = None
    bad_request = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
    assert info is not None, f"{error.code().name} carries no ErrorInfo: {status}"
    return info, bad_request


def to_struct(data: dict[str, Any]) -> struct_pb2.Struct:
    """A JSON object as a protobuf Struct."""
    message = struct_pb2.Struct()
    message.update(data)
    return message


def data_of(record: records_pb2.Record) -> dict[str, Any]:
    """A record's data as plain Python values."""
    return json_format.MessageToDict(record.data)


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A datetime as a protobuf Timestamp."""
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message


def from_now(seconds: float) -> timestamp_pb2.Timestamp:
    """A Timestamp `seconds` from now (negative: in the past)."""
    return timestamp(datetime.now(UTC) + timedelta(seconds=seconds))


def rfc3339(value: timestamp_pb2.Timestamp | datetime) -> str:
    """An RFC 3339 string with microseconds and a Z, as a filter literal wants it."""
    moment = value if isinstance(value, datetime) else value.ToDatetime(UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def unique(prefix: str = "x") -> str:
    """A value (id, request_id, collection) no other test uses."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def create(
    stubs: Any,
    collection: str,
    record_id: str = "",
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> records_pb2.Record:
    """CreateRecord with `data` and any other request fields."""
    return stubs.records.CreateRecord(
        records_pb2.CreateRecordRequest(
            collection=collection, record_id=record_id, data=to_struct(data or {}), **fields
        )
    )


def create_many(stubs: Any, collection: str, records: dict[str, dict[str, Any]]) -> None:
    """Create every `id: data` of `records`, in order."""
    for record_id, data in records.items():
        create(stubs, collection, record_id, data)


def get(stubs: Any, collection: str, record_id: str, **fields: Any) -> records_pb2.Record:
    """GetRecord."""
    return stubs.records.GetRecord(
        records_pb2.GetRecordRequest(collection=collection, id=record_id, **fields)
    )


def update(
    stubs: Any, collection: str, record_id: str, *args: Any, **fields: Any
) -> records_pb2.Record:
    """UpdateRecord; further arguments as for `update_shaped`."""
    request = update_shaped(records_pb2.UpdateRecordRequest, collection, record_id, *args, **fields)
    return stubs.records.UpdateRecord(request)


def update_shaped(
    message_type: Any,
    collection: str,
    record_id: str,
    data: dict[str, Any] | None = None,
    mask: Iterable[str] | None = None,
    **fields: Any,
) -> Any:
    """An UpdateRecordRequest or UpdateRecordWrite (they share these fields) with
    `data` and the update_mask `mask` (None: a full replace)."""
    message = message_type(
        collection=collection, id=record_id, data=to_struct(data or {}), **fields
    )
    if mask is not None:
        message.update_mask.paths.extend(mask)
    return message


def delete(stubs: Any, collection: str, record_id: str, **fields: Any) -> Any:
    """DeleteRecord."""
    return stubs.records.DeleteRecord(
        records_pb2.DeleteRecordRequest(collection=collection, id=record_id, **fields)
    )


def list_page(stubs: Any, collection: str, **fields: Any) -> records_pb2.ListRecordsResponse:
    """One ListRecords call."""
    return stubs.records.ListRecords(
        records_pb2.ListRecordsRequest(collection=collection, **fields)
    )


def list_ids(stubs: Any, collection: str, **fields: Any) -> list[str]:
    """Ids of every record ListRecords returns, following next_page_token to the end."""
    return [record.id for record in list_all(stubs, collection, **fields)]


def list_all(stubs: Any, collection: str, **fields: Any) -> list[records_pb2.Record]:
    """Every record ListRecords returns, following next_page_token to the end."""
    return all_pages(
        lambda token: list_page(stubs, collection, page_token=token, **fields),
        lambda page: page.records,
    )


def all_pages(fetch: Callable[[str], Any], items: Callable[[Any], Iterable[T]]) -> list[T]:
    """Call `fetch(page_token)` from the first page until next_page_token is empty,
    collecting `items(page)` of every page."""
    collected: list[T] = []
    token = ""
    for _ in range(10_000):
        page = fetch(token)
        collected.extend(items(page))
        token = page.next_page_token
        if not token:
            return collected
    raise AssertionError("the server never returned an empty next_page_token")


def count(stubs: Any, collection: str, filter: str = "", **fields: Any) -> int:
    """CountRecords."""
    return stubs.records.CountRecords(
        records_pb2.CountRecordsRequest(collection=collection, filter=filter, **fields)
    ).count


def search(
    stubs: Any, collection: str, query: str, **fields: Any
) -> records_pb2.SearchRecordsResponse:
    """One SearchRecords call."""
    return stubs.records.SearchRecords(
        records_pb2.SearchRecordsRequest(collection=collection, query=query, **fields)
    )


def search_ids(stubs: Any, collection: str, query: str, **fields: Any) -> list[str]:
    """Ids of every hit of a search, best first, following next_page_token to the end."""
    return all_pages(
        lambda token: search(stubs, collection, query, page_token=token, **fields),
        lambda page: [hit.record.id for hit in page.hits],
    )


def batch_get(
    stubs: Any, collection: str, ids: Iterable[str], **fields: Any
) -> records_pb2.BatchGetRecordsResponse:
    """BatchGetRecords."""
    return stubs.records.BatchGetRecords(
        records_pb2.BatchGetRecordsRequest(collection=collection, ids=list(ids), **fields)
    )


def create_write(
    collection: str, record_id: str = "", data: dict[str, Any] | None = None, **fields: Any
) -> transaction_pb2.Write:
    """A Commit write that creates a record."""
    return transaction_pb2.Write(
        create=transaction_pb2.CreateRecordWrite(
            collection=collection, record_id=record_id, data=to_struct(data or {}), **fields
        )
    )


def update_write(
    collection: str, record_id: str, *args: Any, **fields: Any
) -> transaction_pb2.Write:
    """A Commit write that updates a record; further arguments as for `update_shaped`."""
    write = update_shaped(transaction_pb2.UpdateRecordWrite, collection, record_id, *args, **fields)
    return transaction_pb2.Write(update=write)


def delete_write(collection: str, record_id: str, **fields: Any) -> transaction_pb2.Write:
    """A Commit write that deletes a record."""
    return transaction_pb2.Write(
        delete=transaction_pb2.DeleteRecordWrite(collection=collection, id=record_id, **fields)
    )


def commit(
    stubs: Any, writes: Iterable[transaction_pb2.Write], **fields: Any
) -> transaction_pb2.CommitResponse:
    """Commit `writes`."""
    return stubs.tx.Commit(transaction_pb2.CommitRequest(writes=list(writes), **fields))


# --- QueueService ------------------------------------------------------------------


def queue_stub(channel: grpc.Channel) -> queue_pb2_grpc.QueueServiceStub:
    """A QueueService stub over `channel` (which the caller closes)."""
    return queue_pb2_grpc.QueueServiceStub(channel)


def seconds(value: float) -> duration_pb2.Duration:
    """A protobuf Duration of `value` seconds (negative allowed)."""
    message = duration_pb2.Duration()
    message.FromTimedelta(timedelta(seconds=value))
    return message


def enqueue(
    queue_stub: Any, queue: str, payload: dict[str, Any] | None = None, **fields: Any
) -> queue_pb2.Job:
    """Enqueue one job with `payload` and any other request fields."""
    return queue_stub.Enqueue(
        queue_pb2.EnqueueRequest(queue=queue, payload=to_struct(payload or {}), **fields)
    )


def enqueue_request(
    queue: str, payload: dict[str, Any] | None = None, **fields: Any
) -> queue_pb2.EnqueueRequest:
    """An EnqueueRequest (for BatchEnqueue) with `payload` and other fields."""
    return queue_pb2.EnqueueRequest(queue=queue, payload=to_struct(payload or {}), **fields)


def lease(
    queue_stub: Any,
    queue: str,
    max_jobs: int = 1,
    lease_seconds: float | None = None,
    wait_seconds: float | None = None,
    **fields: Any,
) -> list[queue_pb2.Job]:
    """LeaseJobs; durations in seconds (None: leave the field unset)."""
    request = queue_pb2.LeaseJobsRequest(queue=queue, max_jobs=max_jobs, **fields)
    if lease_seconds is not None:
        request.lease_duration.CopyFrom(seconds(lease_seconds))
    if wait_seconds is not None:
        request.wait.CopyFrom(seconds(wait_seconds))
    return list(queue_stub.LeaseJobs(request).jobs)


def ack(
    queue_stub: Any, job: queue_pb2.Job, result: dict[str, Any] | None = None, **fields: Any
) -> queue_pb2.Job:
    """AckJob a leased job under its lease_token (with an optional result)."""
    request = queue_pb2.AckJobRequest(id=job.id, lease_token=job.lease_token, **fields)
    if result is not None:
        request.result.CopyFrom(to_struct(result))
    return queue_stub.AckJob(request)


def fail(
    queue_stub: Any,
    job: queue_pb2.Job,
    error: str = "boom",
    retry_delay: float | None = None,
    **fields: Any,
) -> queue_pb2.Job:
    """FailJob a leased job under its lease_token; retry_delay in seconds."""
    request = queue_pb2.FailJobRequest(
        id=job.id, lease_token=job.lease_token, error=error, **fields
    )
    if retry_delay is not None:
        request.retry_delay.CopyFrom(seconds(retry_delay))
    return queue_stub.FailJob(request)


def queue_stats(queue_stub: Any, queue: str) -> queue_pb2.QueueStats:
    """GetQueueStats."""
    return queue_stub.GetQueueStats(queue_pb2.GetQueueStatsRequest(queue=queue))


def list_jobs(queue_stub: Any, queue: str, **fields: Any) -> list[queue_pb2.Job]:
    """Every job ListJobs returns, following next_page_token to the end."""
    return all_pages(
        lambda token: queue_stub.ListJobs(
            queue_pb2.ListJobsRequest(queue=queue, page_token=token, **fields)
        ),
        lambda page: page.jobs,
    )


def payload_of(job: queue_pb2.Job) -> dict[str, Any]:
    """A job's payload as plain Python values."""
    return json_format.MessageToDict(job.payload)
