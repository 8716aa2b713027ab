"""Wakeups between replicas over Redis pub/sub (channel `strata:events`, message = topic).

Same shape as `events.postgres`: waiters are kept in process by a `LocalEvents`.
Both connections are spoken to directly (`storage.redis_wire`), not through
redis-py, because each hop is on the path of a follower's or consumer's wakeup:
- `notify` wakes local waiters and writes the PUBLISH on the held publishing
  connection at once, in the caller's own step, unless the topic was published
  earlier in the same step (the set of them is cleared by a `call_soon`): a
  burst of enqueues to one queue sends one message, not one per job. Only when
  that connection is not open (or a PUBLISH on it fails) do topics go to an
  outbox, which a sender task flushes once it has connected again, a topic
  already queued not being queued twice. (Publishing every topic at the end of
  the step instead, in one write, costs a hop on the wakeup's path; alternated
  follow probes could not tell the two apart, so the hop was left out.)
- The subscription's connection hands each message to the local waiters in the
  same step that reads it. A listener task holds it open, PINGs it every
  PING_SECONDS (so a connection gone quiet is found within the Redis timeout)
  and subscribes again after a loss.

A notify in one process reaches the wakeup in another in about 60% of the time it
takes through redis-py's pub/sub (its `get_message` in a task, the PUBLISH from a
sender task): bench/RESULTS.md, "measured in passing".

Redis holds no state here: while it is unreachable (logged once per outage) wakeups
between replicas are missed, so the topics with listeners are re-checked at the
degraded interval (storage/memory/events.py); the listener resubscribes with backoff,
and every listener is woken once when the subscription is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial
from typing import Unpack

import structlog
from redis.asyncio import Redis

from strata_server.core.errors import Unavailable
from strata_server.storage.events_relay import READY_WITHIN, Backoff
from strata_server.storage.memory.events import Pacing
from strata_server.storage.redis import client as redis_client
from strata_server.storage.redis.wire import Connection, Endpoint, Held, command
from strata_server.storage.relayed_events import RelayedEvents

log = structlog.get_logger("strata.events")

CHANNEL = "strata:events"
PING_SECONDS = 1.0
"""How often the subscription's connection is checked with a PING."""
SOCKET_SECONDS = 5.0
"""Connect and command timeout of the client `open` builds from a URL."""
PING = command("PING")


class RedisEvents(RelayedEvents):
    """The `storage.ports.Events` port over Redis pub/sub; build it with `open`."""

    backend = "redis"

    def __init__(self, endpoint: Endpoint, **pacing: Unpack[Pacing]) -> None:
        super().__init__(**pacing)
        self._endpoint = endpoint
        self._publisher = Held(endpoint)
        self._published_now: set[str] = set()  # topics published in this step

    @classmethod
    async def open(
        cls, redis: str | Redis, *, ready_within: float = READY_WITHIN, **pacing: Unpack[Pacing]
    ) -> RedisEvents:
        """Subscribe at the Redis server at `redis` (a URL, or the process's client,
        whose settings are used). Returns once the subscription is in place or has
        failed (then wakeups between replicas start when Redis is reachable), or
        after `ready_within` seconds."""
        if isinstance(redis, str):
            client = redis_client.connect(
                redis, timeout=SOCKET_SECONDS, connect_timeout=SOCKET_SECONDS
            )
            endpoint = Endpoint.of(client)
            await redis_client.close(client)  # it never connected: only its settings
        else:
            endpoint = Endpoint.of(redis)
        events = cls(endpoint, **pacing)
        await events._start(ready_within)
        return events

    def notify(self, topic: str, *, announced: bool = False) -> None:
        """Wake waiters on `topic` here at once, and publish it to the other replicas."""
        self._local.notify(topic)
        if announced or self._closed:
            return
        if topic in self._published_now:
            return
        if not self._published_now:
            asyncio.get_running_loop().call_soon(self._published_now.clear)
        self._published_now.add(topic)
        connection = self._publisher.ready
        if connection is None:
            self._outbox.put(topic)  # the sender connects, then sends it
            return
        sent = connection.send(command("PUBLISH", CHANNEL, topic))
        sent.add_done_callback(partial(self._published, topic=topic))

    async def send(self, topic: str) -> None:
        """Wake waiters on `topic` here, and PUBLISH it, returning once Redis has
        answered (see the port)."""
        self._local.notify(topic)
        try:
            connection = await self._publisher.get()
            await connection.send(command("PUBLISH", CHANNEL, topic))
        except redis_client.UNREACHABLE as error:
            raise Unavailable(f"cannot reach Redis to send a wakeup: {error}") from error

    def _published(self, sent: asyncio.Future[object], topic: str) -> None:
        if not sent.cancelled() and sent.exception() is not None:
            self._outbox.put(topic)  # once more, on a fresh connection

    def commit_notice(self, topic: str) -> None:
        """None: wakeups travel through Redis, not the database."""
        return None

    async def close(self) -> None:
        """Stop both tasks and close both connections."""
        await super().close()
        self._publisher.close()

    def _message(self, payload: bytes) -> None:
        self._local.notify(payload.decode(errors="replace"))

    async def _listen(self) -> None:
        backoff = Backoff()
        while True:
            connection: Connection | None = None
            try:
                connection = await self._endpoint.connect(on_message=self._message)
                await connection.send(command("SUBSCRIBE", CHANNEL))
                self._subscribed()
                backoff.reset()
                while True:
                    gone, _ = await asyncio.wait([connection.closed], timeout=PING_SECONDS)
                    if gone:
                        raise connection.closed.result()
                    await connection.send(PING)  # fails once the connection is quiet too long
            except redis_client.UNREACHABLE as error:
                self._unsubscribed(error)
            finally:
                if connection is not None:
                    connection.close()
            await asyncio.sleep(backoff.next())

    async def _send(self) -> None:
        backoff = Backoff()
        # Open the publishing connection now, so the first notify can write at once.
        with contextlib.suppress(*redis_client.UNREACHABLE):
            await self._publisher.get()
        while True:
            topics = await self._outbox.batch()
            for attempt in (1, 2):  # the second on a fresh connection
                try:
                    connection = await self._publisher.get()
                    commands = [command("PUBLISH", CHANNEL, topic) for topic in topics]
                    await asyncio.gather(*connection.send_all(commands))
                    backoff.reset()
                    break
                except redis_client.UNREACHABLE as error:
                    if attempt == 2:
                        self._lost(error)
                        for topic in topics:  # sent after the reconnect, not dropped
                            self._outbox.put(topic)
                        await asyncio.sleep(backoff.next())
