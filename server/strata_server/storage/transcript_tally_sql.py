"""CheckIntegrity's transcript statements, in SQL both engines share: how many
transcripts there are, the tally of each one's counters against its entries
(core.integrity_findings.TranscriptTally), and entries whose transcript is gone.
An archived transcript has no entry rows (its entries are in its segments), so it
is never tallied, nor re-read by a repair.

The engines differ only in how a named parameter is written (and PostgreSQL's cast
of the namespace it compares with NULL), so each builds its statements with its own
`param`, as in `retention_sql`; the tally itself is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from strata_server.core.integrity_findings import TranscriptTally

Param = Callable[[str], str]
"""Writes the placeholder of a named parameter."""


def _tally(entries: str, transcripts: str) -> str:
    """Each transcript matching `transcripts`, its counters beside what its entries
    matching `entries` add up to, in the order `tally_from_row` reads."""
    return f"""
SELECT t.namespace, t.id, t.next_seq, t.size_bytes,
       coalesce(e.n, 0), coalesce(e.max_seq, 0), coalesce(e.total, 0), coalesce(e.end_offset, 0)
FROM transcripts AS t
LEFT JOIN (
    SELECT namespace, transcript_id, count(*) AS n, max(seq) AS max_seq,
           CAST(sum(size) AS bigint) AS total, max(start_offset + size) AS end_offset
    FROM transcript_entries
    WHERE {entries}
    GROUP BY namespace, transcript_id
) AS e ON e.namespace = t.namespace AND e.transcript_id = t.id
WHERE {transcripts}
"""


def _any_or(param: Param, optional: str, column: str) -> str:
    """True for every row when the namespace parameter is NULL, else for its rows."""
    return f"{param('namespace')}{optional} IS NULL OR {column} = {param('namespace')}"


def count_transcripts(param: Param, optional: str = "") -> str:
    """How many transcripts the namespace (every one, when NULL) holds; `optional`
    is appended to the placeholder compared with NULL (a cast PostgreSQL needs)."""
    return f"SELECT count(*) FROM transcripts WHERE {_any_or(param, optional, 'namespace')}"


def off_transcripts(param: Param, optional: str = "") -> str:
    """The tally of the transcripts whose counters disagree with their entries, or
    whose entries are not whole, in the namespace (every one, when NULL)."""
    return _tally(
        _any_or(param, optional, "namespace"),
        f"""({_any_or(param, optional, "t.namespace")}) AND t.archive_time IS NULL
  AND (t.next_seq <> coalesce(e.max_seq, 0) + 1 OR t.size_bytes <> coalesce(e.total, 0)
       OR coalesce(e.n, 0) <> coalesce(e.max_seq, 0)
       OR coalesce(e.end_offset, 0) <> coalesce(e.total, 0))
ORDER BY t.namespace, t.id""",
    )


def one_transcript(param: Param) -> str:
    """The tally of one transcript (namespace, id): what a repair re-reads."""
    namespace, id = param("namespace"), param("id")
    return _tally(
        f"namespace = {namespace} AND transcript_id = {id}",
        f"t.namespace = {namespace} AND t.id = {id} AND t.archive_time IS NULL",
    )


def orphan_entries(param: Param, optional: str = "") -> str:
    """(namespace, transcript_id, entries) of the entries whose transcript is gone."""
    return f"""
SELECT e.namespace, e.transcript_id, count(*) FROM transcript_entries AS e
WHERE ({_any_or(param, optional, "e.namespace")})
  AND NOT EXISTS (
      SELECT 1 FROM transcripts AS t WHERE t.namespace = e.namespace AND t.id = e.transcript_id)
GROUP BY e.namespace, e.transcript_id
ORDER BY e.namespace, e.transcript_id
"""


def tally_from_row(row: Sequence[Any]) -> TranscriptTally:
    """The TranscriptTally of a row of `off_transcripts` or `one_transcript`."""
    return TranscriptTally(*(int(value) for value in row[2:]))
