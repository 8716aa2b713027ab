"""LocalEvents listeners: the in-process half of every events adapter."""

from __future__ import annotations

import asyncio

from strata_server.storage.memory.events import LocalEvents
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
    assert not events._checks


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


async def test_becoming_whole_again_wakes_every_listener() -> None:
    events = LocalEvents(complete=False)
    with events.listen("a") as first, events.listen("b") as second:
        events.set_degraded(False)
        assert await first.wait(0) == {"a"}
        assert await second.wait(0) == {"b"}
