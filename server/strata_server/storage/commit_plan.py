"""Step 3 of a commit on either engine: each record write decided in order.

Both engines read the stored rows of the keys a commit touches, then decide every
record write with `core.writes.plan_write` against the row as the commit's earlier
writes left it, and only then persist the final state of each key. The deciding
is the same on both, so it is written once, here; the reading and the persisting
are each engine's own (storage/{postgres,sqlite}/commit.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from strata_server.core.errors import StrataError, with_write_index
from strata_server.core.models import Deleted, Record, RecordWrite, WriteResult
from strata_server.core.parent_refs import ChildRef, ParentDelete, ParentRef
from strata_server.core.writes import Outcome, plan_write

Key = tuple[str, str]
"""(collection, id) within one namespace."""


@dataclass(slots=True)
class CommitPlan:
    """The record writes of one commit, decided in order."""

    namespace: str
    at: datetime
    """The commit's one timestamp."""
    max_record_bytes: int
    rows: dict[Key, Record | None]
    """Each key's row as the writes decided so far leave it (at first, as stored:
    expired rows included, `plan_write` treats them as absent)."""

    def decide(self, index: int, write: RecordWrite) -> Outcome:
        """The outcome of the write at `index`, its key's row moved on to it. A
        domain error is tagged with `index`, so a Commit names the failing write."""
        key = (write.collection, write.id)
        try:
            outcome = plan_write(
                self.namespace, write, self.rows[key], self.at, self.max_record_bytes
            )
        except StrataError as error:
            raise with_write_index(error, index) from None
        if outcome.row is not None:
            self.rows[key] = outcome.row
        elif outcome.delete:
            self.rows[key] = None
        return outcome


def with_children(
    results: list[WriteResult],
    deletes: Mapping[ParentRef, ParentDelete],
    gone: Sequence[ChildRef],
) -> None:
    """Name the children a cascade deleted in the result of each record's delete
    write, so the service can wake the deleted transcripts' followers."""
    for parent, delete in deletes.items():
        children = tuple(child for child in gone if child.parent == parent)
        result = results[delete.index]
        if children and isinstance(result, Deleted):
            results[delete.index] = replace(result, children=children)
