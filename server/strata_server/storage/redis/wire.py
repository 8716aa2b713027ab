"""Redis spoken directly over asyncio, for the hot paths: the GET of a cache hit,
and the PUBLISH and SUBSCRIBE that carry wakeups between replicas.

Why not redis-py there: each of its commands checks a connection out of the
blocking pool, arms two timeouts and runs its retry wrapper, and a pub/sub message
goes through `get_message` in a task of its own. Here, concurrent GETs share one
connection, each costs one write, and one `data_received` answers every reply a
read brings, in order (Redis answers a connection's commands in the order they
came); a wakeup between processes skips the listener task (see events.redis). Both
cost a fraction of redis-py's CPU and latency (bench/RESULTS.md, "measured in
passing").
Every other command (scripts, DEL, SCAN, INFO) still goes through redis-py.

Where and how to connect (host or socket path, TLS, credentials, database,
timeouts) is taken from the redis-py client `storage.redis_client` built, so it is
read in one place. Failures surface as redis-py's own exceptions, so callers
handle them as they handle redis-py's: a connection that closes or errors fails
every command waiting on it with `ConnectionError`; a command unanswered after the
client's socket timeout aborts the connection the same way (the replies behind it
could no longer be matched), with `TimeoutError`; an error reply (say LOADING after
a restart) fails only its own command, with `ResponseError`.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Callable, Sequence
from typing import Any, cast

import hiredis
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection

Waiter = tuple["asyncio.Future[Any]", float]


def command(*parts: str | bytes) -> bytes:
    """One command in the Redis protocol (RESP): an array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Connection(asyncio.Protocol):
    """One connection: commands answered in the order they were sent. With
    `on_message`, the pub/sub messages Redis pushes (which answer no command) go to
    it, with their payload, as they arrive."""

    def __init__(self, timeout: float, on_message: Callable[[bytes], None] | None) -> None:
        self._timeout = timeout
        self._on_message = on_message
        self._reader = hiredis.Reader()
        self._waiting: collections.deque[Waiter] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self._watch: asyncio.TimerHandle | None = None
        self.closed: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
        """Resolves, with why, when the connection is gone."""

    @property
    def lost(self) -> bool:
        """Whether the connection is gone (a new one is needed)."""
        return self.closed.done()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                if (
                    self._on_message is not None
                    and isinstance(reply, list)
                    and reply[:1] == [b"message"]
                ):
                    self._on_message(reply[2])
                    continue
                future, _ = self._waiting.popleft()
                if future.done():  # its caller gave up (cancelled)
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    future.set_exception(redis_errors.ResponseError(str(reply)))
                else:
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as error:
            self._fail(redis_errors.ConnectionError(f"unexpected data from Redis: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        detail = f": {exc}" if exc is not None else ""
        self._fail(redis_errors.ConnectionError(f"Redis closed the connection{detail}"))

    def send(self, data: bytes) -> asyncio.Future[Any]:
        """Write one command (see `command`); the future holds its reply."""
        return self.send_all([data])[0]

    def send_all(self, commands: Sequence[bytes]) -> list[asyncio.Future[Any]]:
        """Write several commands in one write; a future for each one's reply."""
        if self.lost or self._transport is None:
            raise redis_errors.ConnectionError("the connection to Redis is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        futures: list[asyncio.Future[Any]] = []
        for _ in commands:
            future: asyncio.Future[Any] = loop.create_future()
            self._waiting.append((future, deadline))
            futures.append(future)
        self._transport.write(b"".join(commands))
        if self._watch is None:
            self._watch = loop.call_later(self._timeout, self._check)
        return futures

    def _check(self) -> None:
        """Abort when the oldest command is overdue; else look again when it will be.
        One timer per connection, not one per command."""
        self._watch = None
        if not self._waiting:
            return
        loop = asyncio.get_running_loop()
        deadline = self._waiting[0][1]
        if loop.time() >= deadline:
            self._fail(redis_errors.TimeoutError("Redis did not answer within the timeout"))
        else:
            self._watch = loop.call_at(deadline, self._check)

    def close(self) -> None:
        """Close the connection, failing the commands still waiting on it."""
        self._fail(redis_errors.ConnectionError("the connection to Redis was closed"))

    def _fail(self, error: Exception) -> None:
        if not self.closed.done():
            self.closed.set_result(error)
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._transport is not None:
            self._transport.abort()
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)


class Endpoint:
    """Where a Redis is and how to log in to it; `connect` opens a `Connection`."""

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int = 6379,
        path: str | None = None,
        tls: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        timeout: float = 1.0,
        connect_timeout: float = 1.0,
    ) -> None:
        self._host, self._port, self._path, self._tls = host, port, path, tls
        self._hello: list[bytes] = []
        if password is not None:
            self._hello.append(command("AUTH", *([username] if username else []), password))
        if db:
            self._hello.append(command("SELECT", str(db)))
        self.timeout = timeout
        self.connect_timeout = connect_timeout

    @classmethod
    def of(cls, client: Redis) -> Endpoint:
        """The Redis `client` talks to, with the client's settings."""
        pool = client.connection_pool
        kwargs: dict[str, Any] = pool.connection_kwargs
        kind = pool.connection_class
        tls = None
        if issubclass(kind, SSLConnection):
            # redis-py's own TLS settings (the URL's ssl_* options), as its pool uses.
            tls = kind(**kwargs).ssl_context.get()
        return cls(
            host=kwargs.get("host") or "localhost",
            port=int(kwargs.get("port") or 6379),
            path=kwargs.get("path") if issubclass(kind, UnixDomainSocketConnection) else None,
            tls=tls,
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            db=int(kwargs.get("db") or 0),
            timeout=float(kwargs.get("socket_timeout") or 1.0),
            connect_timeout=float(kwargs.get("socket_connect_timeout") or 1.0),
        )

    async def connect(self, on_message: Callable[[bytes], None] | None = None) -> Connection:
        """A new connection, logged in and on its database."""
        loop = asyncio.get_running_loop()

        def made() -> Connection:
            return Connection(self.timeout, on_message)

        try:
            async with asyncio.timeout(self.connect_timeout):
                if self._path is not None:
                    _, connection = await loop.create_unix_connection(made, self._path)
                else:
                    _, connection = await loop.create_connection(
                        made, self._host, self._port, ssl=self._tls
                    )
                try:
                    for hello in self._hello:
                        await connection.send(hello)
                except BaseException:
                    connection.close()
                    raise
        except TimeoutError as error:
            raise redis_errors.TimeoutError("connecting to Redis timed out") from error
        except OSError as error:  # ssl.SSLError is one too
            raise redis_errors.ConnectionError(f"cannot connect to Redis: {error}") from error
        return connection


class Held:
    """One connection held for reuse: opened on first use, and again after a loss.
    Concurrent callers share one attempt to open it."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._connection: Connection | None = None
        self._opening: asyncio.Future[Connection] | None = None

    @property
    def ready(self) -> Connection | None:
        """The open connection, if there is one now."""
        connection = self._connection
        return connection if connection is not None and not connection.lost else None

    async def get(self) -> Connection:
        """The open connection, opening one when there is none."""
        connection = self.ready
        if connection is not None:
            return connection
        opening = self._opening
        if opening is None or opening.done():  # a done one opened what is now lost, or failed
            opening = self._opening = asyncio.ensure_future(self._open())
        return await asyncio.shield(opening)

    async def _open(self) -> Connection:
        self._connection = await self._endpoint.connect()
        return self._connection

    def close(self) -> None:
        """Close the connection (and stop one being opened)."""
        if self._opening is not None:
            self._opening.cancel()
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class PipelinedGets:
    """GET, every call of a process pipelined on one held connection."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._held = Held(endpoint)

    async def get(self, key: str) -> Any:
        """The reply to `GET key`: bytes, or None when the key holds nothing."""
        connection = self._held.ready or await self._held.get()
        data = key.encode()
        # command("GET", key) written out, a quarter of the generic encoder's time, on
        # every cache hit (bench/RESULTS.md, "measured in passing").
        return await connection.send(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(data), data))

    async def close(self) -> None:
        """Close the held connection, failing the GETs still waiting on it."""
        self._held.close()
