"""Parent references: a transcript or an artifact may name the record it belongs to.

A parent is a reference, not a foreign key. It may name a record that does not
exist (yet): a caller can upload an artifact before the Commit that creates its
record, and an import brings children and records in any order. Creating a child
therefore never reads the records table. What keeps references true is the
delete of a record, which refuses while children exist or deletes them with it
(`cascade`), and CheckIntegrity, which reports the children whose record is gone
(a record expired or purged by retention leaves its children behind) and, asked
to repair, clears their parent (see `DANGLING_REPAIR`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from strata_server.core import validation
from strata_server.core.errors import FailedPrecondition, InvalidArgument, with_write_index
from strata_server.core.values import frozen


@frozen
class ParentRef:
    """The record a child belongs to, within the child's namespace."""

    collection: str
    id: str

    def __str__(self) -> str:
        return f"{self.collection}/{self.id}"


@frozen
class ChildRef:
    """A transcript or an artifact that names a record as its parent."""

    kind: str
    """"transcript" or "artifact" (the audit log's entity)."""
    id: str
    parent: ParentRef


CHILD_KINDS = ("transcript", "artifact")
"""The kinds of child, in the order a delete and a check visit them."""

LISTED_CHILDREN = 100
"""Most children a refused delete names (its `children` metadata counts them all)."""


def parent_ref(collection: str, id: str, field: str = "parent") -> ParentRef | None:
    """A validated parent from a request's two fields; None when both are empty."""
    if not collection and not id:
        return None
    if not collection or not id:
        raise InvalidArgument.field(field, "needs both a collection and an id, or neither")
    return ParentRef(
        validation.collection(collection, f"{field}.collection"),
        validation.entity_id(id, f"{field}.id"),
    )


class HasChildren(FailedPrecondition):
    """The record has transcripts or artifacts naming it as their parent; delete
    them first, or delete with cascade."""

    reason = "HAS_CHILDREN"

    def __init__(self, record: ParentRef, children: Sequence[ChildRef], total: int) -> None:
        super().__init__(
            f"record {record} has {total} children (transcripts or artifacts naming it "
            "as their parent); delete them first, or delete with cascade",
            metadata={"collection": record.collection, "id": record.id, "children": str(total)},
        )
        self.children = tuple(children[:LISTED_CHILDREN])
        """The first LISTED_CHILDREN children, sent as PreconditionFailure violations."""


@frozen
class ParentDelete:
    """A record a commit deletes: the position of its (last) delete write, and
    whether that write cascades to the record's children."""

    index: int
    cascade: bool


def cascading(
    deletes: Mapping[ParentRef, ParentDelete], children: Iterable[ChildRef]
) -> list[ParentRef]:
    """The deleted records whose children go with them. A refusing delete of a
    record that has children raises HasChildren (tagged with its write's index,
    the first such write of the commit), so nothing of the commit is written."""
    found: dict[ParentRef, list[ChildRef]] = {}
    for child in children:
        found.setdefault(child.parent, []).append(child)
    refused = [parent for parent in found if not deletes[parent].cascade]
    if refused:
        parent = min(refused, key=lambda ref: deletes[ref].index)
        error = HasChildren(parent, found[parent], len(found[parent]))
        raise with_write_index(error, deletes[parent].index)
    return list(found)


DANGLING = "names as its parent record {parent}, which does not exist"
"""The problem of a child whose parent record is gone."""

DANGLING_REPAIR = "clear"
"""How CheckIntegrity repairs a dangling child: it clears the child's parent (with
an audit entry naming the record it named) rather than deleting the child. The
child's content is kept: a record purged by expiry or retention says nothing
about whether what was attached to it is still wanted, and a child may have been
made before its record on purpose. Clearing cannot lose data; deleting could."""
