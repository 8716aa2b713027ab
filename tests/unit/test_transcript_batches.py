"""How a read's rows become a batch (`core.transcripts.fit_batch`) and a stream
message (`api.transcripts.batch_to_proto`): the hot path of ReadTranscript."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from strata_server.api.transcripts import batch_to_proto
from strata_server.core.transcripts import Entry, fit_batch

T0 = datetime(2026, 12, 3, 7, 30, 15, 123456, tzinfo=UTC)


def entries(*sizes: int, first: int = 1) -> list[Entry]:
    return [
        (first + i, "user", f"entry {first + i}", None, T0, size) for i, size in enumerate(sizes)
    ]


def seqs(batch: list[Entry]) -> list[int]:
    return [seq for seq, *_ in batch]


def test_fit_batch_takes_the_longest_prefix_that_fits() -> None:
    rows = entries(40, 40, 40, 40, first=7)
    assert seqs(fit_batch(rows, 120)) == [7, 8, 9]
    assert seqs(fit_batch(rows, 119)) == [7, 8]
    assert seqs(fit_batch(rows, 1000)) == [7, 8, 9, 10]


def test_fit_batch_gives_a_first_entry_larger_than_the_batch_alone() -> None:
    assert seqs(fit_batch(entries(500, 10), 100)) == [1]


def test_fit_batch_stops_before_a_gap() -> None:
    rows = entries(10, 10) + entries(10, 10, first=4)
    assert seqs(fit_batch(rows, 1000)) == [1, 2]


def test_fit_batch_of_nothing() -> None:
    assert fit_batch([], 100) == []


def test_batch_to_proto_gives_each_entry_its_own_time_and_data() -> None:
    later = T0 + timedelta(seconds=1, microseconds=1)
    rows: list[Entry] = [
        (1, "user", "a", None, T0, 40),
        (2, "tool", "b", {"calls": [1, "x"], "ok": True}, T0, 60),
        (3, "assistant", "c", None, later, 40),
    ]
    message = batch_to_proto(rows)
    got = message.batch.entries
    assert [(e.seq, e.role, e.content) for e in got] == [
        (1, "user", "a"),
        (2, "tool", "b"),
        (3, "assistant", "c"),
    ]
    assert [e.create_time.ToDatetime(UTC) for e in got] == [T0, T0, later]
    assert [e.HasField("data") for e in got] == [False, True, False]
    assert dict(got[1].data) == {"calls": [1, "x"], "ok": True}
    assert message.batch.next_seq == 4
