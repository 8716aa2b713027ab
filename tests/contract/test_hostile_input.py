"""Hostile input (issue 17, items 1-5): whatever a caller sends is a caller's error.

Request bodies that do not parse, NUL in search queries, out-of-range times and
durations, forged page tokens and google.protobuf.Values with no kind set: each is
INVALID_ARGUMENT with google.rpc.Status details on both shapes, never UNKNOWN or
INTERNAL, and leaves no traceback in the server's log.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

import strata.v1
from strata.v1 import (
    admin_pb2,
    artifacts_pb2,
    artifacts_pb2_grpc,
    queue_pb2,
    records_pb2,
    transaction_pb2,
    transcripts_pb2,
)
from strata.v1.transcripts_pb2_grpc import TranscriptServiceStub
from tests.contract.artifacts_support import header
from tests.contract.helpers import (
    CALLER_FAULT_CODES,
    create,
    data_of,
    expect_error,
    get,
    list_ids,
    list_jobs,
    queue_stub,
    search,
    to_struct,
    unique,
)
from tests.support.server import StrataProcess

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _service_descriptors() -> Iterator[Any]:
    """Every service this server registers: all of strata.v1 (every *_pb2 module, so
    a new proto file is covered too), health and reflection."""
    for module in pkgutil.iter_modules(strata.v1.__path__):
        if module.name.endswith("_pb2"):
            file = importlib.import_module(f"strata.v1.{module.name}").DESCRIPTOR
            yield from file.services_by_name.values()
    yield health_pb2.DESCRIPTOR.services_by_name["Health"]
    yield reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]


METHODS: list[MethodDescriptor] = [
    method for service in _service_descriptors() for method in service.methods
]


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def test_every_service_the_server_lists_is_covered(stubs: Any) -> None:
    ask = reflection_pb2.ServerReflectionRequest(list_services="")
    answers = stubs.channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )(iter([ask]), timeout=10)
    listed = {s.name for answer in answers for s in answer.list_services_response.service}
    covered = {method.containing_service.full_name for method in METHODS}
    assert "strata.v1.RecordService" in listed
    assert listed == covered


def raw_call(
    channel: grpc.Channel, method: MethodDescriptor, bodies: list[bytes], timeout: float = 10
) -> Any:
    """Call `method` with `bodies` as its request message(s), unencoded: one for a
    unary request, all of them as the stream otherwise. Reads any response stream to
    its end."""
    path = _path(method)
    if not method.client_streaming and not method.server_streaming:
        return channel.unary_unary(path)(bodies[0], timeout=timeout)
    if not method.client_streaming:
        return list(channel.unary_stream(path)(bodies[0], timeout=timeout))
    if not method.server_streaming:
        return channel.stream_unary(path)(iter(bodies), timeout=timeout)
    return list(channel.stream_stream(path)(iter(bodies), timeout=timeout))


@dataclass
class LogWatch:
    """What the server logs from now on."""

    server: StrataProcess
    start: int = 0

    def __post_init__(self) -> None:
        self.start = len(self.server.log())

    def new(self) -> str:
        return self.server.log()[self.start :]


UNPARSEABLE = {
    "end-group tag": b"\x04",
    "truncated length": b"\x0a\x05ab",
    "truncated varint": b"\x08\xff\xff",
}


@pytest.mark.parametrize("body", list(UNPARSEABLE.values()), ids=list(UNPARSEABLE))
def test_an_unparseable_request_is_invalid_argument_on_every_method(
    stubs: Any, server: StrataProcess, body: bytes
) -> None:
    watch = LogWatch(server)
    for method in METHODS:
        info, bad_request = expect_error(
            lambda m=method: raw_call(stubs.channel, m, [body]), INVALID, "MALFORMED_REQUEST"
        )
        assert info.metadata["message_type"] == method.input_type.full_name, _path(method)
        assert bad_request is not None and bad_request.field_violations, _path(method)
    log = watch.new()
    assert "Traceback" not in log
    lines = [line for line in log.splitlines() if "undecodable request" in line]
    assert len(lines) == len(METHODS)
    assert all("warn" in line.lower() for line in lines)


def test_invalid_utf8_in_a_string_field_is_invalid_argument(stubs: Any) -> None:
    # Field 3 of GetRecordRequest (id) is a string; 0xff is never valid UTF-8.
    expect_error(
        lambda: stubs.channel.unary_unary("/strata.v1.RecordService/GetRecord")(
            b"\x1a\x02\xff\xfe", timeout=10
        ),
        INVALID,
        "MALFORMED_REQUEST",
        message_type="strata.v1.GetRecordRequest",
    )


def test_a_bad_message_inside_a_client_stream_fails_that_stream(
    stubs: Any, server: StrataProcess
) -> None:
    watch = LogWatch(server)
    upload = [header().SerializeToString(), artifacts_pb2.UploadArtifactRequest(chunk=b"x" * 100)]
    upload_bodies = [upload[0], upload[1].SerializeToString(), b"\x04"]
    method = artifacts_pb2.DESCRIPTOR.services_by_name["ArtifactService"].methods_by_name
    expect_error(
        lambda: raw_call(stubs.channel, method["UploadArtifact"], upload_bodies),
        INVALID,
        "MALFORMED_REQUEST",
        message_type="strata.v1.UploadArtifactRequest",
    )
    admin = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].methods_by_name
    import_header = admin_pb2.ImportNamespaceRequest(
        header=admin_pb2.ImportHeader(namespace="hostile-import")
    ).SerializeToString()
    expect_error(
        lambda: raw_call(stubs.channel, admin["ImportNamespace"], [import_header, b"\x0a\x05"]),
        INVALID,
        "MALFORMED_REQUEST",
        message_type="strata.v1.ImportNamespaceRequest",
    )
    assert "Traceback" not in watch.new()


def test_health_still_answers_a_good_request(stubs: Any) -> None:
    response = stubs.channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


# --- 3. times and durations out of range --------------------------------------------

TIME_TYPES = {"google.protobuf.Timestamp", "google.protobuf.Duration"}


def _time_paths(
    descriptor: Any, prefix: tuple[tuple[str, bool], ...] = (), seen: frozenset[str] = frozenset()
) -> Iterator[tuple[tuple[str, bool], ...]]:
    """Every path from `descriptor` to a Timestamp or Duration field, as (field name,
    repeated) steps, without entering a message type twice on one path."""
    for field in descriptor.fields:
        target = field.message_type
        if target is None or target.GetOptions().map_entry:
            continue
        step = (*prefix, (field.name, field.is_repeated))
        if target.full_name in TIME_TYPES:
            yield step
        elif target.full_name not in seen and not target.full_name.startswith("google."):
            yield from _time_paths(target, step, seen | {descriptor.full_name})


PLAUSIBLE = {
    "namespace": "hostile-times",
    "collection": "hostile",
    "queue": "hostile",
    "key": "hostile",
    "max_jobs": 1,
}
"""Values for the fields that most requests need, so that a time reaches the code
that uses it instead of an error about a missing name."""


def _fill(message: Any) -> None:
    for name, value in PLAUSIBLE.items():
        if name in message.DESCRIPTOR.fields_by_name:
            setattr(message, name, value)


def _with_time(method: MethodDescriptor, path: Any, seconds: int, nanos: int) -> tuple[Any, str]:
    """A request of `method` whose time at `path` is (seconds, nanos), and the
    field path an error names it by. Unary calls get plausible names besides."""
    request = importlib.import_module(method.input_type.file.name.replace("/", ".")[:-6] + "_pb2")
    message_class = getattr(request, method.input_type.name)
    message = message_class()
    fill = _fill if not method.server_streaming else (lambda _: None)
    fill(message)
    target, names = message, []
    for name, repeated in path[:-1]:
        if repeated:
            names.append(f"{name}[0]")
            target = getattr(target, name).add()
        else:
            names.append(name)
            target = getattr(target, name)
        fill(target)
    name, repeated = path[-1]
    value = getattr(target, name).add() if repeated else getattr(target, name)
    names.append(f"{name}[0]" if repeated else name)
    value.seconds, value.nanos = seconds, nanos
    return message, ".".join(names)


TIME_CASES = [
    (method, path)
    for method in METHODS
    if method.containing_service.full_name.startswith("strata.")
    for path in _time_paths(method.input_type)
]

TIMESTAMP_LIMITS = (-62_135_596_800, 253_402_300_799)
DURATION_LIMIT = 315_576_000_000


def _is_timestamp(method: MethodDescriptor, path: Any) -> bool:
    descriptor = method.input_type
    for name, _ in path:
        descriptor = descriptor.fields_by_name[name].message_type
    return bool(descriptor.full_name == "google.protobuf.Timestamp")


def _out_of_range(method: MethodDescriptor, path: Any) -> list[tuple[int, int]]:
    if _is_timestamp(method, path):
        low, high = TIMESTAMP_LIMITS
        return [(high + 1, 0), (low - 1, 0), (0, -1), (0, 1_000_000_000), (2**62, 0)]
    return [(DURATION_LIMIT + 1, 0), (-DURATION_LIMIT - 1, 0), (1, -1), (-1, 1), (2**62, 0)]


def _extremes(method: MethodDescriptor, path: Any) -> list[tuple[int, int]]:
    if _is_timestamp(method, path):
        low, high = TIMESTAMP_LIMITS
        return [(low, 0), (high, 999_999_999), (0, 0)]
    return [(DURATION_LIMIT, 999_999_999), (-DURATION_LIMIT, -999_999_999), (0, 0)]


def test_requests_hold_times_to_check() -> None:
    paths = {f"{m.name}:{'.'.join(name for name, _ in path)}" for m, path in TIME_CASES}
    assert "GetArtifactUrl:expiry" in paths
    assert "Commit:writes.enqueue.delay" in paths


def _call(channel: grpc.Channel, method: MethodDescriptor, message: Any, timeout: float) -> Any:
    return raw_call(channel, method, [message.SerializeToString()], timeout)


def test_a_time_out_of_its_range_is_invalid_argument_naming_it(
    stubs: Any, server: StrataProcess
) -> None:
    watch = LogWatch(server)
    for method, path in TIME_CASES:
        for seconds, nanos in _out_of_range(method, path):
            message, field = _with_time(method, path, seconds, nanos)
            expect_error(
                lambda m=method, r=message: _call(stubs.channel, m, r, 10),
                INVALID,
                "INVALID_ARGUMENT",
                field,
            )
    assert "Traceback" not in watch.new()


def test_get_artifact_url_expiry_of_2_to_the_62_seconds(stubs: Any) -> None:
    stub = artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)
    request = artifacts_pb2.GetArtifactUrlRequest(id="anything")
    request.expiry.seconds = 2**62
    expect_error(lambda: stub.GetArtifactUrl(request), INVALID, "INVALID_ARGUMENT", "expiry")


def test_times_at_the_ends_of_their_range_are_never_a_server_error(
    stubs: Any, server: StrataProcess
) -> None:
    watch = LogWatch(server)
    for method, path in TIME_CASES:
        for seconds, nanos in _extremes(method, path):
            message, _ = _with_time(method, path, seconds, nanos)
            try:
                _call(stubs.channel, method, message, 3)
            except grpc.RpcError as error:
                assert error.code() not in CALLER_FAULT_CODES, (
                    f"{method.name} {path} = ({seconds}, {nanos}): {error.code().name} "
                    f"{error.details()}"
                )
    assert "Traceback" not in watch.new()


# --- 5. google.protobuf.Value with no kind set ---------------------------------------


def _holey(where: str) -> struct_pb2.Struct:
    """Record-like data whose Value at `where` has no kind set: "title" (a key),
    "tags" (the third item of a list), "meta" (a key of a nested object), "odd key"
    (a key that is not an identifier)."""
    data = to_struct({"ok": 1, "tags": ["a", "b"], "meta": {"author": "x"}})
    if where == "title":
        data.fields.get_or_create("title")
    elif where == "tags":
        data.fields["tags"].list_value.values.add()
    elif where == "meta":
        data.fields["meta"].struct_value.fields.get_or_create("editor")
    else:
        data.fields.get_or_create("odd key")
    return data


HOLES = {
    "title": ".title",
    "tags": ".tags[2]",
    "meta": ".meta.editor",
    "odd key": '["odd key"]',
}


@pytest.mark.parametrize("where", list(HOLES))
def test_a_value_with_no_kind_in_record_data_is_refused_naming_its_path(
    stubs: Any, collection: str, where: str
) -> None:
    record_id = unique("r")
    request = records_pb2.CreateRecordRequest(
        collection=collection, record_id=record_id, data=_holey(where)
    )
    expect_error(
        lambda: stubs.records.CreateRecord(request),
        INVALID,
        "INVALID_ARGUMENT",
        f"data{HOLES[where]}",
    )
    expect_error(lambda: get(stubs, collection, record_id), grpc.StatusCode.NOT_FOUND)


def test_a_value_with_no_kind_is_refused_in_every_write(stubs: Any, collection: str) -> None:
    holey = _holey("title")
    qs = queue_stub(stubs.channel)
    queue = unique("q")
    create(stubs, collection, "exists", {"title": "kept"})
    calls: dict[str, Callable[[], Any]] = {
        "data.title": lambda: stubs.records.UpdateRecord(
            records_pb2.UpdateRecordRequest(collection=collection, id="exists", data=holey)
        ),
        "writes[0].create.data.title": lambda: stubs.tx.Commit(
            transaction_pb2.CommitRequest(
                writes=[
                    transaction_pb2.Write(
                        create=transaction_pb2.CreateRecordWrite(collection=collection, data=holey)
                    )
                ]
            )
        ),
        "writes[1].enqueue.payload.title": lambda: stubs.tx.Commit(
            transaction_pb2.CommitRequest(
                writes=[
                    transaction_pb2.Write(
                        create=transaction_pb2.CreateRecordWrite(collection=collection)
                    ),
                    transaction_pb2.Write(
                        enqueue=transaction_pb2.EnqueueJobWrite(queue=queue, payload=holey)
                    ),
                ]
            )
        ),
        "payload.title": lambda: qs.Enqueue(queue_pb2.EnqueueRequest(queue=queue, payload=holey)),
        "jobs[1].payload.title": lambda: qs.BatchEnqueue(
            queue_pb2.BatchEnqueueRequest(
                jobs=[
                    queue_pb2.EnqueueRequest(queue=queue),
                    queue_pb2.EnqueueRequest(queue=queue, payload=holey),
                ]
            )
        ),
        "result.title": lambda: qs.AckJob(
            queue_pb2.AckJobRequest(id="j1", lease_token="t", result=holey)
        ),
        "acks[0].result.title": lambda: qs.AckJobs(
            queue_pb2.AckJobsRequest(
                acks=[queue_pb2.JobAck(id="j1", lease_token="t", result=holey)]
            )
        ),
        "entries[0].data.title": lambda: TranscriptServiceStub(stubs.channel).AppendEntries(
            transcripts_pb2.AppendEntriesRequest(
                id="t1", entries=[transcripts_pb2.Entry(role="user", content="x", data=holey)]
            )
        ),
        "writes[0].append.entries[0].data.title": lambda: stubs.tx.Commit(
            transaction_pb2.CommitRequest(
                writes=[
                    transaction_pb2.Write(
                        append=transaction_pb2.AppendEntriesWrite(
                            id="t1",
                            entries=[transcripts_pb2.Entry(role="user", content="x", data=holey)],
                        )
                    )
                ]
            )
        ),
    }
    for field, call in calls.items():
        expect_error(call, INVALID, "INVALID_ARGUMENT", field)
    assert data_of(get(stubs, collection, "exists")) == {"title": "kept"}
    assert list_jobs(qs, queue) == []
    assert list_ids(stubs, collection) == ["exists"]


def test_an_explicit_null_is_still_stored_as_null(stubs: Any, collection: str) -> None:
    data = to_struct({"title": None, "tags": [None, "a"]})
    stubs.records.CreateRecord(
        records_pb2.CreateRecordRequest(collection=collection, record_id="nulls", data=data)
    )
    assert data_of(get(stubs, collection, "nulls")) == {"title": None, "tags": [None, "a"]}


# --- 2. NUL in a search query ---------------------------------------------------------

NUL_QUERIES = ["a\x00", "\x00", "needle \x00 two", "\x00needle"]


@pytest.mark.parametrize("query", NUL_QUERIES, ids=repr)
def test_a_nul_in_a_search_query_is_invalid_argument(
    stubs: Any, collection: str, query: str
) -> None:
    transcripts = TranscriptServiceStub(stubs.channel)
    expect_error(lambda: search(stubs, collection, query), INVALID, "INVALID_ARGUMENT", "query")
    expect_error(
        lambda: transcripts.SearchTranscripts(
            transcripts_pb2.SearchTranscriptsRequest(query=query)
        ),
        INVALID,
        "INVALID_ARGUMENT",
        "query",
    )


ODD_QUERIES = [chr(code) + "needle" for code in range(1, 32)] + [
    "needle\x7f",
    "\ufffe",
    "\U0010ffff",
    "e\u0301",
    '"',
    '""',
    "*",
    "NEAR(a b)",
    "a OR b",
    "col:needle",
    "^needle",
    "'",
    "\\",
    "%_",
]


def test_odd_search_queries_are_never_a_server_error(stubs: Any, collection: str) -> None:
    transcripts = TranscriptServiceStub(stubs.channel)
    create(stubs, collection, "r1", {"text": "needle"})
    for query in ODD_QUERIES:
        for call in (
            lambda q=query: search(stubs, collection, q),
            lambda q=query: transcripts.SearchTranscripts(
                transcripts_pb2.SearchTranscriptsRequest(query=q)
            ),
        ):
            try:
                call()
            except grpc.RpcError as error:
                assert error.code() not in CALLER_FAULT_CODES, (
                    f"{query!r}: {error.code().name} {error.details()}"
                )
