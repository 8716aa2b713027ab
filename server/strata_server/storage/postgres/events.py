"""Wakeups between replicas over PostgreSQL LISTEN/NOTIFY on the shared database.

Waiters are kept in process by a `LocalEvents`; this adapter only carries topics
between processes. One dedicated connection (outside the pool, autocommit) LISTENs
on `strata_events` and wakes local waiters with each notification's payload, the
topic. `notify` wakes local waiters at once and queues the topic for a sender task,
which publishes every queued topic with one `pg_notify` round trip on a connection
of its own; a topic already queued is not queued twice.

A write can also carry its wakeup itself: `commit_notice` gives the payload, and
the PostgreSQL store sends it with `pg_notify` from the write's own statement, so
the other replicas hear of the write at its commit, without the sender's round trip
after it (the API then calls `notify(..., announced=True)`, which wakes only local
waiters). Every payload starts with this process's origin token: the listener skips
its own process's payloads, whose local waiters were woken already.

Wakeups carry no data and a woken consumer re-reads the database, so losing some is
harmless: while the listening connection is down (logged once per outage) wakeups
from other replicas are missed, so the topics with listeners are re-checked at the
degraded interval (storage/memory/events.py), and every listener is woken once when
the LISTEN is back. Topics the sender could not send are queued again and go out
after it reconnects. Both connections reconnect with backoff; the listener LISTENs
again on each new connection.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TypeAlias, Unpack

import psycopg
import structlog
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from strata_server.core.errors import Unavailable
from strata_server.storage.events_relay import (
    POSTGRES_CHANNEL,
    READY_WITHIN,
    Backoff,
)
from strata_server.storage.memory.events import Pacing
from strata_server.storage.relayed_events import RelayedEvents

log = structlog.get_logger("strata.events")

Conn: TypeAlias = psycopg.AsyncConnection[TupleRow]

CHANNEL = POSTGRES_CHANNEL
MAX_PAYLOAD_BYTES = 7999
"""NOTIFY payloads must be shorter than 8000 bytes; longer topics stay local."""
SEPARATOR = "\x1f"
"""Between a payload's origin token and its topic (topics never hold it)."""
IDLE_CHECK_SECONDS = 10.0
"""How long the listener waits for notifications before checking its connection."""
CONNECT_SECONDS = 5
"""libpq's connect timeout for the events connections, unless the DSN sets one."""
APPLICATION_NAME = "strata-events"
"""How the events connections show in pg_stat_activity, unless the DSN names one."""


def events_conninfo(dsn: str) -> str:
    """The DSN with a connect timeout (so a connect to a server that does not answer
    fails in bounded time, and the backoff goes on) and an application name of its
    own, unless it sets them. Built here, not taken from the store's pool: these two
    connections run no caller's statement, so the pool's session settings (TimeZone,
    statement_timeout) do not concern them, and this adapter needs nothing from the
    PostgreSQL store (which imports this package's channel name)."""
    given = conninfo_to_dict(dsn)
    defaults: dict[str, str | int] = {
        "connect_timeout": CONNECT_SECONDS,
        "application_name": APPLICATION_NAME,
    }
    return make_conninfo(dsn, **{k: v for k, v in defaults.items() if k not in given})


class PostgresEvents(RelayedEvents):
    """The `storage.ports.Events` port over LISTEN/NOTIFY; build it with `open`."""

    backend = "postgres"

    def __init__(self, dsn: str, **pacing: Unpack[Pacing]) -> None:
        super().__init__(**pacing)
        self._conninfo = events_conninfo(dsn)
        self._origin = secrets.token_hex(8)

    @classmethod
    async def open(
        cls, dsn: str, *, ready_within: float = READY_WITHIN, **pacing: Unpack[Pacing]
    ) -> PostgresEvents:
        """Start listening on the database at `dsn`. Returns once the first LISTEN is
        in place or has failed (then wakeups between replicas start when the
        connection does), or after `ready_within` seconds."""
        events = cls(dsn, **pacing)
        await events._start(ready_within)
        return events

    def notify(self, topic: str, *, announced: bool = False) -> None:
        """Wake waiters on `topic` here at once, and (unless the write's commit
        `announced` it) queue it for the other replicas."""
        self._local.notify(topic)
        if announced or self._closed:
            return
        if self._payload(topic) is None:
            log.warning("events topic too long to send to other replicas", topic=topic[:100])
            return
        self._outbox.put(topic)

    async def send(self, topic: str) -> None:
        """Wake waiters on `topic` here, and NOTIFY the other replicas on a connection
        of its own, returning once the database has taken it (see the port)."""
        self._local.notify(topic)
        payload = self._payload(topic)
        if payload is None:
            log.warning("events topic too long to send to other replicas", topic=topic[:100])
            return
        try:
            async with await self._connect() as conn:
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
        except psycopg.Error as error:
            raise Unavailable(f"cannot reach PostgreSQL to send a wakeup: {error}") from error

    def commit_notice(self, topic: str) -> str | None:
        """The NOTIFY payload for `topic` (on CHANNEL), for a write to send when it
        commits; None for a topic too long to send."""
        return None if self._closed else self._payload(topic)

    def _payload(self, topic: str) -> str | None:
        payload = self._origin + SEPARATOR + topic
        return payload if len(payload.encode()) <= MAX_PAYLOAD_BYTES else None

    async def _connect(self) -> Conn:
        return await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)

    async def _listen(self) -> None:
        backoff = Backoff()
        while True:
            conn: Conn | None = None
            try:
                conn = await self._connect()
                await conn.execute(f"LISTEN {CHANNEL}")
                self._subscribed()
                backoff.reset()
                while True:
                    async for note in conn.notifies(timeout=IDLE_CHECK_SECONDS):
                        origin, _, topic = note.payload.rpartition(SEPARATOR)
                        # This process's own were delivered locally already.
                        if origin != self._origin:
                            self._local.notify(topic)
                    await conn.execute("SELECT 1")  # a dead connection shows here at the latest
            except psycopg.Error as error:
                self._unsubscribed(error)
            finally:
                if conn is not None:
                    await conn.close()
            await asyncio.sleep(backoff.next())

    async def _send(self) -> None:
        backoff = Backoff()
        conn: Conn | None = None
        try:
            while True:
                topics = await self._outbox.batch()
                try:
                    if conn is None:
                        conn = await self._connect()
                    await conn.execute(
                        "SELECT pg_notify(%s, %s || topic) FROM unnest(%s::text[]) AS topic",
                        (CHANNEL, self._origin + SEPARATOR, topics),
                        prepare=True,
                    )
                    backoff.reset()
                except psycopg.Error as error:
                    self._lost(error)
                    for topic in topics:  # sent after the reconnect, not dropped
                        self._outbox.put(topic)
                    if conn is not None:
                        await conn.close()
                        conn = None
                    await asyncio.sleep(backoff.next())
        finally:
            if conn is not None:
                await conn.close()
