"""The transfer port: the rows of ExportNamespace and ImportNamespace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from strata_server.core.models import Actor
from strata_server.core.transfer_format import ConflictPolicy, ImportCounts
from strata_server.core.transfer_rows import RowBatch
from strata_server.core.values import frozen


@frozen
class ImportRequest:
    """Where an import's rows go, what becomes of a row whose key is stored, and who
    the audit names: what every engine's import passes along whole to the shared
    writer (storage/transfer_tables.py)."""

    namespace: str
    policy: ConflictPolicy
    actor: Actor


class TransferStore(Protocol):
    """The rows of ExportNamespace and ImportNamespace (core/transfer_format.py: the format)."""

    def export_rows(
        self, namespace: str, owner: str | None
    ) -> AsyncIterator[dict[str, int] | RowBatch]:
        """From one consistent snapshot: first the counts (each Kind, plus "blobs" and
        "blob_bytes" of the distinct blobs the artifacts name), then the rows in
        batches, kind by kind in KINDS order, each kind in key order. Records past
        their expire_time are left out; with `owner`, only that owner's records,
        transcripts (and entries) and artifacts, and the audit entries about them."""
        ...

    async def import_rows(
        self, request: ImportRequest, batches: AsyncIterator[RowBatch]
    ) -> ImportCounts:
        """Write every batch into `request.namespace` in one transaction, or nothing.
        A row whose key is stored is skipped, overwritten (a transcript's entries
        replaced by the archive's) or refused (AlreadyExists) by `request.policy`; an
        audit entry the log already holds is skipped. Ends with an `import` audit
        entry."""
        ...
