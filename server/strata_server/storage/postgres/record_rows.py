"""A record's row read back, and the clock the PostgreSQL adapters stamp writes with
(both shared by several modules, which the records adapter imports in turn)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from strata_server.core.models import (
    Record,
)


def now() -> datetime:
    """The current time at the microsecond precision timestamptz stores."""
    return datetime.now(UTC)


def record_from_row(namespace: str, row: Sequence[Any]) -> Record:
    """A Record from the first columns of a row selected with `queries.RECORD_COLUMNS`."""
    return Record(namespace, row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7] or "")
