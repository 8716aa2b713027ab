"""The owner port: what a cleanup of one owner counts and removes, across kinds."""

from __future__ import annotations

from typing import Protocol

from strata_server.core.models import Actor, RecordRef
from strata_server.core.values import frozen

OWNER_CLEANUP = "owner_cleanup"
"""The audit action of every row an owner's cleanup removes, so the audit log
tells it apart from a caller's delete and from retention."""


@frozen
class Owned:
    """How much one owner holds in a namespace, by kind."""

    records: int
    transcripts: int
    artifacts: int


class OwnerData(Protocol):
    """An owner's rows of every kind that has owners, in one namespace.

    Each purge deletes at most `limit` rows in one transaction, each with an
    OWNER_CLEANUP audit entry by `actor` in that transaction, so a cleanup is many
    short transactions and one interrupted halfway leaves nothing half-deleted."""

    async def count_owned(self, namespace: str, owner: str) -> Owned:
        """The owner's live and expired records, transcripts and artifacts."""
        ...

    async def purge_owned_records(
        self, namespace: str, owner: str, limit: int, *, actor: Actor
    ) -> list[RecordRef]:
        """Delete up to `limit` of the owner's records; the refs deleted (a cache in
        front must forget them)."""
        ...

    async def purge_owned_transcripts(
        self, namespace: str, owner: str, limit: int, *, actor: Actor
    ) -> list[str]:
        """Delete up to `limit` of the owner's transcripts, open or sealed, with their
        entries (and their full-text index); the ids deleted (their followers must
        be told)."""
        ...

    async def purge_owned_artifacts(
        self, namespace: str, owner: str, limit: int, *, actor: Actor
    ) -> int:
        """Delete up to `limit` of the owner's artifact rows; their blobs stay for the
        orphan-blob sweep, which keeps any blob another artifact names."""
        ...
