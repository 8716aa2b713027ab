"""Hostile input (issue 17, items 1-5): whatever a caller sends is a caller's error.

Request bodies that do not parse, NUL in search queries, out-of-range times and
durations, forged page tokens and google.protobuf.Values with no kind set: each is
INVALID_ARGUMENT with google.rpc.Status details on both shapes, never UNKNOWN or
INTERNAL, and leaves no traceback in the server's log.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import importlib
import json
import pkgutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import message_factory, struct_pb2
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
    search_pb2,
    transaction_pb2,
    transcripts_pb2,
)
from strata.v1.records_pb2_grpc import RecordServiceStub
from strata.v1.search_pb2_grpc import SearchServiceStub
from strata.v1.transcripts_pb2_grpc import TranscriptServiceStub
from tests.contract.artifacts_support import header, upload
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
    # One WARNING per method at most (api/decoding.py holds back repeats for
    # WARN_EVERY_SECONDS, so a method warned about by an earlier case of this
    # session's server may say nothing now): never a line per message.
    named = [json.loads(line)["method"] for line in lines]
    assert len(named) == len(set(named)) <= len(METHODS)
    assert set(named) <= {_path(method) for method in METHODS}
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
    expect_error(
        lambda: SearchServiceStub(stubs.channel).Search(search_pb2.SearchRequest(query=query)),
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
    everything = SearchServiceStub(stubs.channel)
    create(stubs, collection, "r1", {"text": "needle"})
    for query in ODD_QUERIES:
        for call in (
            lambda q=query: search(stubs, collection, q),
            lambda q=query: transcripts.SearchTranscripts(
                transcripts_pb2.SearchTranscriptsRequest(query=q)
            ),
            lambda q=query: everything.Search(search_pb2.SearchRequest(query=q)),
        ):
            try:
                call()
            except grpc.RpcError as error:
                assert error.code() not in CALLER_FAULT_CODES, (
                    f"{query!r}: {error.code().name} {error.details()}"
                )


# --- 4. forged page tokens ---------------------------------------------------------------

PAGED = [
    method
    for method in METHODS
    if {"page_token", "namespace"} <= set(method.input_type.fields_by_name)
]
"""Every List and Search of a namespace (ListTokens pages over the server's tokens,
which the security tests cover)."""


def _paged_request(method: MethodDescriptor, namespace: str, token: str = "") -> Any:
    message = message_factory.GetMessageClass(method.input_type)(
        namespace=namespace, page_size=1, page_token=token
    )
    for name, value in {"collection": "hostile", "queue": "hostile", "query": "needle"}.items():
        if name in method.input_type.fields_by_name:
            setattr(message, name, value)
    return message


def _page(channel: grpc.Channel, method: MethodDescriptor, namespace: str, token: str = "") -> Any:
    call = channel.unary_unary(
        _path(method),
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=message_factory.GetMessageClass(method.output_type).FromString,
    )
    return call(_paged_request(method, namespace, token), timeout=10)


def _items(page: Any) -> list[bytes]:
    """A page's items, comparable across calls (each serialized)."""
    field = next(f for f in page.DESCRIPTOR.fields if f.is_repeated)
    return [item.SerializeToString(deterministic=True) for item in getattr(page, field.name)]


@pytest.fixture
def paged_namespace(stubs: Any) -> str:
    """A namespace holding three of everything each List and Search pages over."""
    namespace = unique("tok").lower()
    qs = queue_stub(stubs.channel)
    ts = TranscriptServiceStub(stubs.channel)
    arts = artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)
    for n in range(3):
        stubs.records.CreateRecord(
            records_pb2.CreateRecordRequest(
                namespace=namespace,
                collection="hostile",
                record_id=f"r{n}",
                data=to_struct({"text": f"needle {n}"}),
            )
        )
        qs.Enqueue(queue_pb2.EnqueueRequest(namespace=namespace, queue="hostile"))
        qs.PauseQueue(queue_pb2.PauseQueueRequest(namespace=namespace, queue=f"paused{n}"))
        ts.CreateTranscript(
            transcripts_pb2.CreateTranscriptRequest(namespace=namespace, transcript_id=f"t{n}")
        )
        ts.AppendEntries(
            transcripts_pb2.AppendEntriesRequest(
                namespace=namespace,
                id=f"t{n}",
                entries=[transcripts_pb2.Entry(role="user", content=f"needle {n}")],
            )
        )
        upload(arts, f"content {n}".encode(), namespace=namespace, name=f"a{n}.log")
    return namespace


def test_every_list_and_search_pages_with_signed_tokens(stubs: Any, paged_namespace: str) -> None:
    assert {m.name for m in PAGED} >= {"ListRecords", "SearchRecords", "ListAuditEntries"}
    for method in PAGED:
        first = _page(stubs.channel, method, paged_namespace)
        token = first.next_page_token
        assert token and "." in token, method.name
        second = _page(stubs.channel, method, paged_namespace, token)
        assert _items(second) and _items(second) != _items(first), method.name


def _unsigned(body: dict[str, Any]) -> str:
    raw = json.dumps(body).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


HOSTILE_BODIES: dict[str, dict[str, Any]] = {
    "year 1 with a zone": {"v": 2, "q": "x", "k": [{"$t": "0001-01-01T00:00:00+05:00"}]},
    "year 1": {"v": 2, "q": "x", "k": [{"$t": "0001-01-01T00:00:00+00:00"}]},
    "lone surrogate": {"v": 2, "q": "x", "k": [{"$v": "\ud800"}]},
    "2**80": {"v": 2, "q": "x", "k": [{"$v": 2**80}]},
    "2**80 offset": {"v": 2, "q": "x", "o": 2**80},
    "time of a number": {"v": 2, "q": "x", "k": [{"$t": 5}]},
    "no zone": {"v": 2, "q": "x", "k": [{"$t": "2026-01-01T00:00:00"}]},
    "deep": {"v": 2, "q": "x", "k": [{"$v": json.loads("[" * 50 + "]" * 50)}]},
    "digest a list": {"v": 2, "q": ["x"]},
    "old version": {"v": 1, "q": "x"},
}


def _forgeries(real: str) -> dict[str, str]:
    body, _, mac = real.partition(".")
    forged_mac = base64.urlsafe_b64encode(bytes(16)).decode().rstrip("=")
    flipped = "A" if body[-2] != "A" else "B"
    forgeries = {f"unsigned, {label}": _unsigned(b) for label, b in HOSTILE_BODIES.items()}
    forgeries |= {
        f"forged mac, {label}": f"{_unsigned(b)}.{forged_mac}"
        for label, b in HOSTILE_BODIES.items()
    }
    forgeries |= {
        "real body, no mac": body,
        "real body, forged mac": f"{body}.{forged_mac}",
        "real mac, other body": f"{_unsigned(HOSTILE_BODIES['2**80'])}.{mac}",
        "real token, a bit flipped": f"{body[:-2]}{flipped}{body[-1]}.{mac}",
        "real token twice": f"{real}.{real}",
        "non-ASCII": real + "é",
        "padding": f"{body}==.{mac}",
        "empty mac": f"{body}.",
    }
    return forgeries


def test_a_forged_page_token_is_invalid_argument_on_every_list_and_search(
    stubs: Any, server: StrataProcess, paged_namespace: str
) -> None:
    watch = LogWatch(server)
    for method in PAGED:
        real = _page(stubs.channel, method, paged_namespace).next_page_token
        for label, token in _forgeries(real).items():
            try:
                expect_error(
                    lambda m=method, t=token: _page(stubs.channel, m, paged_namespace, t),
                    INVALID,
                    "INVALID_ARGUMENT",
                    "page_token",
                )
            except AssertionError as error:
                raise AssertionError(f"{method.name}, {label}: {error}") from None
    assert "Traceback" not in watch.new()


@pytest.fixture(scope="module")
def replica(
    server: StrataProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StrataProcess]:
    """A second server on the test server's database, with no key configured: like
    `server`, it signs with the key the database keeps."""
    process = StrataProcess(server.database_url, tmp_path_factory.mktemp("replica"), **server.env)
    process.start()
    yield process
    process.stop()


def test_a_page_token_from_one_replica_pages_on_another(
    stubs: Any, paged_namespace: str, replica: StrataProcess
) -> None:
    with replica.channel() as other:
        for method in PAGED:
            first = _page(stubs.channel, method, paged_namespace)
            here = _page(stubs.channel, method, paged_namespace, first.next_page_token)
            there = _page(other, method, paged_namespace, first.next_page_token)
            assert _items(there) == _items(here), method.name
            # And back: the replica's tokens are good here.
            back = _page(other, method, paged_namespace).next_page_token
            assert _items(_page(stubs.channel, method, paged_namespace, back)) == _items(here)


def database_key(server: StrataProcess) -> bytes:
    """The page token key a server's database keeps (read as an operator could)."""
    query = "SELECT value FROM server_secrets WHERE name = 'page_token_key'"
    if server.database_url.startswith("sqlite"):
        with contextlib.closing(
            sqlite3.connect(server.database_url.removeprefix("sqlite:///"))
        ) as db:
            return bytes(db.execute(query).fetchone()[0])
    with psycopg.connect(server.database_url) as conn:
        row = conn.execute(query).fetchone()
        assert row is not None
        return bytes(row[0])


def _signs(key: bytes, token: str) -> bool:
    """Whether `token`'s mac is the one `key` gives its body."""
    body, _, mac = token.partition(".")
    return _b64(hmac.digest(key, _unb64(body), "sha256")[:16]) == mac


def _signed(key: bytes, body: Any) -> str:
    raw = json.dumps(body).encode()
    return f"{_b64(raw)}.{_b64(hmac.digest(key, raw, 'sha256')[:16])}"


HOSTILE_KEY_VALUES: dict[str, Any] = {
    "year 1 with a zone": {"$t": "0001-01-01T00:00:00+05:00"},
    "year 1": {"$t": "0001-01-01T00:00:00+00:00"},
    "year 9999": {"$t": "9999-12-31T23:59:59.999999-05:00"},
    "no zone": {"$t": "2026-01-01T00:00:00"},
    "time of a number": {"$t": 5},
    "lone surrogate": {"$v": "\ud800"},
    "NUL": {"$v": "a\x00b"},
    "2**80": {"$v": 2**80},
    "-2**80": {"$v": -(2**80)},
    "2**63": {"$v": 2**63},
    "NaN": {"$v": float("nan")},
    "1e308": {"$v": 1e308},
    "null": {"$v": None},
    "true": {"$v": True},
    "object": {"$v": {"a": [1, "\ud800"]}},
    "list": {"$v": [1, 2]},
    "deep": {"$v": json.loads("[" * 50 + "]" * 50)},
    "two kinds": {"$v": 1, "$t": "2026-01-01T00:00:00+00:00"},
    "bare": 5,
}
HOSTILE_OFFSETS: dict[str, Any] = {
    "2**80": 2**80,
    "-1": -1,
    "1.5": 1.5,
    "string": "1",
    "true": True,
    "null": None,
    "past the end": 10**6,
}


def _hostile_variants(real: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """`real` (a token's body) with each key value, or its offset, replaced by
    hostile ones in turn; then whole bodies of odd shapes for the same query."""
    for index in range(len(real.get("k", []))):
        for label, value in HOSTILE_KEY_VALUES.items():
            key = list(real["k"])
            key[index] = value
            yield f"key[{index}] {label}", {**real, "k": key}
    for label, offset in HOSTILE_OFFSETS.items():
        yield f"offset {label}", {**real, "o": offset}
    for label, body in HOSTILE_BODIES.items():
        yield label, {**body, "q": real["q"]} if isinstance(body["q"], str) else body
    yield "key and offset", {**real, "k": real.get("k", [{"$v": 1}]), "o": 1}
    yield "key too long", {**real, "k": [*real.get("k", []), {"$v": 1}]}
    yield "key empty", {**real, "k": []}
    yield "not an object", [real]


def test_a_signed_token_holding_anything_is_never_a_server_error(
    stubs: Any, server: StrataProcess, paged_namespace: str
) -> None:
    """Signed with the database's key (read here as an operator could), these bodies
    pass the signature check and reach the decoding and the adapters, with the
    query's own digest and values of every hostile kind."""
    key = database_key(server)
    watch = LogWatch(server)
    for method in PAGED:
        real = _page(stubs.channel, method, paged_namespace).next_page_token
        assert _signs(key, real), "the test signs as the server does"
        for label, body in _hostile_variants(json.loads(_unb64(real.partition(".")[0]))):
            try:
                _page(stubs.channel, method, paged_namespace, _signed(key, body))
            except grpc.RpcError as error:
                assert error.code() not in CALLER_FAULT_CODES, (
                    f"{method.name} {label}: {error.code().name} {error.details()}"
                )
    assert "Traceback" not in watch.new()


KEY = "a page token key for this test, 16 bytes or more"


def test_a_configured_key_signs_and_tokens_under_another_key_are_refused(
    database_url: Callable[[str], str], tmp_path: Any
) -> None:
    """STRATA_PAGE_TOKEN_KEY, when set, is the key: a token the test signs with it
    is good, one the same database's kept key signed is refused. (The key is shape
    independent: one SQLite server shows it.)"""
    url = database_url("sqlite")
    plain = StrataProcess(url, tmp_path / "plain")
    plain.start()
    try:
        keyed = StrataProcess(url, tmp_path / "keyed", STRATA_PAGE_TOKEN_KEY=KEY)
        keyed.start()
        try:
            with plain.channel() as to_plain, keyed.channel() as to_keyed:
                namespace = "configured-key"
                records = RecordServiceStub(to_keyed)
                for n in range(3):
                    records.CreateRecord(
                        records_pb2.CreateRecordRequest(
                            namespace=namespace, collection="hostile", record_id=f"r{n}"
                        )
                    )
                method = next(m for m in PAGED if m.name == "ListRecords")
                own = _page(to_keyed, method, namespace).next_page_token
                assert _signs(KEY.encode(), own)
                body = json.loads(_unb64(own.partition(".")[0]))
                assert _items(_page(to_keyed, method, namespace, _signed(KEY.encode(), body)))
                foreign = _page(to_plain, method, namespace).next_page_token
                expect_error(
                    lambda: _page(to_keyed, method, namespace, foreign),
                    INVALID,
                    "INVALID_ARGUMENT",
                    "page_token",
                )
                expect_error(
                    lambda: _page(to_plain, method, namespace, own),
                    INVALID,
                    "INVALID_ARGUMENT",
                    "page_token",
                )
        finally:
            keyed.stop()
    finally:
        plain.stop()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
