"""CleanupRuns, and the RetentionStore steps of issue 22's "retention of everything"
(log entries and the audit horizon they raise, idle transcripts), on a SQLite file
and on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from strata_server.core.errors import CursorExpired
from strata_server.core.retention_rules import KEEP_RUNS, CleanupStep, RetentionPolicy, Target
from strata_server.core.transcript_rules import NewTranscript
from strata_server.storage.composite import Storage
from strata_server.storage.ports import OldLog
from strata_server.storage.ports.write_context import WriteContext
from tests.ports.conftest import ACTOR
from tests.ports.helpers import audit, create

STEP = CleanupStep("records of logs in ns", "records", "ns", "logs", 3)


async def test_a_pass_is_seen_running_then_finished(storage: Storage) -> None:
    started = datetime.now(UTC)
    run = await storage.cleanup_runs.start_run("replica-a", started)
    await storage.cleanup_runs.run_progress(run, "expired records", 2, 5)
    [running] = await storage.cleanup_runs.recent_runs(5)
    assert (running.replica, running.finished, running.steps) == ("replica-a", None, ())
    assert (running.phase, running.done, running.total) == ("expired records", 2, 5)
    assert abs(running.started - started) < timedelta(milliseconds=1)

    await storage.cleanup_runs.finish_run(run, datetime.now(UTC), (STEP,), None)
    [done] = await storage.cleanup_runs.recent_runs(5)
    assert done.finished is not None and done.finished >= done.started
    assert (done.steps, done.error, done.phase) == ((STEP,), None, "")


async def test_a_pass_left_unfinished_is_closed_when_the_next_starts(storage: Storage) -> None:
    await storage.cleanup_runs.start_run("replica-a", datetime.now(UTC))
    run = await storage.cleanup_runs.start_run("replica-b", datetime.now(UTC))
    await storage.cleanup_runs.finish_run(run, datetime.now(UTC), (), "database went away")
    newest, abandoned = await storage.cleanup_runs.recent_runs(5)
    assert (newest.replica, newest.error) == ("replica-b", "database went away")
    assert abandoned.replica == "replica-a" and abandoned.finished is not None
    assert abandoned.error == "abandoned: replica replica-a stopped during the pass"


async def test_only_the_newest_passes_are_kept(storage: Storage) -> None:
    for i in range(KEEP_RUNS + 3):
        run = await storage.cleanup_runs.start_run(f"r{i}", datetime.now(UTC))
        await storage.cleanup_runs.finish_run(run, datetime.now(UTC), (), None)
    kept = await storage.cleanup_runs.recent_runs(KEEP_RUNS * 2)
    assert [run.replica for run in kept] == [f"r{i}" for i in reversed(range(3, KEEP_RUNS + 3))]


async def test_old_log_entries_by_policy_and_by_default(storage: Storage, ns: str) -> None:
    other = ns + "-other"
    head = await storage.records.changes_head(other)
    await create(storage, ns, "old", {})
    await create(storage, other, "old", {})
    await asyncio.sleep(0.05)
    cut = datetime.now(UTC)
    await create(storage, ns, "new", {})
    policy = RetentionPolicy(ns, Target.AUDIT_LOG, "", timedelta(days=1))
    await storage.retention.set_retention(policy, actor=ACTOR)

    # The default's step leaves the namespace with a policy to it.
    default = OldLog(Target.AUDIT_LOG, None, cut, default=True)
    assert await storage.retention.count_old_log(default) >= 1
    await storage.retention.purge_old_log(default, 1000)
    assert await audit(storage, other) == []
    with pytest.raises(CursorExpired):  # the default's step raised its horizon too
        await storage.records.record_changes(other, "c", head, None, 10)
    assert [e.entity_id for e in await audit(storage, ns)][:1] == ["c/old"]

    own = OldLog(Target.AUDIT_LOG, ns, cut, default=False)
    assert await storage.retention.count_old_log(own) == 1
    assert await storage.retention.purge_old_log(own, 1000) == 1
    assert [e.action for e in await audit(storage, ns)] == ["create", "set_retention"]


async def test_idle_transcripts_are_sealed_longest_idle_first(storage: Storage, ns: str) -> None:
    for id in ("first", "second", "busy"):
        await storage.transcripts.create_transcript(ns, NewTranscript(id), WriteContext(ACTOR))
        await asyncio.sleep(0.01)
    await storage.transcripts.seal_transcript(ns, "busy", actor=ACTOR)  # sealed already
    now = datetime.now(UTC)
    assert await storage.retention.count_idle_transcripts(ns, now) == 2
    assert await storage.retention.seal_idle_transcripts(ns, now, 1) == [(ns, "first")]
    assert await storage.retention.seal_idle_transcripts(None, now, 10) == [(ns, "second")]
    assert await storage.retention.count_idle_transcripts(ns, now) == 0
    sealed = await storage.transcripts.get_transcript(ns, "first")
    assert sealed.sealed
    seals = await audit(storage, ns, action="seal")
    assert [(e.entity_id, e.actor) for e in seals] == [
        ("busy", ACTOR.name),
        ("first", "system"),
        ("second", "system"),
    ]


async def test_each_purge_batch_raises_the_horizon_changes_refuse_below(
    storage: Storage, ns: str
) -> None:
    head = await storage.records.changes_head(ns)
    await create(storage, ns, "a", {})
    await create(storage, ns, "b", {})
    a, b = (await storage.records.record_changes(ns, "c", head, None, 10)).changes
    await asyncio.sleep(0.05)
    cut = datetime.now(UTC)
    await create(storage, ns, "new", {})
    old = OldLog(Target.AUDIT_LOG, ns, cut, default=False)

    assert await storage.retention.purge_old_log(old, 1) == 1  # a's create
    with pytest.raises(CursorExpired) as expired:
        await storage.records.record_changes(ns, "c", head, None, 10)
    assert expired.value.metadata["horizon"] == a.cursor
    # At the horizon nothing after it is gone: the feed goes on with no gap.
    rest = await storage.records.record_changes(ns, "c", a.cursor, None, 10)
    assert [change.record_id for change in rest.changes] == ["b", "new"]

    assert await storage.retention.purge_old_log(old, 1) == 1  # b's create
    with pytest.raises(CursorExpired) as expired:
        await storage.records.record_changes(ns, "c", a.cursor, None, 10)
    assert expired.value.metadata["horizon"] == b.cursor
    rest = await storage.records.record_changes(ns, "c", b.cursor, None, 10)
    assert [change.record_id for change in rest.changes] == ["new"]
    # The horizon is the namespace's own: another one's old cursors still resume.
    await create(storage, ns + "-other", "x", {})
    theirs = await storage.records.record_changes(ns + "-other", "c", head, None, 10)
    assert [change.record_id for change in theirs.changes] == ["x"]
