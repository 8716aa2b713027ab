"""The job rules both adapters share: core.job_transitions, with no server and no database."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from strata_server.core.errors import FailedPrecondition, InvalidArgument
from strata_server.core.job_transitions import (
    BACKOFF_JITTER,
    DEFAULT_BACKOFF,
    MAX_BACKOFF,
    MAX_LEASE,
    MIN_LEASE,
    Job,
    NewJob,
    Stored,
    Visible,
    backoff,
    check_lease,
    job_from_json,
    job_to_json,
    leasable,
    lease_duration,
    new_lease_token,
    plan_ack,
    plan_cancel,
    plan_enqueue,
    plan_extend,
    plan_fail,
    plan_lease,
    plan_release,
    plan_retry,
    subscription_of,
)

NOW = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
SECOND = timedelta(seconds=1)
TOKEN = "t" * 32


def ready(**changes) -> Job:
    """A ready job enqueued a minute ago, due now."""
    job = plan_enqueue(
        "default",
        NewJob("jobs", {"a": [1, {"b": None}]}, priority=3, max_attempts=3),
        "J1",
        NOW - timedelta(minutes=1),
    )
    return replace(job, **{"run_time": NOW - SECOND, **changes})


def leased(**changes) -> Job:
    """The ready job leased under TOKEN until a minute from NOW."""
    job = plan_lease(ready(), TOKEN, timedelta(minutes=2), NOW - timedelta(minutes=1))
    return replace(job, **changes)


# --- backoff ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_backoff_is_within_jitter_of_the_doubled_base(seed):
    rng = random.Random(seed)
    base = timedelta(milliseconds=200)
    for attempt in range(1, 8):
        nominal = base * 2 ** (attempt - 1)
        delay = backoff(attempt, base, rng)
        assert nominal * (1 - BACKOFF_JITTER) <= delay <= nominal, (attempt, delay)


def test_backoff_doubles_with_the_same_jitter_draw():
    base = timedelta(milliseconds=200)
    delays = [backoff(attempt, base, random.Random(7)) for attempt in range(1, 6)]
    for earlier, later in itertools.pairwise(delays):
        assert abs(later - earlier * 2) <= timedelta(microseconds=1)


def test_backoff_with_a_seeded_rng_is_reproducible():
    base = timedelta(seconds=3)
    first = [backoff(n, base, random.Random(42)) for n in range(1, 10)]
    again = [backoff(n, base, random.Random(42)) for n in range(1, 10)]
    assert first == again


def test_backoff_jitter_spreads_retries():
    rng = random.Random(1)
    delays = {backoff(1, SECOND, rng) for _ in range(50)}
    assert len(delays) > 40
    assert min(delays) < SECOND * 0.9 < max(delays)


def test_backoff_defaults_to_one_second():
    assert DEFAULT_BACKOFF == SECOND
    delay = backoff(1, None, random.Random(3))
    assert SECOND * (1 - BACKOFF_JITTER) <= delay <= SECOND


def test_backoff_attempt_0_or_negative_is_the_base():
    for attempt in (0, -5):
        delay = backoff(attempt, SECOND, random.Random(0))
        assert SECOND * (1 - BACKOFF_JITTER) <= delay <= SECOND


@pytest.mark.parametrize("attempt", [13, 20, 31, 40, 1000, 10**9])
def test_backoff_is_capped_at_max_backoff(attempt):
    delay = backoff(attempt, SECOND, random.Random(attempt))
    assert MAX_BACKOFF * (1 - BACKOFF_JITTER) <= delay <= MAX_BACKOFF


def test_backoff_of_a_base_above_the_cap_is_capped():
    delay = backoff(1, MAX_BACKOFF * 3, random.Random(0))
    assert delay <= MAX_BACKOFF


def test_backoff_without_an_rng_uses_the_module_random():
    delay = backoff(2, SECOND)
    assert 2 * SECOND * (1 - BACKOFF_JITTER) <= delay <= 2 * SECOND


# --- visible state and leasability --------------------------------------------------


def test_visible_state_of_a_ready_job_depends_on_run_time():
    assert ready(run_time=NOW).visible_state(NOW) is Visible.AVAILABLE
    assert ready(run_time=NOW - SECOND).visible_state(NOW) is Visible.AVAILABLE
    assert ready(run_time=NOW + SECOND).visible_state(NOW) is Visible.SCHEDULED


def test_visible_state_of_a_leased_job_depends_on_its_lease():
    assert leased(lease_expire_time=NOW + SECOND).visible_state(NOW) is Visible.LEASED
    assert leased(lease_expire_time=NOW).visible_state(NOW) is Visible.AVAILABLE
    assert leased(lease_expire_time=NOW - SECOND).visible_state(NOW) is Visible.AVAILABLE
    assert leased(lease_expire_time=None).visible_state(NOW) is Visible.LEASED


@pytest.mark.parametrize("state", [Stored.COMPLETED, Stored.DEAD, Stored.CANCELLED])
def test_visible_state_of_a_finished_job_is_its_stored_state(state):
    job = ready(state=state, run_time=NOW + SECOND)
    assert job.visible_state(NOW).value == state.value


def test_leasable_only_when_available():
    assert leasable(ready(), NOW)
    assert not leasable(ready(run_time=NOW + SECOND), NOW)
    assert not leasable(leased(), NOW)
    assert leasable(leased(lease_expire_time=NOW), NOW)
    assert not leasable(ready(state=Stored.COMPLETED), NOW)


# --- enqueue and lease --------------------------------------------------------------


def test_plan_enqueue_makes_a_ready_job_at_attempt_0():
    new = NewJob("jobs", {"x": 1}, priority=-2, unique_key="k", retry_backoff=SECOND)
    job = plan_enqueue("ns", new, "J9", NOW)
    assert (job.namespace, job.queue, job.id, job.state) == ("ns", "jobs", "J9", Stored.READY)
    assert (job.attempt, job.max_attempts, job.priority) == (0, 10, -2)
    assert job.run_time == job.create_time == job.update_time == NOW
    assert (job.unique_key, job.retry_backoff) == ("k", SECOND)
    assert job.lease_token is None and job.finish_time is None
    assert job.visible_state(NOW) is Visible.AVAILABLE


def test_plan_enqueue_keeps_a_given_run_time():
    later = NOW + timedelta(hours=1)
    job = plan_enqueue("ns", NewJob("jobs", {}, run_time=later), "J", NOW)
    assert job.run_time == later
    assert job.visible_state(NOW) is Visible.SCHEDULED


def test_plan_lease_counts_the_attempt_and_sets_the_lease():
    job = plan_lease(ready(), TOKEN, 30 * SECOND, NOW)
    assert job.state is Stored.LEASED
    assert job.attempt == 1
    assert job.lease_token == TOKEN
    assert job.lease_expire_time == NOW + 30 * SECOND
    assert job.update_time == NOW
    assert job.visible_state(NOW) is Visible.LEASED


def test_plan_lease_reclaims_an_expired_lease_with_the_next_attempt():
    expired = leased(lease_expire_time=NOW - SECOND)
    job = plan_lease(expired, "new-token", 30 * SECOND, NOW)
    assert (job.state, job.attempt, job.lease_token) == (Stored.LEASED, 2, "new-token")


def test_plan_lease_of_an_expired_lease_at_max_attempts_is_dead():
    expired = leased(attempt=3, max_attempts=3, lease_expire_time=NOW - SECOND)
    job = plan_lease(expired, "new-token", 30 * SECOND, NOW)
    assert job.state is Stored.DEAD
    assert job.attempt == 3
    assert job.lease_token is None and job.lease_expire_time is None
    assert job.last_error
    assert job.finish_time == job.update_time == NOW


def test_plan_lease_of_a_ready_job_at_max_attempts_still_leases():
    job = plan_lease(ready(attempt=0, max_attempts=1), TOKEN, SECOND, NOW)
    assert (job.state, job.attempt) == (Stored.LEASED, 1)


def test_lease_tokens_are_unguessable_and_distinct():
    tokens = {new_lease_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(token) >= 32 for token in tokens)


def test_lease_duration_bounds():
    assert lease_duration(MIN_LEASE) == MIN_LEASE
    assert lease_duration(MAX_LEASE) == MAX_LEASE
    for bad in (timedelta(0), -SECOND, MIN_LEASE - timedelta(microseconds=1), MAX_LEASE + SECOND):
        with pytest.raises(InvalidArgument) as raised:
            lease_duration(bad, "lease")
        assert [v.field for v in raised.value.violations] == ["lease"]


# --- check_lease and the holder's transitions ---------------------------------------


def _lease_lost(call) -> FailedPrecondition:
    with pytest.raises(FailedPrecondition) as raised:
        call()
    assert raised.value.reason == "LEASE_LOST"
    return raised.value


def test_check_lease_accepts_the_current_holder():
    check_lease(leased(), TOKEN, NOW)


def test_check_lease_rejects_a_wrong_token():
    error = _lease_lost(lambda: check_lease(leased(), "other", NOW))
    assert error.metadata["state"] == "leased"


def test_check_lease_rejects_an_expired_lease_even_with_the_right_token():
    error = _lease_lost(lambda: check_lease(leased(lease_expire_time=NOW), TOKEN, NOW))
    assert error.metadata["state"] == "available"
    _lease_lost(lambda: check_lease(leased(lease_expire_time=NOW - SECOND), TOKEN, NOW))


def test_check_lease_rejects_a_lease_without_an_end():
    _lease_lost(lambda: check_lease(leased(lease_expire_time=None), TOKEN, NOW))


@pytest.mark.parametrize(
    "state", [Stored.READY, Stored.COMPLETED, Stored.DEAD, Stored.CANCELLED], ids=str
)
def test_check_lease_rejects_a_job_not_leased(state):
    _lease_lost(lambda: check_lease(leased(state=state), TOKEN, NOW))


def test_check_lease_rejects_an_empty_token_against_a_tokenless_job():
    _lease_lost(lambda: check_lease(ready(), "", NOW))


def test_plan_ack_completes_with_the_result():
    job = plan_ack(leased(), TOKEN, {"ok": True}, NOW)
    assert (job.state, job.result) == (Stored.COMPLETED, {"ok": True})
    assert job.lease_token is None and job.lease_expire_time is None
    assert job.finish_time == job.update_time == NOW
    assert job.attempt == 1


def test_plan_ack_with_a_stale_token_is_lease_lost():
    _lease_lost(lambda: plan_ack(leased(), "stale", None, NOW))


def test_plan_fail_with_retry_delay_goes_back_to_ready():
    job = plan_fail(leased(), TOKEN, "boom", timedelta(0), NOW)
    assert job.state is Stored.READY
    assert (job.attempt, job.last_error, job.run_time) == (1, "boom", NOW)
    assert job.lease_token is None and job.lease_expire_time is None
    assert job.finish_time is None
    assert job.visible_state(NOW) is Visible.AVAILABLE


def test_plan_fail_uses_the_backoff_of_the_attempt():
    base = timedelta(milliseconds=200)
    second = leased(attempt=2, retry_backoff=base)
    job = plan_fail(second, TOKEN, "again", None, NOW, random.Random(5))
    assert job.run_time - NOW == backoff(2, base, random.Random(5))
    assert job.visible_state(NOW) is Visible.SCHEDULED


def test_plan_fail_at_max_attempts_is_dead_with_the_error():
    job = plan_fail(leased(attempt=3, max_attempts=3), TOKEN, "last words", timedelta(0), NOW)
    assert job.state is Stored.DEAD
    assert job.last_error == "last words"
    assert job.finish_time == NOW
    assert job.lease_token is None


def test_plan_fail_with_a_stale_token_is_lease_lost():
    _lease_lost(lambda: plan_fail(leased(), "stale", "x", None, NOW))


def test_plan_extend_moves_the_lease_end():
    job = plan_extend(leased(), TOKEN, 5 * SECOND, NOW)
    assert job.lease_expire_time == NOW + 5 * SECOND
    assert (job.state, job.lease_token, job.attempt) == (Stored.LEASED, TOKEN, 1)


def test_plan_extend_of_an_expired_lease_is_lease_lost():
    _lease_lost(lambda: plan_extend(leased(lease_expire_time=NOW), TOKEN, SECOND, NOW))


# --- cancel and retry ---------------------------------------------------------------


@pytest.mark.parametrize("make", [ready, leased], ids=["ready", "leased"])
def test_plan_cancel_of_an_unfinished_job(make):
    job = plan_cancel(make(), NOW)
    assert job.state is Stored.CANCELLED
    assert job.finish_time == NOW
    assert job.lease_token is None and job.lease_expire_time is None


@pytest.mark.parametrize("state", [Stored.COMPLETED, Stored.DEAD, Stored.CANCELLED], ids=str)
def test_plan_cancel_of_a_finished_job_is_job_finished(state):
    with pytest.raises(FailedPrecondition) as raised:
        plan_cancel(ready(state=state), NOW)
    assert raised.value.reason == "JOB_FINISHED"
    assert raised.value.metadata["state"] == state.value


@pytest.mark.parametrize("state", [Stored.DEAD, Stored.CANCELLED], ids=str)
def test_plan_retry_of_a_dead_or_cancelled_job(state):
    job = plan_retry(ready(state=state, attempt=3, finish_time=NOW - SECOND), NOW)
    assert job.state is Stored.READY
    assert (job.attempt, job.run_time, job.finish_time) == (0, NOW, None)
    assert job.visible_state(NOW) is Visible.AVAILABLE


@pytest.mark.parametrize(
    ("make", "visible"),
    [
        (lambda: ready(), "available"),
        (lambda: ready(run_time=NOW + SECOND), "scheduled"),
        (lambda: leased(), "leased"),
        (lambda: leased(lease_expire_time=NOW), "available"),
        (lambda: ready(state=Stored.COMPLETED), "completed"),
    ],
    ids=["available", "scheduled", "leased", "expired", "completed"],
)
def test_plan_retry_of_any_other_job_is_not_retryable(make, visible):
    with pytest.raises(FailedPrecondition) as raised:
        plan_retry(make(), NOW)
    assert raised.value.reason == "JOB_NOT_RETRYABLE"
    assert raised.value.metadata["state"] == visible


# --- JSON round trip ----------------------------------------------------------------


@pytest.mark.parametrize(
    "job",
    [
        ready(),
        leased(retry_backoff=timedelta(milliseconds=250), unique_key="k ✓"),
        replace(
            plan_fail(leased(attempt=3), TOKEN, "err", None, NOW, random.Random(0)),
            result={"n": [1, 2.5, None, True, "x"]},
        ),
        plan_ack(leased(), TOKEN, {"nested": {"deep": []}}, NOW),
    ],
    ids=["ready", "leased", "dead", "completed"],
)
def test_job_json_round_trip(job):
    stored = json.loads(json.dumps(job_to_json(job)))
    back = job_from_json(stored)
    assert back == replace(job, lease_token=None)


def test_job_json_never_holds_the_lease_token():
    assert TOKEN not in str(job_to_json(leased()))


# --- release and subscription tokens ------------------------------------------------


def test_release_makes_the_job_ready_now_and_uncounts_the_attempt():
    job = leased(attempt=2)
    released = plan_release(job, TOKEN, NOW)
    assert released.state is Stored.READY and released.run_time == NOW
    assert released.attempt == 1
    assert (released.lease_token, released.lease_expire_time) == (None, None)
    assert released.visible_state(NOW) is Visible.AVAILABLE
    assert released.last_error == job.last_error


def test_release_needs_the_current_lease():
    _lease_lost(lambda: plan_release(leased(), "other", NOW))
    _lease_lost(lambda: plan_release(ready(), TOKEN, NOW))


def test_subscription_tokens_name_their_stream_and_plain_ones_none():
    token = new_lease_token("01SUBSCRIPTION")
    assert token.startswith("01SUBSCRIPTION.") and len(token) == len("01SUBSCRIPTION.") + 32
    assert subscription_of(token) == "01SUBSCRIPTION"
    assert subscription_of(new_lease_token()) is None
    assert subscription_of(".abc") is None
    assert subscription_of("") is None
