"""Bytes per stored transcript entry: what an entry costs on disk, beside its payload.

The issue behind it ("Storage cost of transcripts", issue 22) counted 2.08 MB of
entries taking 3.2 MB. Both shapes are measured the same way: one fresh database,
one transcript, N entries appended through a real `strata serve`, then every
structure that holds entries divided by N:

- PostgreSQL: `pg_total_relation_size('transcript_entries')` after `VACUUM`: the
  heap, its TOAST table and every index (the primary key, the offset index and the
  full-text GIN index), free-space and visibility maps included.
- SQLite: the pages `dbstat` counts for transcript_entries, its indexes and the
  full-text index's shadow tables, after a WAL checkpoint.

The payload beside it is the role and content bytes the client sent, per entry
(and the data's, as compact JSON, when entries carry data). Three payloads: the
transcript benchmark's (~200 B of words, bench/transcripts.py), chat-like text (a
few hundred bytes of prose, every tenth entry several KB), and the benchmark's
words with a ~200 B JSON object as each entry's data (a tool call's arguments).
Run alone (`.venv/bin/python bench/_storage_bytes.py [count]`) it prints all six
figures for a smaller count; bench/transcripts.py calls it for its rows.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg
from _harness import WORK, PgServer  # first: it puts the repository on sys.path

from strata.v1 import transcripts_pb2, transcripts_pb2_grpc
from tests.support.server import StrataProcess

NAMESPACE = "bench"
ROLE = "assistant"
ENTRY_BYTES = 200
"""About how long the transcript benchmark's entries are (bench/transcripts.py)."""
PER_APPEND = 500

PROSE = (
    "Thanks for the details. I looked at the order history for your account and the "
    "refund for the second item was issued on Tuesday; banks usually take three to five "
    "working days to show it. If it has not arrived by Friday, reply here with the last "
    "four digits of the card and I will open a trace with the payments team. "
)
"""One paragraph of a support chat (~330 bytes), varied per entry by its number."""


WORDS = [
    "the",
    "user",
    "asked",
    "about",
    "the",
    "refund",
    "status",
    "of",
    "order",
    "and",
    "the",
    "assistant",
    "looked",
    "it",
    "up",
    "in",
    "the",
    "billing",
    "system",
    "then",
    "replied",
    "with",
    "the",
    "expected",
    "date",
    "tool",
    "call",
    "returned",
    "rows",
]


def content(i: int) -> str:
    """Entry i's text: about ENTRY_BYTES of varied words (a realistic tsvector)."""
    words: list[str] = [f"#{i}"]
    n = i
    while sum(len(w) + 1 for w in words) < ENTRY_BYTES - 12:
        words.append(WORDS[n % len(WORDS)])
        n = n * 31 + 7
    return " ".join(words)


def chat_text(i: int) -> str:
    """Entry i of a chat-like transcript: one or two paragraphs of prose, and every
    tenth entry a long answer of several KB (a pasted log or a long explanation)."""
    paragraphs = 12 + i % 7 if i % 10 == 0 else 1 + i % 2
    return f"[{i}] " + "".join(
        PROSE.replace("order", f"order {i * 7919 % 100_000}") for _ in range(paragraphs)
    )


def tool_data(i: int) -> dict[str, Any]:
    """Entry i's data: a JSON object of about 200 bytes (compact), as a tool call's
    arguments and result would be."""
    return {
        "tool": "billing.lookup",
        "call_id": f"call_{i * 7919 % 1_000_000:06d}",
        "arguments": {"order": i * 31 % 100_000, "fields": ["status", "refund", "eta"]},
        "result": {"status": "refunded", "amount": 42.5 + i % 100, "currency": "EUR"},
        "ok": True,
        "attempt": 1 + i % 3,
    }


DataOf = Callable[[int], dict[str, Any]] | None
"""Each entry's data by its number, or None for entries without data."""


def _compact(data: dict[str, Any]) -> int:
    return len(json.dumps(data, separators=(",", ":")).encode())


@dataclass(frozen=True)
class EntryCost:
    """What N entries cost on disk, and what their payload was."""

    entries: int
    stored_bytes: int
    payload_bytes: int

    @property
    def per_entry(self) -> float:
        return self.stored_bytes / self.entries

    @property
    def payload_per_entry(self) -> float:
        return self.payload_bytes / self.entries

    def describe(self) -> str:
        return (
            f"{self.per_entry:,.0f} B stored per entry "
            f"({self.per_entry / self.payload_per_entry:.2f}x the payload)"
        )


async def append_all(
    target: str,
    count: int,
    text: Callable[[int], str],
    transcript_id: str = "",
    data: DataOf = None,
) -> tuple[str, int]:
    """Append `count` entries (entry i's content is `text(i)`, its data `data(i)`) to
    a new transcript through the server at `target`; its id and the payload's role +
    content (+ data) bytes."""
    payload = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = transcripts_pb2_grpc.TranscriptServiceStub(channel)
        created = await stub.CreateTranscript(
            transcripts_pb2.CreateTranscriptRequest(
                namespace=NAMESPACE, transcript_id=transcript_id, title="storage bytes"
            )
        )
        for start in range(0, count, PER_APPEND):
            numbers = range(start, min(start + PER_APPEND, count))
            entries = []
            for i in numbers:
                entry = transcripts_pb2.Entry(role=ROLE, content=text(i))
                payload += len(ROLE) + len(entry.content.encode())
                if data is not None:
                    entry.data.update(data(i))
                    payload += _compact(data(i))
                entries.append(entry)
            await stub.AppendEntries(
                transcripts_pb2.AppendEntriesRequest(
                    namespace=NAMESPACE, id=created.id, entries=entries
                )
            )
    return created.id, payload


def postgres_entry_bytes(url: str) -> tuple[int, int]:
    """Every byte PostgreSQL keeps for transcript_entries (heap, TOAST, indexes), and
    the row count; after VACUUM, so dead space and maps are settled."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) transcript_entries")
        row = conn.execute(
            "SELECT pg_total_relation_size('transcript_entries'),"
            " (SELECT count(*) FROM transcript_entries)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def sqlite_entry_bytes(path: Path) -> tuple[int, int]:
    """The pages SQLite keeps for transcript_entries, its indexes and its full-text
    index (every `transcript_entries*` b-tree), and the row count."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        stored = conn.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name IN ("
            " SELECT name FROM sqlite_schema"
            " WHERE tbl_name = 'transcript_entries' OR name LIKE 'transcript_entries_fts%')"
        ).fetchone()[0]
        count = conn.execute("SELECT count(*) FROM transcript_entries").fetchone()[0]
    return int(stored), int(count)


@contextmanager
def _server(url: str, workdir: Path) -> Iterator[StrataProcess]:
    server = StrataProcess(url, workdir)
    try:
        server.start(timeout=60)
        yield server
    finally:
        server.stop()


def measure_postgres(
    url: str, workdir: Path, count: int, text: Callable[[int], str], data: DataOf = None
) -> EntryCost:
    """`count` entries of `text` (and `data`) into the fresh PostgreSQL database at `url`."""
    with _server(url, workdir) as server:
        _, payload = asyncio.run(append_all(server.target, count, text, data=data))
    stored, rows = postgres_entry_bytes(url)
    if rows != count:
        raise RuntimeError(f"{rows} entries stored, not {count}")
    return EntryCost(count, stored, payload)


def measure_sqlite(
    workdir: Path, count: int, text: Callable[[int], str], data: DataOf = None
) -> EntryCost:
    """`count` entries of `text` (and `data`) into a fresh embedded-shape server under
    `workdir`."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    path = workdir / "strata.db"
    with _server(f"sqlite:///{path}", workdir) as server:
        _, payload = asyncio.run(append_all(server.target, count, text, data=data))
    stored, rows = sqlite_entry_bytes(path)
    if rows != count:
        raise RuntimeError(f"{rows} entries stored, not {count}")
    return EntryCost(count, stored, payload)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    only = sys.argv[2:]  # payload names to run (all when none)
    WORK.mkdir(parents=True, exist_ok=True)
    pg = PgServer(WORK)
    payloads: list[tuple[str, Callable[[int], str], DataOf]] = [
        ("benchmark", content, None),
        ("chat-like", chat_text, None),
        ("with-data", content, tool_data),
    ]
    try:
        pg.start()
        for name, text, data in payloads:
            if only and name not in only:
                continue
            url = pg.create_database(f"bytes_{name.replace('-', '_')}")
            cost = measure_postgres(url, pg.base / f"strata-{name}", count, text, data)
            print(f"postgres {name}: {cost.describe()}, payload {cost.payload_per_entry:,.0f} B")
            cost = measure_sqlite(WORK / f"sqlite-{name}", count, text, data)
            print(f"sqlite   {name}: {cost.describe()}, payload {cost.payload_per_entry:,.0f} B")
    finally:
        pg.cleanup()


if __name__ == "__main__":
    main()
