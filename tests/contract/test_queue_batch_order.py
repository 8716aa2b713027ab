"""Jobs of one BatchEnqueue, alike in priority and run_time, lease in request order."""

from __future__ import annotations

from strata.v1 import queue_pb2
from tests.conftest import Stubs
from tests.contract.helpers import lease, payload_of, queue_stub, to_struct, unique


def test_batch_leases_in_request_order(stubs: Stubs) -> None:
    queues = queue_stub(stubs.channel)
    queue = unique("q")
    queues.BatchEnqueue(
        queue_pb2.BatchEnqueueRequest(
            jobs=[
                queue_pb2.EnqueueRequest(queue=queue, payload=to_struct({"n": n}))
                for n in range(200)
            ]
        )
    )
    leased = lease(queues, queue, max_jobs=200)
    assert [payload_of(job)["n"] for job in leased] == list(range(200))
