"""GetRecord by key with concurrent reads of one collection answered together.

A read by key costs the database little; what it costs the server is the statement
around it: a pool checkout, psycopg's send and wait, a PostgreSQL round trip, each
paid once per call (bench/RESULTS.md, records). So at most `IN_FLIGHT` such
statements run at a time: a read that finds one free runs alone, exactly as
before, and one that finds none waits, with the others of its collection, for the
next free one, which reads all their ids in one statement. A single caller never
waits; many callers share statements instead of queueing for them one by one.

Every waiting read is answered by a statement that starts after the read arrived,
so it sees every write acknowledged before it was asked (read-your-writes holds as
for a statement of its own). A caller that gives up (a deadline, a cancelled call)
leaves its wait; the statement still answers the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from strata_server.core.models import Record

IN_FLIGHT = 4
"""Most key-read statements at once; more concurrent reads wait and share one."""

MAX_KEYS = 500
"""Most ids one shared statement reads; more waiting readers take the next one."""

Fetch = Callable[[str, str, Sequence[str]], Awaitable[dict[str, Record]]]
"""Reads the live records among ids of (namespace, collection): found ones by id."""

_Waiters = dict[str, list["asyncio.Future[Record | None]"]]


class KeyReads:
    """Reads by key through `fetch`, shared between concurrent callers (see above)."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._running = 0
        self._waiting: dict[tuple[str, str], _Waiters] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, namespace: str, collection: str, id: str) -> Record | None:
        """The live record `id`, or None."""
        if self._running < IN_FLIGHT and not self._waiting:
            self._running += 1
            try:
                return (await self._fetch(namespace, collection, (id,))).get(id)
            finally:
                self._done()
        future: asyncio.Future[Record | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((namespace, collection), {}).setdefault(id, []).append(future)
        self._start()
        return await future

    def _done(self) -> None:
        self._running -= 1
        self._start()

    def _start(self) -> None:
        """Start shared statements for the waiting reads while any is free."""
        while self._running < IN_FLIGHT and self._waiting:
            key = next(iter(self._waiting))
            waiting = self._waiting[key]
            taken = dict(list(waiting.items())[:MAX_KEYS])
            if len(taken) == len(waiting):
                del self._waiting[key]
            else:
                for id in taken:
                    del waiting[id]
            self._running += 1
            task = asyncio.create_task(self._answer(key, taken))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, key: tuple[str, str], waiters: _Waiters) -> None:
        """One statement for `waiters`' ids; each waiter gets its record, or the error."""
        try:
            found = await self._fetch(key[0], key[1], list(waiters))
        except BaseException as error:
            for futures in waiters.values():
                for future in futures:
                    if not future.done():
                        if isinstance(error, asyncio.CancelledError):
                            future.cancel()
                        else:
                            future.set_exception(error)
            if not isinstance(error, Exception):
                raise
        else:
            for id, futures in waiters.items():
                for future in futures:
                    if not future.done():
                        future.set_result(found.get(id))
        finally:
            self._done()
