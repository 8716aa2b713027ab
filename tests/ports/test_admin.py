"""The admin ports: AuditLog, RetentionStore, RecordCleanup, UsageReport,
IntegrityStore, IndexAdmin, TokenStore and QuotaStore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from strata_server.core.access_rules import Role
from strata_server.core.errors import AlreadyExists, NotFound, QuotaExceeded
from strata_server.core.filters import parse_filter, parse_order_by
from strata_server.core.index_paths import RecordIndex
from strata_server.core.integrity_findings import Finding
from strata_server.core.job_transitions import NewJob
from strata_server.core.models import Actor, AuditQuery, ListQuery, Progress, RecordRef
from strata_server.core.retention_rules import Exclude, RetentionPolicy, Target
from strata_server.core.token_rules import NewToken
from strata_server.core.transcript_rules import AppendEntries, NewTranscript, new_entry
from strata_server.storage.composite import Storage
from strata_server.storage.ports import OldJobs
from strata_server.storage.ports.queue import LeaseTerms
from strata_server.storage.ports.write_context import WriteContext
from tests.ports.conftest import ACTOR
from tests.ports.helpers import create

LEASE = timedelta(seconds=30)


async def test_audit_filters_and_pages_newest_first(storage: Storage, ns: str) -> None:
    for i in range(5):
        await create(storage, ns, f"r{i}", {"i": i})
    await storage.queue.enqueue(ns, [NewJob("q", {})], WriteContext(Actor("bob")))
    page = await storage.audit.list_audit(ns, AuditQuery(limit=2))
    assert [e.action for e in page.items] == ["enqueue", "create"]
    assert page.items[1].entity_id == "c/r4" and page.last_key == (page.items[1].seq,)
    everything = await storage.audit.list_audit(ns, AuditQuery(limit=100))
    seqs = [e.seq for e in everything.items]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == 6
    assert everything.last_key is None
    assert everything.items[0].actor == "bob"
    seen, before = [], None
    while True:
        page = await storage.audit.list_audit(ns, AuditQuery(limit=2, before_seq=before))
        seen += [e.seq for e in page.items]
        if page.last_key is None:
            break
        (before,) = page.last_key
    assert seen == seqs
    records = await storage.audit.list_audit(ns, AuditQuery(entity="record", actor="tester"))
    assert len(records.items) == 5
    one = await storage.audit.list_audit(ns, AuditQuery(entity_id="c/r2", action="create"))
    assert [e.entity_id for e in one.items] == ["c/r2"]
    start = everything.items[2].time
    recent = await storage.audit.list_audit(ns, AuditQuery(start_time=start, limit=100))
    assert {e.seq for e in recent.items} >= set(seqs[:3])
    none = await storage.audit.list_audit(ns, AuditQuery(end_time=datetime(2000, 1, 1, tzinfo=UTC)))
    assert list(none.items) == []
    assert list((await storage.audit.list_audit(f"{ns}x", AuditQuery())).items) == []


async def test_retention_policies_and_what_they_purge(storage: Storage, ns: str) -> None:
    policy = RetentionPolicy(ns, Target.RECORDS, "c", timedelta(days=1))
    saved = await storage.retention.set_retention(policy, actor=ACTOR)
    assert saved.max_age == timedelta(days=1) and saved.create_time is not None
    updated = await storage.retention.set_retention(
        RetentionPolicy(ns, Target.RECORDS, "c", timedelta(days=2)), actor=ACTOR
    )
    assert updated.create_time == saved.create_time and updated.max_age == timedelta(days=2)
    await storage.retention.set_retention(
        RetentionPolicy(ns, Target.DEAD_JOBS, "", timedelta(hours=1)), actor=ACTOR
    )
    mine = await storage.retention.list_retention(ns)
    assert [(p.target, p.selector) for p in mine] == [
        (Target.DEAD_JOBS, ""),
        (Target.RECORDS, "c"),
    ]
    assert {p.namespace for p in await storage.retention.list_retention(None)} == {ns}
    await storage.retention.delete_retention(ns, Target.DEAD_JOBS, "", actor=ACTOR)
    with pytest.raises(NotFound):
        await storage.retention.delete_retention(ns, Target.DEAD_JOBS, "", actor=ACTOR)

    for i in range(3):
        await create(storage, ns, f"r{i}", {})
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert await storage.cleanup.count_old_records(ns, "c", later) == 3
    assert await storage.cleanup.count_old_records(ns, "c", later - timedelta(hours=1)) == 0
    gone = await storage.cleanup.purge_old_records(ns, "c", later, 2)
    assert len(gone) == 2 and all(ref.namespace == ns for ref in gone)
    assert await storage.cleanup.purge_old_records(ns, "c", later, 0) == []
    assert await storage.records.count_records(ns, "c", None) == 1
    await create(storage, ns, "old", {}, expire_time=datetime(2000, 1, 1, tzinfo=UTC))
    assert await storage.cleanup.count_expired() == 1
    assert await storage.records.purge_expired(10) == [RecordRef(ns, "c", "old")]

    jobs = await storage.queue.enqueue(ns, [NewJob("q", {}) for _ in range(3)], WriteContext(ACTOR))
    for job in await storage.queue.lease_jobs(ns, "q", 3, LeaseTerms(LEASE, ACTOR)):
        await storage.queue.ack_job(ns, job.id, job.lease_token or "", None, actor=ACTOR)
    later = datetime.now(UTC) + timedelta(seconds=1)
    completed = OldJobs(ns, None, "completed", later, Exclude.NONE)
    counted = await storage.retention.count_old_jobs(
        OldJobs(ns, "q", "completed", later, Exclude.NONE)
    )
    assert counted == len(jobs)
    assert (
        await storage.retention.count_old_jobs(OldJobs(ns, None, "dead", later, Exclude.NONE)) == 0
    )
    assert await storage.retention.purge_old_jobs(completed, 2) == 2
    everywhere = OldJobs(None, None, "completed", later, Exclude.ANY)
    assert await storage.retention.count_old_jobs(everywhere) == 1


async def test_sealed_transcripts_and_old_artifacts_go_by_age(storage: Storage, ns: str) -> None:
    for id in ("open", "sealed"):
        await storage.transcripts.create_transcript(ns, NewTranscript(id), WriteContext(ACTOR))
        entry = new_entry("user", "hi", None, 1 << 20)
        await storage.transcripts.append_entries(
            ns, AppendEntries(id, [entry]), WriteContext(ACTOR)
        )
    await storage.transcripts.seal_transcript(ns, "sealed", actor=ACTOR)
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert await storage.retention.count_old_transcripts(ns, later) == 1
    assert await storage.retention.purge_old_transcripts(ns, later, 10) == 1
    with pytest.raises(NotFound):
        await storage.transcripts.get_transcript(ns, "sealed")
    assert await storage.transcripts.read_batch(ns, "sealed", 1, 1 << 20) is None
    assert (await storage.transcripts.get_transcript(ns, "open")).next_seq == 2
    assert await storage.retention.count_old_artifacts(ns, "", later) == 0
    assert await storage.retention.purge_old_artifacts(ns, "", later, 10) == 0


async def test_usage_counts_what_namespaces_store(storage: Storage, ns: str) -> None:
    for i in range(3):
        await create(storage, ns, f"r{i}", {"i": i})
    await storage.queue.enqueue(ns, [NewJob("q", {}), NewJob("q", {})], WriteContext(ACTOR))
    await storage.transcripts.create_transcript(ns, NewTranscript("t", "ann"), WriteContext(ACTOR))
    usage = await storage.usage.usage(ns)
    [mine] = usage.namespaces
    assert mine.namespace == ns and [(c.collection, c.records) for c in mine.collections] == [
        ("c", 3)
    ]
    assert dict(mine.jobs).get("available") == 2 and mine.transcripts == 1
    owned = await storage.usage.usage(ns, "ann")
    assert owned.namespaces[0].collections == () and owned.namespaces[0].transcripts == 1
    everyone = await storage.usage.usage(None)
    assert ns in {n.namespace for n in everyone.namespaces}
    [depth] = [d for d in await storage.usage.queue_depths() if d.namespace == ns]
    assert (depth.queue, depth.available, depth.scheduled, depth.leased) == ("q", 2, 0, 0)


async def test_declared_indexes(storage: Storage, ns: str) -> None:
    for i in range(4):
        await create(storage, ns, f"r{i}", {"status": "a" if i % 2 else "b"})
    events = [e async for e in storage.indexes.create_index(ns, "c", ("status",), actor=ACTOR)]
    assert all(isinstance(e, Progress) for e in events[:-1])
    index = events[-1]
    assert isinstance(index, RecordIndex) and index.path == ("status",) and index.ready
    again = [e async for e in storage.indexes.create_index(ns, "c", ("status",), actor=ACTOR)][-1]
    assert isinstance(again, RecordIndex) and again.create_time == index.create_time
    assert [i.path for i in await storage.indexes.list_indexes(ns, None)] == [("status",)]
    assert await storage.indexes.list_indexes(ns, "other") == []
    query = ListQuery("c", parse_filter('data.status = "a"'), parse_order_by(""), limit=10)
    assert [r.id for r in (await storage.records.list_records(ns, query)).items] == ["r1", "r3"]
    await storage.indexes.drop_index(ns, "c", ("status",), actor=ACTOR)
    with pytest.raises(NotFound):
        await storage.indexes.drop_index(ns, "c", ("status",), actor=ACTOR)
    assert await storage.indexes.list_indexes(ns, None) == []


async def test_a_sound_database_has_no_findings(storage: Storage, ns: str) -> None:
    await create(storage, ns, "r", {})
    await storage.queue.enqueue(ns, [NewJob("q", {})], WriteContext(ACTOR))
    await storage.transcripts.create_transcript(ns, NewTranscript("t"), WriteContext(ACTOR))
    events = [e async for e in storage.integrity.check_integrity(None, repair=False)]
    assert not [e for e in events if isinstance(e, Finding)]
    checked = dict(e for e in events if isinstance(e, tuple))
    assert checked["jobs"] >= 1 and checked["transcripts"] >= 1


async def test_tokens_by_the_hash_of_their_secret(storage: Storage) -> None:
    before = await storage.tokens.fingerprint()
    new = NewToken("ci", Role.WRITER, frozenset({"default"}), ttl=timedelta(hours=1))
    token = await storage.tokens.create_token(new, "h" * 64, actor=ACTOR)
    assert (token.name, token.role, token.created_by) == ("ci", Role.WRITER, "tester")
    assert token.expire_time is not None and token.revoke_time is None
    with pytest.raises(AlreadyExists):
        await storage.tokens.create_token(new, "i" * 64, actor=ACTOR)
    assert await storage.tokens.find_token("h" * 64) == token
    assert await storage.tokens.find_token("x" * 64) is None
    await storage.tokens.create_token(
        NewToken("admin", Role.ADMIN, frozenset({"*"})), "j" * 64, actor=ACTOR
    )
    revoked = await storage.tokens.revoke_token("ci", actor=ACTOR)
    assert revoked.revoke_time is not None
    assert await storage.tokens.revoke_token("ci", actor=ACTOR) == revoked
    with pytest.raises(NotFound):
        await storage.tokens.revoke_token("nope", actor=ACTOR)
    active = await storage.tokens.list_tokens(None, 10, inactive=False)
    assert [t.name for t in active.items] == ["admin"]
    every = await storage.tokens.list_tokens(None, 1, inactive=True)
    assert [t.name for t in every.items] == ["admin"] and every.last_key == ("admin",)
    rest = await storage.tokens.list_tokens("admin", 1, inactive=True)
    assert [t.name for t in rest.items] == ["ci"] and rest.last_key is None
    after = await storage.tokens.fingerprint()
    assert after != before and after == (before[0] + 2, before[1] + 1)


async def test_a_quota_counts_what_a_namespace_stores_and_refuses_past_it(
    storage: Storage, ns: str
) -> None:
    await create(storage, ns, "r", {"text": "x" * 100})
    quota = await storage.quotas.set_quota(ns, 1000, actor=ACTOR)
    assert quota.max_bytes == 1000 and quota.used_bytes > 100
    assert await storage.quotas.list_quotas(ns) == [quota]
    with pytest.raises(QuotaExceeded):
        await create(storage, ns, "big", {"text": "y" * 1000})
    with pytest.raises(NotFound):
        await storage.records.get_record(ns, "c", "big")
    removed = await storage.quotas.set_quota(ns, 0, actor=ACTOR)
    assert removed.max_bytes == 0 and removed.used_bytes == quota.used_bytes
    assert await storage.quotas.list_quotas(ns) == []
    await create(storage, ns, "big", {"text": "y" * 1000})
