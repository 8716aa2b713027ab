"""The backend port: a storage engine's lifecycle, beside the data ports it serves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from strata_server.core.models import ServerFacts


class Backend(Protocol):
    """What a server asks of its database as a whole, not of one kind of data."""

    async def facts(self) -> ServerFacts:
        """Backend name, applied schema version and capabilities."""
        ...

    async def ping(self) -> None:
        """Return when the database answers; raise Unavailable when it does not."""
        ...

    async def shared_secret(self, name: str, candidate: bytes) -> bytes:
        """The secret kept under `name`, keeping `candidate` first if there is none:
        every server process on this database gets the same bytes (the first to ask
        wins a race), so replicas can verify what any of them signed."""
        ...

    def pool_stats(self) -> Mapping[str, int]:
        """Connection pool figures for metrics, read without I/O: `size` (open),
        `idle`, `waiting` (callers queued for a connection) and `requests` (reads and
        transactions run since the start)."""
        ...

    async def close(self) -> None:
        """Release connections and threads (every port's adapter included); nothing
        of the storage is usable afterwards."""
        ...
