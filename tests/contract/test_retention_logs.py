"""Retention of the audit log and the idempotency request log, over a real channel on
both shapes: a namespace's policy removes only its entries older than max_age, the
server defaults show as their own steps, and a policy for a log takes no selector.
Each test works in a namespace of its own."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest

from strata.v1 import admin_pb2, queue_pb2, records_pb2
from tests.contract.helpers import enqueue, expect_error, queue_stub, seconds
from tests.contract.test_retention import AGE, cleanup, counts, make_records, set_policy

AUDIT = admin_pb2.RETENTION_TARGET_AUDIT_LOG
REQUESTS = admin_pb2.RETENTION_TARGET_REQUEST_LOG


@pytest.fixture
def ns() -> str:
    return f"logs-{uuid.uuid4().hex[:12]}"


def audited(stubs, ns: str) -> list[tuple[str, str]]:
    """(action, entity_id) of every audit entry of the namespace, oldest first."""
    found = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(namespace=ns, page_size=1000)
    )
    return [(entry.action, entry.entity_id) for entry in reversed(found.entries)]


def test_audit_log_policy_removes_only_old_entries_of_its_namespace(stubs, ns, collection):
    other = f"{ns}-other"
    make_records(stubs, ns, collection, ["old1", "old2"])
    make_records(stubs, other, collection, ["theirs"])
    time.sleep(AGE + 0.2)
    make_records(stubs, ns, collection, ["new"])
    set_policy(stubs, ns, AUDIT, "")

    _, dry = cleanup(stubs, namespace=ns, dry_run=True)
    assert counts(dry)[("audit_log", "")] == 2
    # The server default (90 days) covers only namespaces without a policy.
    assert counts(dry)[("default_audit_log", "")] == 0
    assert len(audited(stubs, ns)) == 4  # nothing went on the dry run

    _, report = cleanup(stubs, namespace=ns)
    assert counts(report)[("audit_log", "")] == 2
    assert audited(stubs, ns) == [
        ("create", f"{collection}/new"),
        ("set_retention", "audit_log/"),
    ]
    # The records stay: only their history went. Another namespace keeps its own.
    found = stubs.records.BatchGetRecords(
        records_pb2.BatchGetRecordsRequest(
            namespace=ns, collection=collection, ids=["old1", "old2", "new"]
        )
    )
    assert len(found.records) == 3
    assert audited(stubs, other) == [("create", f"{collection}/theirs")]


def test_request_log_policy_forgets_old_request_ids_only(stubs, ns):
    qs = queue_stub(stubs.channel)

    def job(request_id: str) -> queue_pb2.Job:
        return enqueue(qs, "q", namespace=ns, request_id=request_id)

    old = job("old-request")
    assert job("old-request").id == old.id  # remembered: a retry gets the same job
    time.sleep(AGE + 0.2)
    fresh = job("fresh-request")
    set_policy(stubs, ns, REQUESTS, "")

    _, dry = cleanup(stubs, namespace=ns, dry_run=True)
    assert counts(dry)[("request_log", "")] == 1
    assert job("old-request").id == old.id  # a dry run forgets nothing

    _, report = cleanup(stubs, namespace=ns)
    assert counts(report)[("request_log", "")] == 1
    assert counts(report)[("default_request_log", "")] == 0
    # The old request_id is forgotten: its retry is a new job. The fresh one is not.
    assert job("old-request").id != old.id
    assert job("fresh-request").id == fresh.id


@pytest.mark.parametrize("target", [AUDIT, REQUESTS])
def test_a_log_policy_takes_no_selector(stubs, ns, target):
    expect_error(
        lambda: stubs.admin.SetRetentionPolicy(
            admin_pb2.SetRetentionPolicyRequest(
                namespace=ns, target=target, selector="x", max_age=seconds(60)
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="selector",
    )
    listed = stubs.admin.ListRetentionPolicies(admin_pb2.ListRetentionPoliciesRequest(namespace=ns))
    assert list(listed.policies) == []


def test_log_policies_are_listed_and_deleted(stubs, ns):
    set_policy(stubs, ns, AUDIT, "", 86400)
    set_policy(stubs, ns, REQUESTS, "", 3600)
    listed = stubs.admin.ListRetentionPolicies(admin_pb2.ListRetentionPoliciesRequest(namespace=ns))
    assert {(p.target, p.max_age.seconds) for p in listed.policies} == {
        (AUDIT, 86400),
        (REQUESTS, 3600),
    }
    stubs.admin.DeleteRetentionPolicy(
        admin_pb2.DeleteRetentionPolicyRequest(namespace=ns, target=AUDIT)
    )
    listed = stubs.admin.ListRetentionPolicies(admin_pb2.ListRetentionPoliciesRequest(namespace=ns))
    assert [p.target for p in listed.policies] == [REQUESTS]


def test_cleanup_status_before_any_scheduled_pass(stubs):
    # The session's servers schedule their first pass an hour after start, and a
    # RunCleanup is not a scheduled pass: nothing to show yet.
    cleanup(stubs, namespace=f"status-{uuid.uuid4().hex[:8]}")
    status = stubs.admin.GetCleanupStatus(admin_pb2.GetCleanupStatusRequest())
    assert not status.HasField("running")
    assert not status.HasField("last")
