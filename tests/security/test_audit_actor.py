"""With token auth the audit log names the token, whatever `x-strata-actor` claims:
the claim is kept beside the name, never in its place. Token changes themselves
are audited under the namespace "*", which only a token for every namespace may
list."""

from __future__ import annotations

import grpc
import pytest

from strata.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    queue_pb2,
    queue_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
)
from tests.contract.helpers import to_struct
from tests.security.support import unique


def audit(secure, namespace: str, **filters: str) -> list[admin_pb2.AuditEntry]:
    return list(
        secure.admin()
        .ListAuditEntries(
            admin_pb2.ListAuditEntriesRequest(namespace=namespace, page_size=1000, **filters),
            timeout=30,
        )
        .entries
    )


def test_the_audit_actor_is_the_token_name_even_when_the_caller_claims_another(secure):
    namespace = unique("audited")
    name = unique("ci-bot")
    token = secure.token("writer", namespace, name=name)
    claiming = secure.channel(token, ("x-strata-actor", "root-admin"))
    plain = secure.channel(token)

    records_pb2_grpc.RecordServiceStub(claiming).CreateRecord(
        records_pb2.CreateRecordRequest(
            namespace=namespace, collection="c", record_id="r1", data=to_struct({"v": 1})
        ),
        timeout=30,
    )
    queue_pb2_grpc.QueueServiceStub(claiming).Enqueue(
        queue_pb2.EnqueueRequest(namespace=namespace, queue="q", payload=to_struct({})),
        timeout=30,
    )
    records_pb2_grpc.RecordServiceStub(plain).CreateRecord(
        records_pb2.CreateRecordRequest(
            namespace=namespace, collection="c", record_id="r2", data=to_struct({"v": 2})
        ),
        timeout=30,
    )

    entries = audit(secure, namespace)
    actors = {
        (entry.entity, entry.entity_id.rpartition("/")[2] or entry.entity_id): entry.actor
        for entry in entries
    }
    assert actors[("record", "r1")] == f"{name} (claims: root-admin)"
    assert actors[("record", "r2")] == name
    assert [e.actor for e in entries if e.entity == "job"] == [f"{name} (claims: root-admin)"]
    assert not [e for e in entries if e.actor == "root-admin"]
    assert not audit(secure, namespace, actor="root-admin")


def test_token_changes_are_audited_under_every_namespace_only(secure):
    name = unique("audited-token")
    secure.token("reader", "*", name=name)
    secure.revoke(name)
    entries = audit(secure, "*", entity="token", entity_id=name)
    assert [(e.action, e.actor) for e in entries] == [
        ("revoke_token", "root"),
        ("create_token", "root"),
    ]

    scoped = secure.token("admin", unique("ns"))
    admin = secure.channel(scoped)
    with pytest.raises(grpc.RpcError) as raised:
        admin_pb2_grpc.AdminServiceStub(admin).ListAuditEntries(
            admin_pb2.ListAuditEntriesRequest(namespace="*"), timeout=30
        )
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
