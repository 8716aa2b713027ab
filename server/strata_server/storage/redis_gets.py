"""`PipelinedGets`: Redis GETs pipelined on one held connection, for cache hits.

Why not redis-py's `GET`: every call checks a connection out of the blocking pool,
arms two timeouts and runs its retry wrapper. Measured on this project's 2-core
VM with 32 GETs in flight under uvloop, that is 162 µs of CPU per GET, against
26 µs here, where concurrent GETs share one connection, each costs one write, and
a single `data_received` answers every reply a read brings, in order (Redis
answers a connection's commands in the order it sent them). A cache hit is about
one GET plus the gRPC call, so the pool's overhead was a fifth of a hit's cost
(bench/cache.py; RESULTS.md, "cache"). Every other command still goes through
redis-py and its pool.

Connection settings come from the redis-py client `storage.redis_client` built
(host or socket path, credentials, database, timeouts), so they are read in one
place. `for_client` returns None for TLS connections, which then keep redis-py's
GET.

Failure: a connection that closes or errors fails every GET waiting on it with a
`ConnectionError`, and the next GET connects again; a GET unanswered after the
client's socket timeout aborts the connection the same way (the replies behind it
could no longer be matched). An error reply (say LOADING after a restart) fails
only its own GET, with `ResponseError`. All of these are redis-py exceptions, so
callers handle them as they handle redis-py's own.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, cast

import hiredis
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection

Waiter = tuple["asyncio.Future[Any]", float]


def _command(*parts: bytes) -> bytes:
    """One command in the Redis protocol (RESP): an array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class _Replies(asyncio.Protocol):
    """One connection: writes commands, and answers their futures in order."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._reader = hiredis.Reader()
        self._waiting: collections.deque[Waiter] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self._watch: asyncio.TimerHandle | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
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

    def send(self, command: bytes) -> asyncio.Future[Any]:
        """Write `command`; the future holds its reply."""
        if self.lost or self._transport is None:
            raise redis_errors.ConnectionError("the connection to Redis is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((future, loop.time() + self._timeout))
        self._transport.write(command)
        if self._watch is None:
            self._watch = loop.call_later(self._timeout, self._check)
        return future

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
        self._fail(redis_errors.ConnectionError("the connection to Redis was closed"))

    def _fail(self, error: Exception) -> None:
        self.lost = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._transport is not None:
            self._transport.abort()
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)


class PipelinedGets:
    """GET over one held connection, opened on first use and again after a loss."""

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int = 6379,
        path: str | None = None,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        timeout: float = 1.0,
        connect_timeout: float = 1.0,
    ) -> None:
        self._host, self._port, self._path = host, port, path
        self._hello: list[bytes] = []
        if password is not None:
            auth = [username.encode()] if username else []
            self._hello.append(_command(b"AUTH", *auth, password.encode()))
        if db:
            self._hello.append(_command(b"SELECT", str(db).encode()))
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._replies: _Replies | None = None
        self._opening: asyncio.Future[_Replies] | None = None

    @classmethod
    def for_client(cls, client: Redis) -> PipelinedGets | None:
        """GETs to the Redis `client` talks to, with its settings; None over TLS."""
        pool = client.connection_pool
        kwargs: dict[str, Any] = pool.connection_kwargs
        if pool.connection_class not in (Connection, UnixDomainSocketConnection):
            return None  # TLS (SSLConnection), or a connection class of the caller's own
        unix = pool.connection_class is UnixDomainSocketConnection
        return cls(
            host=kwargs.get("host") or "localhost",
            port=int(kwargs.get("port") or 6379),
            path=kwargs.get("path") if unix else None,
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            db=int(kwargs.get("db") or 0),
            timeout=float(kwargs.get("socket_timeout") or 1.0),
            connect_timeout=float(kwargs.get("socket_connect_timeout") or 1.0),
        )

    async def get(self, key: str) -> Any:
        """The reply to `GET key`: bytes, or None when the key holds nothing."""
        replies = self._replies
        if replies is None or replies.lost:
            replies = await self._connected()
        encoded = key.encode()
        return await replies.send(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(encoded), encoded))

    async def _connected(self) -> _Replies:
        """The open connection; concurrent callers share one attempt to open it."""
        opening = self._opening
        if opening is None or opening.done():  # a done one opened what is now lost, or failed
            opening = self._opening = asyncio.ensure_future(self._open())
        return await asyncio.shield(opening)

    async def _open(self) -> _Replies:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                if self._path is not None:
                    _, replies = await loop.create_unix_connection(
                        lambda: _Replies(self._timeout), self._path
                    )
                else:
                    _, replies = await loop.create_connection(
                        lambda: _Replies(self._timeout), self._host, self._port
                    )
                try:
                    for command in self._hello:
                        await replies.send(command)
                except BaseException:
                    replies.close()
                    raise
        except TimeoutError as error:
            raise redis_errors.TimeoutError("connecting to Redis timed out") from error
        except OSError as error:
            raise redis_errors.ConnectionError(f"cannot connect to Redis: {error}") from error
        self._replies = replies
        return replies

    async def close(self) -> None:
        """Close the held connection; failing the GETs still waiting on it."""
        if self._opening is not None:
            self._opening.cancel()
        if self._replies is not None:
            self._replies.close()
            self._replies = None
