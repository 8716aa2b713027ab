"""WatchRecords after the audit log's retention purged changes, over a real channel
on both shapes: a cursor the purge went past fails with FAILED_PRECONDITION and
reason CURSOR_EXPIRED (the horizon in its metadata) instead of resuming past the
gap; a cursor at or after the horizon, and a watch from now, get every later change;
another namespace's cursors are untouched. Each test works in a namespace of its own."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest

from strata import CursorExpired, from_rpc_error
from strata.v1 import admin_pb2
from tests.contract.helpers import expect_error, raised_by
from tests.contract.test_retention import AGE, cleanup, counts, make_records, set_policy
from tests.contract.test_watch_records import Watch

AUDIT = admin_pb2.RETENTION_TARGET_AUDIT_LOG


@pytest.fixture
def ns() -> str:
    return f"horizon-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def watches():
    opened: list[Watch] = []
    yield lambda *args, **fields: opened.append(Watch(*args, **fields)) or opened[-1]
    for watch in opened:
        watch.close()


def test_a_cursor_the_purge_went_past_is_refused_and_later_ones_resume(
    stubs, ns, collection, watches
):
    first = watches(stubs, collection, namespace=ns)
    make_records(stubs, ns, collection, ["old1", "old2"])
    old = first.changes(2)
    first.close()
    time.sleep(AGE + 0.2)
    make_records(stubs, ns, collection, ["new1"])
    set_policy(stubs, ns, AUDIT, "")
    _, report = cleanup(stubs, namespace=ns)
    assert counts(report)[("audit_log", "")] == 2  # the creates of old1 and old2

    # The start of the first watch and old1's cursor lie before old2's purged
    # change: resuming from them would skip it.
    horizon = old[1].cursor
    for cursor in (first.started, old[0].cursor):
        info, _ = expect_error(
            lambda cursor=cursor: Watch(stubs, collection, namespace=ns, from_cursor=cursor),
            grpc.StatusCode.FAILED_PRECONDITION,
            reason="CURSOR_EXPIRED",
            horizon=horizon,
            cursor=cursor,
        )
        assert info.metadata["purged_through"]
    # The Python client types it, so a caller can tell it from a retryable error.
    typed = from_rpc_error(
        raised_by(lambda: Watch(stubs, collection, namespace=ns, from_cursor=first.started))
    )
    assert isinstance(typed, CursorExpired) and typed.horizon == horizon

    # From the horizon (old2's own cursor: it saw every purged change) the watch
    # gets every later change, and goes on with new ones.
    resumed = watches(stubs, collection, namespace=ns, from_cursor=horizon)
    assert [c.record_id for c in resumed.changes(1)] == ["new1"]
    make_records(stubs, ns, collection, ["new2"])
    assert [c.record_id for c in resumed.changes(1)] == ["new2"]
    assert resumed.silent()


def test_a_watch_from_now_is_unaffected_by_a_purge(stubs, ns, collection, watches):
    make_records(stubs, ns, collection, ["old"])
    time.sleep(AGE + 0.2)
    set_policy(stubs, ns, AUDIT, "")
    cleanup(stubs, namespace=ns)
    now = watches(stubs, collection, namespace=ns)
    make_records(stubs, ns, collection, ["new"])
    [change] = now.changes(1)
    assert change.record_id == "new"
    # Its cursors resume, as does the start the server named.
    again = watches(stubs, collection, namespace=ns, from_cursor=now.started)
    assert [c.record_id for c in again.changes(1)] == ["new"]


def test_a_purge_leaves_another_namespaces_cursors_alone(stubs, ns, collection, watches):
    other = f"{ns}-other"
    theirs = watches(stubs, collection, namespace=other)
    make_records(stubs, other, collection, ["a"])
    make_records(stubs, ns, collection, ["old"])
    time.sleep(AGE + 0.2)
    make_records(stubs, other, collection, ["b"])
    set_policy(stubs, ns, AUDIT, "")
    cleanup(stubs, namespace=ns)
    assert [c.record_id for c in theirs.changes(2)] == ["a", "b"]
    replay = watches(stubs, collection, namespace=other, from_cursor=theirs.started)
    assert [c.record_id for c in replay.changes(2)] == ["a", "b"]
