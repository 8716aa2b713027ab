"""Unit tests of the Python client's pure logic: error mapping, retry schedule,
request building and conversions. No server; end-to-end tests live elsewhere."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import any_pb2
from google.protobuf.empty_pb2 import Empty
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

import strata
from strata import _admin_requests, _record_requests, writes
from strata._convert import dict_from_struct, struct_from_dict
from strata._retry import RetrySchedule, backoff_delays
from strata.v1 import admin_pb2, records_pb2, transaction_pb2

# --- a failed call as a stub raises it -------------------------------------------


class FakeRpcError(grpc.RpcError):
    """What a sync stub raises: an RpcError that is also the call's grpc.Call."""

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str | None,
        trailing_metadata: Sequence[tuple[str, str | bytes]] = (),
    ) -> None:
        super().__init__()
        self._code = code
        self._details = details
        self._trailing_metadata = tuple(trailing_metadata)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str | None:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._trailing_metadata


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def server_error(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    metadata: dict[str, str] | None = None,
    violations: Sequence[tuple[str, str]] = (),
) -> FakeRpcError:
    """A failed call carrying the google.rpc.Status the Strata server sends."""
    details = [
        _packed(error_details_pb2.ErrorInfo(reason=reason, domain="strata.v1", metadata=metadata))
    ]
    if violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in violations
            ]
        )
        details.append(_packed(bad_request))
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    grpc_status = rpc_status.to_status(status)
    return FakeRpcError(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)


# --- errors ------------------------------------------------------------------


def test_version_conflict_carries_current_version() -> None:
    err = server_error(
        grpc.StatusCode.ABORTED,
        "record t-1 is at version 7",
        "VERSION_CONFLICT",
        {"current_version": "7"},
    )

    error = strata.from_rpc_error(err)

    assert type(error) is strata.VersionConflict
    assert isinstance(error, strata.Aborted)
    assert error.current_version == 7
    assert error.code is grpc.StatusCode.ABORTED
    assert error.reason == "VERSION_CONFLICT"
    assert error.message == "record t-1 is at version 7"
    assert str(error) == "record t-1 is at version 7"
    assert error.metadata == {"current_version": "7"}
    assert error.write_index is None


def test_invalid_argument_carries_field_violations() -> None:
    err = server_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "collection: must start with a letter",
        "INVALID_ARGUMENT",
        violations=[("collection", "must start with a letter"), ("id", "too long")],
    )

    error = strata.from_rpc_error(err)

    assert type(error) is strata.InvalidArgument
    assert error.violations == [("collection", "must start with a letter"), ("id", "too long")]
    assert error.reason == "INVALID_ARGUMENT"


def test_commit_error_names_the_failing_write() -> None:
    err = server_error(grpc.StatusCode.NOT_FOUND, "no record x", "NOT_FOUND", {"write_index": "2"})

    error = strata.from_rpc_error(err)

    assert type(error) is strata.NotFound
    assert error.write_index == 2


def test_other_aborted_reasons_are_plain_aborted() -> None:
    err = server_error(grpc.StatusCode.ABORTED, "lost a race", "CONCURRENT_MODIFICATION")

    error = strata.from_rpc_error(err)

    assert type(error) is strata.Aborted
    assert error.reason == "CONCURRENT_MODIFICATION"


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", strata.InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, "NOT_FOUND", strata.NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, "ALREADY_EXISTS", strata.AlreadyExists),
        (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED", strata.AlreadyExists),
        (grpc.StatusCode.FAILED_PRECONDITION, "FAILED_PRECONDITION", strata.FailedPrecondition),
        (grpc.StatusCode.OUT_OF_RANGE, "OUT_OF_RANGE", strata.OutOfRange),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_LARGE", strata.ResourceExhausted),
        (grpc.StatusCode.UNAVAILABLE, "BACKEND_UNAVAILABLE", strata.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "", strata.DeadlineExceeded),
        (grpc.StatusCode.PERMISSION_DENIED, "", strata.PermissionDenied),
        (grpc.StatusCode.UNAUTHENTICATED, "", strata.Unauthenticated),
        (grpc.StatusCode.INTERNAL, "", strata.StrataError),
        (grpc.StatusCode.UNIMPLEMENTED, "", strata.StrataError),
    ],
)
def test_each_code_maps_to_its_class(
    code: grpc.StatusCode, reason: str, cls: type[strata.StrataError]
) -> None:
    error = strata.from_rpc_error(server_error(code, "boom", reason))

    assert type(error) is cls
    assert error.code is code
    assert error.reason == reason


def test_error_without_details_maps_by_code() -> None:
    error = strata.from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connect failed"))

    assert type(error) is strata.Unavailable
    assert (error.reason, error.metadata, error.violations) == ("", {}, [])
    assert error.message == "connect failed"


def test_error_without_message_says_its_code() -> None:
    error = strata.from_rpc_error(FakeRpcError(grpc.StatusCode.CANCELLED, None))

    assert type(error) is strata.StrataError
    assert error.code is grpc.StatusCode.CANCELLED
    assert error.message == "CANCELLED"


def test_status_inconsistent_with_the_call_is_ignored() -> None:
    # A proxy that rewrites the status but keeps the trailer must not break mapping.
    status = status_pb2.Status(
        code=code_pb2.NOT_FOUND,
        message="no record",
        details=[_packed(error_details_pb2.ErrorInfo(reason="NOT_FOUND"))],
    )
    trailer = [("grpc-status-details-bin", status.SerializeToString())]
    err = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "upstream reset", trailer)

    error = strata.from_rpc_error(err)

    assert type(error) is strata.Unavailable
    assert error.reason == ""


def test_asyncio_errors_map_too() -> None:
    sync_err = server_error(
        grpc.StatusCode.ABORTED, "stale", "VERSION_CONFLICT", {"current_version": "3"}
    )
    err = grpc.aio.AioRpcError(
        code=sync_err.code(),
        initial_metadata=grpc.aio.Metadata(),
        trailing_metadata=grpc.aio.Metadata(*sync_err.trailing_metadata()),
        details=sync_err.details(),
    )

    error = strata.from_rpc_error(err)

    assert isinstance(error, strata.VersionConflict)
    assert error.current_version == 3


def test_errors_can_be_raised_by_hand_with_their_code() -> None:
    error = strata.NotFound()

    assert error.code is grpc.StatusCode.NOT_FOUND
    assert error.message == "The requested entity does not exist or has expired."
    assert strata.VersionConflict("x").current_version == 0


# --- retries -----------------------------------------------------------------


def test_backoff_grows_by_multiplier_up_to_the_cap() -> None:
    policy = strata.RetryPolicy(initial_backoff=0.05, max_backoff=2.0, multiplier=2.0)

    delays = list(itertools.islice(backoff_delays(policy, rand=lambda: 0.0), 8))

    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0])


def test_jitter_only_shortens_a_delay_and_by_at_most_its_fraction() -> None:
    policy = strata.RetryPolicy(jitter=0.2)
    bases = list(itertools.islice(backoff_delays(policy, rand=lambda: 0.0), 12))

    for _ in range(50):
        delays = itertools.islice(backoff_delays(policy), 12)
        for base, delay in zip(bases, delays, strict=True):
            assert base * 0.8 <= delay <= base <= policy.max_backoff

    almost_one = list(itertools.islice(backoff_delays(policy, rand=lambda: 0.999999), 3))
    assert almost_one == pytest.approx([0.04, 0.08, 0.16], rel=1e-5)


def test_huge_attempt_counts_do_not_overflow() -> None:
    policy = strata.RetryPolicy(max_attempts=10_000, multiplier=1000.0)

    *_, last = itertools.islice(backoff_delays(policy, rand=lambda: 0.0), 5_000)

    assert last == policy.max_backoff


def _retries(schedule: RetrySchedule, err: grpc.RpcError) -> Iterator[float]:
    while True:
        yield schedule.backoff(err)


def test_reads_are_retried_after_unavailable_until_attempts_run_out() -> None:
    policy = strata.RetryPolicy(max_attempts=4, jitter=0.0)
    schedule = RetrySchedule(policy, idempotent=True)
    err = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down")

    delays: list[float] = []
    with pytest.raises(strata.Unavailable) as raised:
        delays.extend(_retries(schedule, err))

    assert delays == pytest.approx([0.05, 0.1, 0.2])  # 3 retries after the 1st attempt
    assert raised.value.__cause__ is err


def test_writes_without_request_id_are_not_retried_after_unavailable() -> None:
    schedule = RetrySchedule(strata.RetryPolicy(), idempotent=False)

    with pytest.raises(strata.Unavailable):
        schedule.backoff(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down"))


def test_concurrent_modification_is_retried_even_for_writes() -> None:
    schedule = RetrySchedule(strata.RetryPolicy(jitter=0.0), idempotent=False)
    err = server_error(grpc.StatusCode.ABORTED, "lost a race", "CONCURRENT_MODIFICATION")

    assert schedule.backoff(err) == pytest.approx(0.05)


@pytest.mark.parametrize(
    "err",
    [
        server_error(grpc.StatusCode.ABORTED, "stale", "VERSION_CONFLICT"),
        server_error(grpc.StatusCode.NOT_FOUND, "missing", "NOT_FOUND"),
        FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "slow"),
        FakeRpcError(grpc.StatusCode.INTERNAL, "bug"),
    ],
)
def test_other_errors_are_raised_at_once(err: FakeRpcError) -> None:
    schedule = RetrySchedule(strata.RetryPolicy(), idempotent=True)

    with pytest.raises(strata.StrataError) as raised:
        schedule.backoff(err)
    assert raised.value.code is err.code()


def test_one_attempt_turns_retries_off() -> None:
    schedule = RetrySchedule(strata.RetryPolicy(max_attempts=1), idempotent=True)

    with pytest.raises(strata.Unavailable):
        schedule.backoff(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"initial_backoff": 0.0},
        {"initial_backoff": 3.0, "max_backoff": 2.0},
        {"multiplier": 0.5},
        {"jitter": 1.5},
    ],
)
def test_retry_policy_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        strata.RetryPolicy(**kwargs)


# --- conversions -------------------------------------------------------------


def test_json_numbers_come_back_as_int_when_whole() -> None:
    data = {
        "n": 3,
        "f": 2.5,
        "big": 2**60,
        "neg": -7,
        "s": "x",
        "b": True,
        "none": None,
        "nested": {"list": [1, "two", {"three": 3.0}, [False]]},
    }

    back = dict_from_struct(struct_from_dict(data))

    assert back == data
    assert type(back["n"]) is int
    assert type(back["f"]) is float
    assert type(back["big"]) is float  # beyond 2**53 a double is not exact
    assert type(back["nested"]["list"][2]["three"]) is int


@pytest.mark.parametrize("data", [{"when": datetime.now(UTC)}, {1: "x"}, {"x": {2: 3}}, ["x"]])
def test_non_json_data_is_a_type_error(data: Any) -> None:
    with pytest.raises(TypeError):
        struct_from_dict(data)


def _record_message(**overrides: Any) -> records_pb2.Record:
    message = records_pb2.Record(
        namespace="acme",
        collection="tickets",
        id="t-1",
        data=struct_from_dict({"title": "Printer on fire", "size": 3}),
        version=2,
    )
    message.create_time.FromDatetime(datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC))
    message.update_time.FromDatetime(datetime(2026, 1, 3, tzinfo=UTC))
    for name, value in overrides.items():
        getattr(message, name).FromDatetime(value)
    return message


def test_record_from_proto() -> None:
    record = strata.Record.from_proto(_record_message())

    assert record == strata.Record(
        namespace="acme",
        collection="tickets",
        id="t-1",
        data={"title": "Printer on fire", "size": 3},
        version=2,
        create_time=datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC),
        update_time=datetime(2026, 1, 3, tzinfo=UTC),
        expire_time=None,
    )
    assert record.create_time.tzinfo is UTC
    assert hash(record) == hash(strata.Record.from_proto(_record_message()))


def test_record_expire_time_is_aware() -> None:
    expires = datetime(2030, 1, 1, tzinfo=UTC)

    record = strata.Record.from_proto(_record_message(expire_time=expires))

    assert record.expire_time == expires
    assert record.expire_time is not None and record.expire_time.tzinfo is UTC


# --- request building --------------------------------------------------------


def test_create_record_request() -> None:
    cet = timezone(timedelta(hours=1))
    rpc = _record_requests.create_record(
        "tickets",
        {"title": "x", "tags": ["a"]},
        record_id="t-1",
        expire_time=datetime(2030, 1, 1, 1, 0, tzinfo=cet),
        request_id="req-1",
    )

    request = rpc.request("acme")

    assert (rpc.service, rpc.method, rpc.idempotent) == ("records", "CreateRecord", True)
    assert isinstance(request, records_pb2.CreateRecordRequest)
    assert request.namespace == "acme"
    assert (request.collection, request.record_id, request.request_id) == (
        "tickets",
        "t-1",
        "req-1",
    )
    assert dict_from_struct(request.data) == {"title": "x", "tags": ["a"]}
    assert request.expire_time.ToDatetime(tzinfo=UTC) == datetime(2030, 1, 1, tzinfo=UTC)


def test_create_without_request_id_is_not_retried_after_unavailable() -> None:
    rpc = _record_requests.create_record("tickets", {})

    request = rpc.request("default")

    assert rpc.idempotent is False
    assert isinstance(request, records_pb2.CreateRecordRequest)
    assert request.request_id == ""
    assert request.record_id == ""
    assert not request.HasField("expire_time")


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="expire_time must be timezone-aware"):
        _record_requests.create_record("tickets", {}, expire_time=datetime(2030, 1, 1))


def test_namespace_per_call_wins_over_the_default() -> None:
    assert _record_requests.get_record("c", "i").request("default").namespace == "default"  # type: ignore[attr-defined]
    rpc = _record_requests.get_record("c", "i", namespace="other")
    assert rpc.request("default").namespace == "other"  # type: ignore[attr-defined]


def test_update_record_request() -> None:
    rpc = _record_requests.update_record(
        "tickets", "t-1", {"state": "closed"}, update_mask=["data.state"], expected_version=4
    )

    request = rpc.request("acme")

    assert rpc.idempotent is False
    assert isinstance(request, records_pb2.UpdateRecordRequest)
    assert list(request.update_mask.paths) == ["data.state"]
    assert request.expected_version == 4
    assert request.allow_missing is False
    assert dict_from_struct(request.data) == {"state": "closed"}


def test_update_without_mask_or_version_replaces_unconditionally() -> None:
    request = _record_requests.update_record("tickets", "t-1", {}, allow_missing=True).request("x")

    assert isinstance(request, records_pb2.UpdateRecordRequest)
    assert not request.HasField("update_mask")
    assert request.expected_version == 0
    assert request.allow_missing is True


def test_update_mask_must_be_a_list() -> None:
    with pytest.raises(TypeError):
        _record_requests.update_record("c", "i", {}, update_mask="data.state")


def test_unknown_options_are_refused() -> None:
    with pytest.raises(TypeError):
        _record_requests.update_record("c", "i", {}, expectedversion=3)  # type: ignore[call-arg]


def test_delete_record_request() -> None:
    rpc = _record_requests.delete_record("tickets", "t-1", expected_version=2)

    request = rpc.request("acme")

    assert isinstance(request, records_pb2.DeleteRecordRequest)
    assert (request.collection, request.id, request.expected_version) == ("tickets", "t-1", 2)
    assert rpc.parse(Empty()) is None


def test_batch_get_records() -> None:
    rpc = _record_requests.batch_get_records("tickets", ["t-1", "t-2"])
    response = records_pb2.BatchGetRecordsResponse(records=[_record_message()], missing_ids=["t-2"])

    request = rpc.request("acme")
    records, missing = rpc.parse(response)

    assert isinstance(request, records_pb2.BatchGetRecordsRequest)
    assert list(request.ids) == ["t-1", "t-2"]
    assert [r.id for r in records] == ["t-1"]
    assert missing == ["t-2"]
    with pytest.raises(TypeError):
        _record_requests.batch_get_records("tickets", "t-1")


def test_list_records_pages_carry_the_query_and_the_token() -> None:
    pages = _record_requests.list_records(
        "tickets", filter='data.state = "open"', order_by="data.rank desc", page_size=2
    )

    first, second = pages("").request("acme"), pages("tok-2").request("acme")

    assert isinstance(first, records_pb2.ListRecordsRequest)
    assert isinstance(second, records_pb2.ListRecordsRequest)
    assert first.page_token == ""
    assert second.page_token == "tok-2"
    for request in (first, second):
        assert (request.namespace, request.collection, request.page_size) == ("acme", "tickets", 2)
        assert (request.filter, request.order_by) == ('data.state = "open"', "data.rank desc")
    page = pages("").parse(
        records_pb2.ListRecordsResponse(records=[_record_message()], next_page_token="tok-2")
    )
    assert [r.id for r in page.items] == ["t-1"]
    assert page.next_page_token == "tok-2"


def test_search_records_yields_records_with_scores() -> None:
    pages = _record_requests.search_records("tickets", "printer fire", 10)
    response = records_pb2.SearchRecordsResponse(
        hits=[records_pb2.SearchHit(record=_record_message(), score=1.5)]
    )

    request = pages("").request("acme")
    page = pages("").parse(response)

    assert isinstance(request, records_pb2.SearchRecordsRequest)
    assert (request.query, request.page_size) == ("printer fire", 10)
    [(record, score)] = page.items
    assert (record.id, score) == ("t-1", 1.5)
    assert page.next_page_token == ""


def test_count_records() -> None:
    rpc = _record_requests.count_records("tickets", "data.size > 3")

    request = rpc.request("acme")

    assert isinstance(request, records_pb2.CountRecordsRequest)
    assert request.filter == "data.size > 3"
    assert rpc.parse(records_pb2.CountRecordsResponse(count=12)) == 12


def test_write_builders() -> None:
    create = writes.create("executions", {"state": "queued"}, record_id="ex-1")
    update = writes.update("counters", "n", {"n": 8}, expected_version=7, update_mask=["data.n"])
    delete = writes.delete("drafts", "ex-1", allow_missing=True)

    assert create.WhichOneof("operation") == "create"
    assert create.create.record_id == "ex-1"
    assert dict_from_struct(create.create.data) == {"state": "queued"}
    assert update.WhichOneof("operation") == "update"
    assert (update.update.expected_version, list(update.update.update_mask.paths)) == (
        7,
        ["data.n"],
    )
    assert delete.WhichOneof("operation") == "delete"
    assert delete.delete.allow_missing is True


def test_commit_request_and_results() -> None:
    batch = [writes.create("executions", {}), writes.delete("drafts", "d", allow_missing=True)]
    rpc = _record_requests.commit(iter(batch), request_id=strata.new_request_id())
    response = transaction_pb2.CommitResponse(
        results=[
            transaction_pb2.WriteResult(record=_record_message()),
            transaction_pb2.WriteResult(
                deleted=transaction_pb2.DeletedRecord(collection="drafts", id="d", existed=False)
            ),
        ]
    )

    request = rpc.request("acme")
    results = rpc.parse(response)

    assert rpc.idempotent is True
    assert isinstance(request, transaction_pb2.CommitRequest)
    assert list(request.writes) == batch
    assert len(request.request_id) == 36
    assert isinstance(results[0], strata.Record)
    assert results[1] == strata.Deleted(collection="drafts", id="d", existed=False)


def test_commit_refuses_what_is_not_a_write() -> None:
    with pytest.raises(TypeError, match=r"writes\[1\]"):
        _record_requests.commit([writes.delete("c", "i"), {"delete": {}}])  # type: ignore[list-item]


def test_commit_without_request_id_is_not_retried_after_unavailable() -> None:
    assert _record_requests.commit([writes.delete("c", "i")]).idempotent is False


def test_server_info_has_no_namespace() -> None:
    rpc = _admin_requests.server_info()

    assert isinstance(rpc.request("acme"), admin_pb2.GetServerInfoRequest)
    assert rpc.idempotent is True


def test_request_ids_are_fresh() -> None:
    assert strata.new_request_id() != strata.new_request_id()


# --- configuration and construction -----------------------------------------


def test_config_defaults() -> None:
    config = strata.ClientConfig()

    assert (config.target, config.namespace, config.timeout) == ("127.0.0.1:50051", "default", 10.0)
    assert config.retry == strata.RetryPolicy()
    assert ("grpc.max_send_message_length", 16 * 1024 * 1024) in config.grpc_options()
    assert ("grpc.max_receive_message_length", 16 * 1024 * 1024) in config.grpc_options()
    assert config.call_metadata() == ()
    assert strata.ClientConfig(actor="ci-bot").call_metadata() == (("x-strata-actor", "ci-bot"),)


def test_client_arguments_win_over_config() -> None:
    config = strata.ClientConfig(target="db:1", namespace="a", timeout=3.0, actor="me")

    with strata.Client("db:2", config=config, namespace="b") as client:
        assert client.config == strata.ClientConfig(
            target="db:2", namespace="b", timeout=3.0, actor="me"
        )
    with strata.Client(config=config) as client:
        assert client.config is not config
        assert client.config == config


def test_client_methods_have_the_documented_signatures() -> None:
    with strata.Client("127.0.0.1:1") as client:
        update = inspect.signature(client.update_record)
        assert list(update.parameters) == ["collection", "id", "data", "namespace", "options"]
        assert client.update_record.__doc__ == _record_requests.update_record.__doc__
        assert client.list_records.__name__ == "list_records"
        for name in ("list_records", "search_records", "count_records"):
            assert "namespace" in inspect.signature(getattr(client, name)).parameters


async def test_async_client_constructs_and_closes() -> None:
    async with strata.AsyncClient("127.0.0.1:1", namespace="acme") as client:
        assert client.config.namespace == "acme"
        assert inspect.signature(client.get_record) == inspect.signature(
            _record_requests.get_record
        ).replace(return_annotation=inspect.Signature.empty)
