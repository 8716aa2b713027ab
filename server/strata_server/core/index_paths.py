"""Declared secondary indexes: which data fields may be indexed, and the database
index that serves each.

A declaration belongs to one (namespace, collection, field); the database index
serving it is named by the field alone (`index_name`), so one index per field
serves every collection that declares it. Its key is (namespace, collection, the
field's value, id), so an equality filter on the field both finds and orders a
page of one collection, and it holds only records that have the field.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from strata_server.core.errors import InvalidArgument
from strata_server.core.filters import DATA_KEY
from strata_server.core.values import frozen

MAX_INDEX_KEYS = 8
"""Deepest data path an index may name."""


@frozen
class RecordIndex:
    """A declared index on a data path of one collection."""

    collection: str
    path: tuple[str, ...]
    index_name: str
    ready: bool
    create_time: datetime

    @property
    def field(self) -> str:
        """The field as filters name it, e.g. "data.status"."""
        return field_name(self.path)


def parse_field(value: str, field: str = "field") -> tuple[str, ...]:
    """The data path of "data.a.b" (as filters name fields); INVALID_ARGUMENT else."""
    if not value:
        raise InvalidArgument.field(field, "is required, e.g. data.status")
    name, _, rest = value.partition(".")
    keys = tuple(rest.split(".")) if rest else ()
    if name != "data" or not keys:
        raise InvalidArgument.field(
            field, "must name a key inside data, as filters do: data.status, data.customer.id"
        )
    if len(keys) > MAX_INDEX_KEYS:
        raise InvalidArgument.field(field, f"may name at most {MAX_INDEX_KEYS} nested keys")
    for key in keys:
        if not DATA_KEY.fullmatch(key):
            raise InvalidArgument.field(
                field, f"key {key[:40]!r} must be 1-128 letters, digits or '_'"
            )
    return keys


def field_name(path: tuple[str, ...]) -> str:
    """Inverse of parse_field."""
    return "data." + ".".join(path)


def index_name(path: tuple[str, ...]) -> str:
    """The database index serving `path`: readable, unique per path (the hash tells
    paths apart whose names would collide when cut), and within PostgreSQL's 63
    bytes."""
    digest = hashlib.sha256(".".join(path).encode()).hexdigest()[:8]
    return f"records_f_{'_'.join(path)[:40]}_{digest}".lower()
