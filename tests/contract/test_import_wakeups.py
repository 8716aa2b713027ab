"""ImportNamespace wakes what it wrote: a queue or collection that nobody writes to
rests between safety re-checks minutes apart, so without the import's wakeups a
long poll or a watch would not see the imported rows until then."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc

from strata.v1 import records_pb2
from tests.contract.archive_support import export, import_, namespace
from tests.contract.helpers import create, enqueue, lease, queue_stub, unique
from tests.support.server import StrataProcess

WAIT = 10.0
"""The long poll's wait: far past what a wakeup takes, far short of a safety re-check."""


def _exported(server: StrataProcess, stubs: Any, *, queue: str = "", collection: str = "") -> bytes:
    """An archive of a fresh namespace holding one job of `queue` and one record of
    `collection` (each when named)."""
    source = namespace()
    with server.channel() as channel:
        if queue:
            enqueue(queue_stub(channel), queue, {"from": "import"}, namespace=source)
        if collection:
            create(stubs, collection, "imported", {"from": "import"}, namespace=source)
        return export(channel, source).data


def test_an_import_wakes_a_long_poll_on_a_queue_it_fills(server, stubs):
    queue = unique("q")
    data = _exported(server, stubs, queue=queue)
    target = namespace()
    results: list[Any] = []

    def poll() -> None:
        try:
            results.append(lease(queue_stub(stubs.channel), queue, 1, 30, WAIT, namespace=target))
        except grpc.RpcError as error:  # reported by the main thread
            results.append(error)

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.5)  # the poll found nothing and waits
    with server.channel() as channel:
        import_(channel, data, target)
    imported_at = time.monotonic()
    thread.join(WAIT + 5)
    assert not thread.is_alive()
    [jobs] = results
    assert not isinstance(jobs, grpc.RpcError), jobs
    assert [job.payload["from"] for job in jobs] == ["import"]
    after = time.monotonic() - imported_at
    assert after < WAIT / 2, f"the poll returned {after:.2f} s after the import"


def test_an_import_wakes_a_watch_on_a_collection_it_writes(server, stubs):
    collection = unique("c")
    data = _exported(server, stubs, collection=collection)
    target = namespace()
    call = stubs.records.WatchRecords(
        records_pb2.WatchRecordsRequest(namespace=target, collection=collection), timeout=WAIT
    )
    assert next(call).WhichOneof("event") == "started"
    with server.channel() as channel:
        import_(channel, data, target)
    imported_at = time.monotonic()
    message = next(call)  # DEADLINE_EXCEEDED if the watch was not woken
    call.cancel()
    assert message.WhichOneof("event") == "change"
    assert message.change.record_id == "imported"
    after = time.monotonic() - imported_at
    assert after < WAIT / 2, f"the watch saw the record {after:.2f} s after the import"
