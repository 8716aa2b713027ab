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
from tests.contract.archive_support import export, import_, namespace, rows
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


def test_batch_entries_survive_an_export_and_import(stubs: Any) -> None:
    source, target = namespace(), namespace()
    ids = ["a", "b", "c"]
    expire = from_now(0.5)
    commit(
        stubs, [create_write("tmp", id, DATA, expire_time=expire) for id in ids], namespace=source
    )
    time.sleep(max(0.0, expire.ToDatetime(UTC).timestamp() - time.time()) + 0.2)
    list(stubs.admin.RunCleanup(admin_pb2.RunCleanupRequest(all_namespaces=True)))
    [batch] = audit_entries(stubs, source, "expire")
    assert list(batch.entity_ids) == [f"tmp/{id}" for id in ids]

    first = export(stubs.channel, source)
    [line] = [row for row in rows(first.data, "audit") if row["action"] == "expire"]
    assert (line["entity_id"], line["entity_ids"], line["entity_versions"]) == (
        "tmp/",
        [f"tmp/{id}" for id in ids],
        [1, 1, 1],
    )
    others = [row for row in rows(first.data, "audit") if row["action"] != "expire"]
    assert others and all("entity_ids" not in row for row in others)  # as before
    import_(stubs.channel, first.data, target)
    second = export(stubs.channel, target)
    assert rows(second.data, "audit")[:-1] == rows(first.data, "audit")  # then the import's
    history = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(namespace=target, entity_id="tmp/b")
    ).entries
    assert [(e.action, list(e.entity_ids)) for e in history] == [
        ("expire", [f"tmp/{id}" for id in ids]),
        ("create", []),
    ]
