"""RunCleanup of more expired records than one purge batch takes, over a real channel
on both shapes: every removal reaches WatchRecords and the audit log, whichever
batch removed it, with the changed_fields a delete names."""

from __future__ import annotations

import time
import uuid
from datetime import UTC
from typing import Any

from strata.v1 import admin_pb2, records_pb2
from strata_server.services.cleanup_service import BATCH
from tests.contract.helpers import commit, create_write, from_now
from tests.contract.test_watch_records import DELETED, Watch

RECORDS = 2 * BATCH + 7
"""Two full batches and a short third one."""
DATA = {"n": 1, "b": True, "é": "x", "A": [1]}
FIELDS = ["data.A", "data.b", "data.n", "data.é"]
"""A delete's changed_fields of DATA: every key, sorted by code point."""


def audit_entries(stubs: Any, ns: str, action: str) -> list[admin_pb2.AuditEntry]:
    """Every `action` entry of `ns`, page by page."""
    entries: list[admin_pb2.AuditEntry] = []
    token = ""
    while True:
        page = stubs.admin.ListAuditEntries(
            admin_pb2.ListAuditEntriesRequest(
                namespace=ns, action=action, page_size=1000, page_token=token
            )
        )
        entries += page.entries
        token = page.next_page_token
        if not token:
            return entries


def test_a_cleanup_of_several_batches_leaves_every_removal_seen(stubs: Any) -> None:
    ns = f"batches-{uuid.uuid4().hex[:12]}"
    collection = "sessions"
    ids = [f"s{i:05d}" for i in range(RECORDS)]
    watch = Watch(stubs, collection, namespace=ns)
    try:
        for start in range(0, RECORDS, BATCH):
            expire = from_now(1.5)  # each commit's own: a busy host may take a while
            writes = [
                create_write(collection, id, DATA, expire_time=expire)
                for id in ids[start : start + BATCH]
            ]
            commit(stubs, writes, namespace=ns)
        created = watch.changes(RECORDS)
        assert sorted(change.record_id for change in created) == ids
        time.sleep(max(0.0, expire.ToDatetime(UTC).timestamp() - time.time()) + 0.3)

        events = list(stubs.admin.RunCleanup(admin_pb2.RunCleanupRequest(all_namespaces=True)))
        report = events[-1].report
        [expired] = [step for step in report.steps if step.target == "expired_records"]
        assert expired.count >= RECORDS  # other tests' expired records may go too
        done = [
            event.progress.done
            for event in events[:-1]
            if event.progress.phase == expired.name and event.progress.done
        ]
        assert len(done) >= 3 and done == sorted(done)  # batch after batch

        removed = watch.changes(RECORDS)
        assert {change.kind for change in removed} == {DELETED}
        assert sorted(change.record_id for change in removed) == ids
        assert watch.silent()

        audit = audit_entries(stubs, ns, "expire")
        assert sorted(entry.entity_id for entry in audit) == [f"{collection}/{id}" for id in ids]
        assert {(e.actor, e.entity, e.version, tuple(e.changed_fields)) for e in audit} == {
            ("system", "record", 1, tuple(FIELDS))
        }
        left = stubs.records.CountRecords(
            records_pb2.CountRecordsRequest(namespace=ns, collection=collection)
        )
        assert left.count == 0
    finally:
        watch.close()
