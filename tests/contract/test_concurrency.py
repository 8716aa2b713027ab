"""Many callers writing one record at once: optimistic concurrency without lost updates."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from tests.conftest import Stubs
from tests.contract.helpers import (
    commit,
    count,
    create,
    data_of,
    details_of,
    get,
    stubs_over,
    update,
    update_write,
)
from tests.support.server import StrataProcess

WRITERS = 50
ROUNDS = 4
CHANNELS = 5


@pytest.fixture
def callers(server: StrataProcess) -> Iterator[list[Stubs]]:
    """Stubs over several channels, so concurrent calls travel separate connections."""
    channels = [server.channel() for _ in range(CHANNELS)]
    yield [stubs_over(channel) for channel in channels]
    for channel in channels:
        channel.close()


def _race(callers: list[Stubs], attempt: Callable[[Stubs, int], Any]) -> list[Any]:
    """Run attempt(stubs, i) for i in range(WRITERS) at once; each result is the
    response or the RpcError it raised."""
    barrier = threading.Barrier(WRITERS)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return attempt(callers[i % len(callers)], i)
        except grpc.RpcError as error:
            return error

    with ThreadPoolExecutor(WRITERS) as pool:
        return list(pool.map(run, range(WRITERS)))


def _split(outcomes: list[Any]) -> tuple[dict[int, Any], list[grpc.RpcError]]:
    wins = {i: o for i, o in enumerate(outcomes) if not isinstance(o, grpc.RpcError)}
    return wins, [o for o in outcomes if isinstance(o, grpc.RpcError)]


def _described(errors: list[grpc.RpcError]) -> list[str]:
    return [f"{error.code().name}: {error.details()}" for error in errors]


def test_expected_version_lets_exactly_one_writer_win_each_round(stubs, callers, collection):
    create(stubs, collection, "hot", {"counter": 0, "winners": []})
    successes = 0
    for round_number in range(ROUNDS):
        current = get(stubs, collection, "hot")
        state = data_of(current)

        def attempt(caller: Stubs, i: int, state=state, version=current.version) -> Any:
            data = {"counter": state["counter"] + 1, "winners": [*state["winners"], f"w{i}"]}
            return update(caller, collection, "hot", data, expected_version=version)

        wins, losses = _split(_race(callers, attempt))
        assert len(wins) == 1, f"round {round_number}: {len(wins)} writers won"
        [(winner, record)] = wins.items()
        assert record.version == current.version + 1
        for loss in losses:
            assert loss.code() == grpc.StatusCode.ABORTED, f"{loss.code()}: {loss.details()}"
            info, _ = details_of(loss)
            assert info.reason == "VERSION_CONFLICT"
            assert info.metadata["current_version"] == str(current.version + 1)
        successes += 1
        assert data_of(get(stubs, collection, "hot"))["winners"][-1] == f"w{winner}"

    final = get(stubs, collection, "hot")
    assert final.version == successes + 1
    assert data_of(final)["counter"] == successes
    assert len(data_of(final)["winners"]) == successes


def test_concurrent_merges_lose_no_update(stubs, callers, collection):
    create(stubs, collection, "merged", {"base": True})
    outcomes = _race(
        callers,
        lambda caller, i: update(caller, collection, "merged", {f"k{i}": i}, mask=[f"data.k{i}"]),
    )
    wins, losses = _split(outcomes)
    assert not losses, _described(losses)
    assert sorted(record.version for record in wins.values()) == list(range(2, WRITERS + 2))
    final = get(stubs, collection, "merged")
    assert final.version == WRITERS + 1
    assert data_of(final) == {"base": True, **{f"k{i}": i for i in range(WRITERS)}}


def test_concurrent_creates_of_one_id_let_exactly_one_win(stubs, callers, collection):
    outcomes = _race(callers, lambda caller, i: create(caller, collection, "once", {"by": i}))
    wins, losses = _split(outcomes)
    assert len(wins) == 1
    assert {loss.code() for loss in losses} == {grpc.StatusCode.ALREADY_EXISTS}
    [(winner, record)] = wins.items()
    assert get(stubs, collection, "once") == record
    assert data_of(record) == {"by": winner}


def test_concurrent_retries_of_one_request_id_write_once(stubs, callers, collection):
    outcomes = _race(
        callers, lambda caller, i: create(caller, collection, data={"a": 1}, request_id=collection)
    )
    wins, losses = _split(outcomes)
    assert not losses, _described(losses)
    first = next(iter(wins.values()))
    assert all(record == first for record in wins.values())
    assert count(stubs, collection) == 1


def test_concurrent_upserts_of_a_missing_record_lose_no_update(stubs, callers, collection):
    outcomes = _race(
        callers,
        lambda caller, i: update(caller, collection, "up", {"by": i}, allow_missing=True),
    )
    wins, losses = _split(outcomes)
    for loss in losses:  # a retryable conflict is allowed, a lost write is not
        assert loss.code() == grpc.StatusCode.ABORTED, f"{loss.code()}: {loss.details()}"
    assert sorted(record.version for record in wins.values()) == list(range(1, len(wins) + 1))
    final = get(stubs, collection, "up")
    assert final.version == len(wins)
    [last] = [i for i, record in wins.items() if record.version == final.version]
    assert data_of(final) == {"by": last}


def test_concurrent_commits_over_the_same_records_all_apply(stubs, callers, collection):
    create(stubs, collection, "a", {})
    create(stubs, collection, "b", {})

    def attempt(caller: Stubs, i: int) -> Any:
        order = ["a", "b"] if i % 2 else ["b", "a"]  # opposite orders must not deadlock
        writes = [update_write(collection, key, {f"k{i}": i}, mask=[f"data.k{i}"]) for key in order]
        return commit(caller, writes)

    _, losses = _split(_race(callers, attempt))
    assert not losses, _described(losses)
    for key in ("a", "b"):
        record = get(stubs, collection, key)
        assert record.version == WRITERS + 1
        assert data_of(record) == {f"k{i}": i for i in range(WRITERS)}
