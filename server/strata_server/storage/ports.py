"""The storage ports: what the services need from a backend, as typing.Protocols.

The gRPC layer depends only on these; `strata_server.app` picks the adapter.
Every method raises only `strata_server.core.errors` types: adapters translate
driver exceptions at their boundary (an unreachable database is `Unavailable`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from strata_server.core.filters import Filter
from strata_server.core.models import (
    Actor,
    Idempotency,
    ListQuery,
    Page,
    Record,
    SearchHit,
    SearchQuery,
    ServerFacts,
    Write,
    WriteResult,
)


class RecordStore(Protocol):
    """Durable records plus the one transactional write path every mutation takes.

    Expired records (expire_time <= now) are invisible to every read at once and
    removed later by `purge_expired`.
    """

    async def get_record(self, namespace: str, collection: str, id: str) -> Record:
        """The live record, or NotFound."""
        ...

    async def batch_get_records(
        self, namespace: str, collection: str, ids: Sequence[str]
    ) -> list[Record]:
        """The live records among `ids`, in any order; missing ids are simply absent."""
        ...

    async def list_records(self, namespace: str, query: ListQuery) -> Page[Record]:
        """One page in `query.order`, starting after `query.after`.

        Returns `last_key` (the sort values of the last row, one per order key) when
        a further page may exist.
        """
        ...

    async def count_records(self, namespace: str, collection: str, filter: Filter | None) -> int:
        """How many live records match."""
        ...

    async def search_records(self, namespace: str, query: SearchQuery) -> Page[SearchHit]:
        """Full-text matches over the string values of data, best first.

        `last_key` is non-None (any value) when a further page may exist.
        """
        ...

    async def commit(
        self,
        namespace: str,
        writes: Sequence[Write],
        *,
        actor: Actor,
        idempotency: Idempotency | None = None,
    ) -> list[WriteResult]:
        """Apply `writes` in order in one transaction, or none of them.

        Each write's preconditions are checked inside the transaction; the first
        failing write's error is raised tagged with `write_index`. Every write
        appends an audit entry in the same transaction. With `idempotency`, a
        repeat of the same request_id and fingerprint returns the first result
        without writing; the same request_id with another fingerprint is
        InvalidArgument.
        """
        ...

    async def purge_expired(self, limit: int) -> int:
        """Delete up to `limit` expired records (with audit entries); return how many."""
        ...


class Database(RecordStore, Protocol):
    """A storage backend's lifecycle, on top of the data ports it serves."""

    async def facts(self) -> ServerFacts:
        """Backend name, applied schema version and capabilities."""
        ...

    async def ping(self) -> None:
        """Return when the database answers; raise Unavailable when it does not."""
        ...

    async def close(self) -> None:
        """Release connections and threads; the object is unusable afterwards."""
        ...
