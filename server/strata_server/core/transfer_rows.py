"""The rows of a namespace transfer archive, as the storage port reads and writes
them: the domain type of each kind, plus the two that only a transfer has (a
queue's settings, a transcript entry with its place).

Their JSON Lines form is in `transfer_row_encoding` (export) and
`transfer_row_decoding` (import); `entry_offsets` places imported entries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from strata_server.core.artifact_rules import Artifact
from strata_server.core.job_transitions import Job
from strata_server.core.models import LoggedAudit, Record
from strata_server.core.transcript_rules import Transcript
from strata_server.core.transfer_format import Kind
from strata_server.core.values import frozen


@frozen
class QueueSetting:
    """A queue's settings row: whether leasing from it is paused."""

    queue: str
    paused: bool


class ArchivedEntry(NamedTuple):
    """A transcript entry with the transcript it belongs to and its byte offset."""

    transcript_id: str
    seq: int
    start_offset: int
    size: int
    role: str
    content: str
    data: dict[str, Any] | None
    create_time: datetime


Row = QueueSetting | Record | Job | Transcript | ArchivedEntry | Artifact | LoggedAudit


@frozen
class RowBatch:
    """Consecutive rows of one kind, as the storage port reads and writes them."""

    kind: Kind
    rows: list[Any]
