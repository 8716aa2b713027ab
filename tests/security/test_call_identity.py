"""Each call is judged by its own credentials, however calls interleave.

The server identifies a token's caller while grpc looks the method up and hands
the outcome to the method in the call's own task (api/auth.py): so these tests mix
callers on one connection, concurrently, and check that no call is served as, or
refused for, another call's token; and that the audit names each call's own token.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc

from strata.v1 import queue_pb2, queue_pb2_grpc, records_pb2, records_pb2_grpc
from tests.contract.helpers import to_struct
from tests.security.support import unique
from tests.security.test_audit_actor import audit

ROUNDS = 12


def test_interleaved_calls_on_one_connection_each_get_their_own_answer(secure):
    mine, theirs = unique("mine"), unique("theirs")
    writer = secure.token("writer", mine)
    reader = secure.token("reader", mine)
    stranger = secure.token("writer", theirs)
    records = records_pb2_grpc.RecordServiceStub(secure.process.channel())
    queue = queue_pb2_grpc.QueueServiceStub(secure.process.channel())
    get = records_pb2.GetRecordRequest(namespace=mine, collection="c", id="absent")
    enqueue = queue_pb2.EnqueueRequest(namespace=mine, queue="q", payload=to_struct({}))
    cases = [
        # (what is sent, the call, the code it must answer)
        ((("authorization", f"Bearer {writer}"),), records.GetRecord, get, "NOT_FOUND"),
        ((("authorization", f"bearer {reader}"),), records.GetRecord, get, "NOT_FOUND"),
        ((), records.GetRecord, get, "UNAUTHENTICATED"),
        ((("authorization", "Bearer st_not-a-token"),), records.GetRecord, get, "UNAUTHENTICATED"),
        ((("authorization", f"Bearer {stranger}"),), records.GetRecord, get, "PERMISSION_DENIED"),
        ((("authorization", f"Bearer {reader}"),), queue.Enqueue, enqueue, "PERMISSION_DENIED"),
        ((("authorization", f"Bearer {writer}"),), queue.Enqueue, enqueue, "OK"),
    ]

    def answer(case: tuple) -> str:
        metadata, method, request, _ = case
        try:
            method(request, metadata=metadata, timeout=30)
        except grpc.RpcError as error:
            return error.code().name
        return "OK"

    calls = cases * ROUNDS
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(answer, calls))
    assert answers == [expected for *_, expected in calls]


def test_interleaved_writers_are_each_audited_under_their_own_token(secure):
    namespace = unique("two-writers")
    names = [unique("writer-a"), unique("writer-b")]
    tokens = {name: secure.token("writer", namespace, name=name) for name in names}
    queue = queue_pb2_grpc.QueueServiceStub(secure.process.channel())

    def enqueue(index: int) -> tuple[str, str]:
        name = names[index % 2]
        job = queue.Enqueue(
            queue_pb2.EnqueueRequest(namespace=namespace, queue="q", payload=to_struct({})),
            metadata=(("authorization", f"Bearer {tokens[name]}"),),
            timeout=30,
        )
        return job.id, name

    with ThreadPoolExecutor(8) as pool:
        made = dict(pool.map(enqueue, range(4 * ROUNDS)))

    entries = audit(secure, namespace, entity="job")
    actors = {entry.entity_id.rpartition("/")[2]: entry.actor for entry in entries}
    assert {job: actors.get(job) for job in made} == made
