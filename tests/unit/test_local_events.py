"""LocalEvents listeners: the in-process half of every events adapter."""

from __future__ import annotations

import asyncio

from strata_server.storage.events.local import LocalEvents


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
