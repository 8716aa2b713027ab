"""RunCleanup of more expired records than one purge batch takes, over a real channel
on both shapes: every removal reaches WatchRecords (once, also for a watch resumed in
the middle of a batch) and the audit log, as one entry per batch that lists the
records it removed (migration 0024), which ListAuditEntries finds by any of them."""

from __future__ import annotations

import math
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

        # One entry per batch (a batch may hold other tests' records too: each
        # namespace and collection gets its own), listing each record once.
        audit = audit_entries(stubs, ns, "expire")
        listed = [id for entry in audit for id in entry.entity_ids]
        assert sorted(listed) == [f"{collection}/{id}" for id in ids]
        assert math.ceil(RECORDS / BATCH) <= len(audit) <= len(done)
        assert all(0 < len(entry.entity_ids) <= BATCH for entry in audit)
        assert {
            (e.actor, e.entity, e.entity_id, e.version, tuple(e.changed_fields)) for e in audit
        } == {("system", "record", f"{collection}/", 0, ())}
        assert {v for entry in audit for v in entry.entity_versions} == {1}
        # Any removed record's history names the batch entry that removed it.
        some = f"{collection}/{ids[BATCH + 3]}"
        history = stubs.admin.ListAuditEntries(
            admin_pb2.ListAuditEntriesRequest(namespace=ns, entity_id=some)
        ).entries
        assert [e.action for e in history] == ["expire", "create"]  # newest first
        assert some in history[0].entity_ids
        left = stubs.records.CountRecords(
            records_pb2.CountRecordsRequest(namespace=ns, collection=collection)
        )
        assert left.count == 0

        # A watch resumed from any removal's cursor, inside a batch or at its end,
        # gets exactly the removals after it.
        for at in (0, BATCH // 2, BATCH - 1, BATCH, RECORDS - 2):
            resumed = Watch(stubs, collection, namespace=ns, from_cursor=removed[at].cursor)
            try:
                rest = resumed.changes(RECORDS - at - 1)
                assert [c.record_id for c in rest] == [c.record_id for c in removed[at + 1 :]]
                assert resumed.silent()
            finally:
                resumed.close()
    finally:
        watch.close()
