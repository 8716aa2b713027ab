"""LocalEvents listeners: the in-process half of every events adapter."""

from __future__ import annotations

import asyncio
import functools

from strata_server.core.idle import Batched, Probed
from strata_server.storage.memory.events import Listener, LocalEvents
from strata_server.storage.ports import Recheck


async def test_a_notify_before_the_wait_is_kept() -> None:
    events = LocalEvents()
    with events.listen("a", "b") as listener:
        events.notify("b")  # lands between the consumer's check and its wait
        assert await listener.wait(5) == {"b"}
        assert await listener.wait(0.05) == set()  # re-armed, nothing new


async def test_a_wait_returns_every_topic_notified_and_wakes_at_once() -> None:
    events = LocalEvents()
    with events.listen("a", "b") as listener:
        waiting = asyncio.create_task(listener.wait(5))
        await asyncio.sleep(0)
        events.notify("a")
        events.notify("c")  # not listened to
        assert await asyncio.wait_for(waiting, 1) == {"a"}


async def test_waits_ending_together_share_one_timer() -> None:
    events = LocalEvents()
    loop = asyncio.get_running_loop()
    listeners = [events.listen("a") for _ in range(100)]
    end = loop.time() + 0.1

    async def wait_until_end(listener: Listener) -> set[str]:
        # the time left is read when the wait starts, not when its task is made: on a
        # busy host, making 100 tasks can take longer than a millisecond
        return await listener.wait(end - loop.time())

    waits = [asyncio.create_task(wait_until_end(listener)) for listener in listeners]
    await asyncio.sleep(0.02)
    assert 1 <= len(events._timers) <= 2  # one loop timer (two across a millisecond)
    early = events.listen("b")
    woken = asyncio.create_task(early.wait(5))
    await asyncio.sleep(0)
    events.notify("b")  # a wakeup ends a wait before its time, and drops its timer
    assert await woken == {"b"}
    assert await asyncio.gather(*waits) == [set()] * 100  # timed out, together
    assert loop.time() >= end
    assert not events._timers
    for listener in [*listeners, early]:
        listener.close()


async def test_closed_listeners_leave_nothing_registered() -> None:
    events = LocalEvents()
    with events.listen("a", "b"), events.listen("a"):
        assert set(events._listeners) == {"a", "b"}
    assert not events._listeners
    assert not await events.wait("a", 0.01)
    assert not events._listeners


class Probe:
    """A re-check probe whose answer the test sets; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.answer = 0

    async def __call__(self) -> int:
        self.calls += 1
        return self.answer


async def test_a_topic_is_rechecked_once_for_all_its_listeners() -> None:
    events = LocalEvents(recheck_seconds=0.02)
    probe = Probe()
    recheck = Recheck("t", probe)
    listeners = [events.listen("t", recheck=recheck) for _ in range(50)]
    await asyncio.sleep(0.2)
    # About ten rounds of one probe each, not fifty listeners' worth.
    assert 2 <= probe.calls <= 20
    assert await listeners[0].wait(0.01) == set()  # nothing changed: nobody woken
    probe.answer = 1
    assert await listeners[0].wait(1) == {"t"}  # a changed answer wakes them
    assert await listeners[-1].wait(0) == {"t"}
    for listener in listeners:
        listener.close()
    calls = probe.calls
    await asyncio.sleep(0.1)
    assert probe.calls == calls  # the last listener gone, the re-check stopped
    assert not events.rechecked_topics


async def test_a_degraded_registry_rechecks_at_its_degraded_interval() -> None:
    events = LocalEvents(recheck_seconds=0, degraded_seconds=0.02)  # 0: never while whole
    probe = Probe()
    with events.listen("t", recheck=Recheck("t", probe)):
        await asyncio.sleep(0.1)
        assert probe.calls == 1  # the first answer only
        events.set_degraded(True)
        await asyncio.sleep(0.2)
        assert probe.calls >= 3
    await events.close()


async def test_being_degraded_never_slows_a_topic_with_a_shorter_interval() -> None:
    events = LocalEvents(complete=False, recheck_seconds=0, degraded_seconds=10)
    probe = Probe()
    with events.listen("tokens", recheck=Recheck("tokens", probe, every=0.02)):
        await asyncio.sleep(0.2)
        assert probe.calls >= 4  # its own 0.02 s, not the degraded 10 s
    await events.close()


async def test_send_wakes_this_process_like_notify() -> None:
    events = LocalEvents()
    with events.listen("t") as listener:
        await events.send("t")
        assert await listener.wait(0) == {"t"}


async def test_becoming_whole_again_wakes_every_listener() -> None:
    events = LocalEvents(complete=False)
    with events.listen("a") as first, events.listen("b") as second:
        events.set_degraded(False)
        assert await first.wait(0) == {"a"}
        assert await second.wait(0) == {"b"}


class Moving:
    """A probe answering `Probed`, whose state and motion the test sets."""

    def __init__(self) -> None:
        self.calls = 0
        self.state = 0
        self.moving = True

    async def __call__(self) -> Probed:
        self.calls += 1
        return Probed(self.state, self.moving)


async def test_a_topic_time_cannot_change_rests_until_a_write_on_it() -> None:
    events = LocalEvents(recheck_seconds=0)  # no safety net: only what time changes
    probe = Moving()
    with events.listen("q", recheck=Recheck("q", probe, every=0.02)) as listener:
        await asyncio.sleep(0.2)
        assert probe.calls >= 4  # moving (jobs that may come due): every 0.02 s
        probe.moving = False  # nothing left that time alone could make available
        await asyncio.sleep(0.05)
        calls = probe.calls
        await asyncio.sleep(0.2)
        assert probe.calls == calls  # at rest: no probe at all
        events.notify("q")  # a write (say a scheduled job): probed within `every`
        assert await listener.wait(0) == {"q"}
        await asyncio.sleep(0.2)
        assert probe.calls == calls + 1  # once: still at rest
        probe.moving, probe.state = True, 1  # it comes due: the probe wakes the topic
        events.notify("q")
        assert await listener.wait(0) == {"q"}
        assert await listener.wait(1) == {"q"}
    await events.close()


async def test_a_plain_answer_with_an_interval_is_probed_at_that_interval() -> None:
    events = LocalEvents(recheck_seconds=0)
    probe = Probe()
    with events.listen("q", recheck=Recheck("q", probe, every=0.02)):
        await asyncio.sleep(0.2)
        assert probe.calls >= 4  # no `Probed`: time is taken to matter always
    await events.close()


async def test_topics_due_together_share_one_batched_query() -> None:
    events = LocalEvents(recheck_seconds=0.05)
    fetched: list[list[str]] = []

    async def fetch(keys: list[str]) -> dict[str, int]:
        fetched.append(sorted(keys))
        return {key: 0 for key in keys if key != "gone"}

    states = Batched(fetch)
    topics = [f"t{i}" for i in range(50)] + ["gone"]
    listeners = [
        events.listen(topic, recheck=Recheck(topic, functools.partial(states.get, topic)))
        for topic in topics
    ]
    await asyncio.sleep(0.32)
    rounds = fetched[1:]  # the first answers came as each listener arrived
    assert 3 <= len(rounds) <= 7, fetched
    assert all(keys == sorted(topics) for keys in rounds)  # all 51 in one query a round
    assert await listeners[0].wait(0) == set()  # nothing changed: nobody woken
    for listener in listeners:
        listener.close()
    await events.close()


async def test_a_failed_batch_fails_each_lookup_and_later_ones_still_work() -> None:
    calls = 0

    async def fetch(keys: list[int]) -> dict[int, str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database down")
        return {key: str(key) for key in keys}

    states = Batched(fetch)
    first = await asyncio.gather(states.get(1), states.get(2), return_exceptions=True)
    assert all(isinstance(answer, RuntimeError) for answer in first)
    assert await asyncio.gather(states.get(1), states.get(3), states.get(1)) == ["1", "3", "1"]
    assert calls == 2


async def test_degraded_rechecks_run_together_and_the_scheduler_stops_with_its_topics() -> None:
    events = LocalEvents(complete=False, recheck_seconds=0, degraded_seconds=0.05)
    probes = [Probe() for _ in range(5)]
    listeners = [
        events.listen(f"t{i}", recheck=Recheck(f"t{i}", probe)) for i, probe in enumerate(probes)
    ]
    await asyncio.sleep(0.27)
    counts = {probe.calls for probe in probes}
    assert len(counts) == 1 and 4 <= counts.pop() <= 7  # the same rounds for all
    for listener in listeners:
        listener.close()
    await asyncio.sleep(0.01)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "strata-rechecks"]
    await events.close()


async def test_a_first_answer_wakes_its_listeners_only_when_it_is_news_by_itself() -> None:
    """A queue's job may come due between a consumer's empty lease and the topic's
    first probe; no write announces that, so a first answer saying a job is leasable
    must wake the consumer, where any other first answer only sets the baseline."""
    events = LocalEvents(recheck_seconds=0)

    async def leasable() -> Probed:
        return Probed(True, moving=False, ready=True)

    async def baseline() -> Probed:
        return Probed(True, moving=False)

    with events.listen("due", recheck=Recheck("due", leasable)) as listener:
        assert await listener.wait(5) == {"due"}
    with events.listen("quiet", recheck=Recheck("quiet", baseline)) as listener:
        assert await listener.wait(0.2) == set()
    await events.close()
