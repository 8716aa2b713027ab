"""Wakeups between replicas over PostgreSQL LISTEN/NOTIFY on the shared database.

Waiters are kept in process by a `LocalEvents`; this adapter only carries topics
between processes. One dedicated connection (outside the pool, autocommit) LISTENs
on `strata_events` and wakes local waiters with each notification's payload, the
topic. `notify` wakes local waiters at once and queues the topic for a sender task,
which publishes every queued topic with one `pg_notify` round trip on a connection
of its own; a topic already queued is not queued twice.

Wakeups carry no data and a woken consumer re-reads the database, so losing some is
harmless: while a connection is down (logged once per outage) they are dropped, and
long polls fall back to their periodic re-check. Both connections reconnect with
backoff; the listener LISTENs again on each new connection.
"""

from __future__ import annotations

import asyncio
from typing import TypeAlias

import psycopg
import structlog
from psycopg.rows import TupleRow

from strata_server.storage.events.local import Listener, LocalEvents
from strata_server.storage.events.relay import MAX_PENDING, READY_WITHIN, Backoff
from strata_server.storage.postgres.pool import conninfo

log = structlog.get_logger("strata.events")

Conn: TypeAlias = psycopg.AsyncConnection[TupleRow]

CHANNEL = "strata_events"
MAX_PAYLOAD_BYTES = 7999
"""NOTIFY payloads must be shorter than 8000 bytes; longer topics stay local."""
IDLE_CHECK_SECONDS = 10.0
"""How long the listener waits for notifications before checking its connection."""


class PostgresEvents:
    """The `storage.ports.Events` port over LISTEN/NOTIFY; build it with `open`."""

    def __init__(self, dsn: str) -> None:
        self._conninfo = conninfo(dsn)
        self._local = LocalEvents()
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._settled = asyncio.Event()
        self._sender_pid: int | None = None
        self._down = False
        self._closed = False

    @classmethod
    async def open(cls, dsn: str, *, ready_within: float = READY_WITHIN) -> PostgresEvents:
        """Start listening on the database at `dsn`. Returns once the first LISTEN is
        in place or has failed (then wakeups between replicas start when the
        connection does), or after `ready_within` seconds."""
        events = cls(dsn)
        events._tasks = [
            asyncio.create_task(events._listen(), name="strata-events-listen"),
            asyncio.create_task(events._send(), name="strata-events-send"),
        ]
        try:
            async with asyncio.timeout(ready_within):
                await events._settled.wait()
        except TimeoutError:
            pass  # still connecting: the fallback poll covers the wait
        return events

    def notify(self, topic: str) -> None:
        """Wake waiters on `topic` here at once, and queue it for the other replicas."""
        self._local.notify(topic)
        if self._closed or topic in self._queued:
            return
        if len(topic.encode()) > MAX_PAYLOAD_BYTES:
            log.warning("events topic too long to send to other replicas", topic=topic[:100])
            return
        if len(self._queued) >= MAX_PENDING:
            return  # the sender is far behind (an outage): the fallback poll covers it
        self._queued.add(topic)
        self._outbox.put_nowait(topic)

    def listen(self, *topics: str) -> Listener:
        """Start listening on `topics` now, for notifies from any replica."""
        return self._local.listen(*topics)

    async def wait(self, topic: str, within: float) -> bool:
        """Wait up to `within` seconds for a notify on `topic`, from any replica."""
        return await self._local.wait(topic, within)

    async def close(self) -> None:
        """Stop both tasks and close their connections."""
        self._closed = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._local.close()

    async def _connect(self) -> Conn:
        return await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)

    async def _listen(self) -> None:
        backoff = Backoff()
        while True:
            conn: Conn | None = None
            try:
                conn = await self._connect()
                await conn.execute(f"LISTEN {CHANNEL}")
                self._restored()
                backoff.reset()
                self._settled.set()
                while True:
                    async for note in conn.notifies(timeout=IDLE_CHECK_SECONDS):
                        # Our own sends were delivered locally already.
                        if note.pid != self._sender_pid:
                            self._local.notify(note.payload)
                    await conn.execute("SELECT 1")  # a dead connection shows here at the latest
            except psycopg.Error as error:
                self._lost(error)
                self._settled.set()
            finally:
                if conn is not None:
                    await conn.close()
            await asyncio.sleep(backoff.next())

    async def _send(self) -> None:
        backoff = Backoff()
        conn: Conn | None = None
        try:
            while True:
                topics = [await self._outbox.get()]
                while not self._outbox.empty():
                    topics.append(self._outbox.get_nowait())
                # Unmark before sending: a notify from now on must be sent again.
                self._queued.difference_update(topics)
                try:
                    if conn is None:
                        conn = await self._connect()
                        self._sender_pid = conn.info.backend_pid
                    await conn.execute(
                        "SELECT pg_notify(%s, topic) FROM unnest(%s::text[]) AS topic",
                        (CHANNEL, topics),
                        prepare=True,
                    )
                    backoff.reset()
                except psycopg.Error as error:
                    self._lost(error)
                    self._sender_pid = None
                    if conn is not None:
                        await conn.close()
                        conn = None
                    await asyncio.sleep(backoff.next())
        finally:
            if conn is not None:
                await conn.close()

    def _lost(self, error: psycopg.Error) -> None:
        if not self._down:
            self._down = True
            log.warning(
                "events connection lost: long polls fall back to polling until it returns",
                backend="postgres",
                error=" ".join(str(error).split()),
            )

    def _restored(self) -> None:
        if self._down:
            self._down = False
            log.info("events connection restored", backend="postgres")
