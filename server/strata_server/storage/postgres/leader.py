"""Leadership among the processes on one PostgreSQL database (RetentionStore.lead).

A session advisory lock, on a connection of its own kept open while this process
leads: a pooled connection would hand the lock to whoever took it next.
"""

from __future__ import annotations

import contextlib

import psycopg

from strata_server.storage.postgres.pool import Conn


class SessionLeader:
    """The locks this process holds, on its own session."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._session: Conn | None = None
        self._led: set[str] = set()

    async def lead(self, name: str) -> bool:
        """Whether this process holds the lock `name`, taking it when it is free; a
        lost session loses every lock (and says False until it takes them again)."""
        try:
            if self._session is None or self._session.closed:
                self._led.clear()
                self._session = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                )
            if name in self._led:
                await self._session.execute("SELECT 1")  # the session, so the lock, still holds
                return True
            cursor = await self._session.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s))", ("strata.lead." + name,)
            )
            row = await cursor.fetchone()
            if row is not None and row[0]:
                self._led.add(name)
                return True
            return False
        except psycopg.Error:
            await self.close()
            return False

    async def close(self) -> None:
        """Give up every lock (by closing the session)."""
        self._led.clear()
        if self._session is not None:
            with contextlib.suppress(psycopg.Error):
                await self._session.close()
            self._session = None
