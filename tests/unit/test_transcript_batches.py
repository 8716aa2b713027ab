"""How a read's rows become a batch (`core.transcripts.fit_batch`) and a stream
message (`api.transcripts.batch_to_proto`, and its bytes straight from
`api.transcript_wire.encode_batch`): the hot path of ReadTranscript."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from strata_server.api.transcript_wire import encode_batch
from strata_server.api.transcripts import ReadResponse, batch_to_proto, serialize_read_response
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


def test_encode_batch_is_byte_for_byte_the_message() -> None:
    rng = random.Random(4)
    times = [
        T0,
        T0 + timedelta(microseconds=1),
        datetime(1970, 1, 1, tzinfo=UTC),  # seconds and nanos both 0: left out
        datetime(1970, 1, 1, 0, 0, 5, tzinfo=UTC),  # nanos 0
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),  # negative seconds
        datetime(1, 1, 1, tzinfo=UTC),
    ]
    for first in (1, 127, 128, 4095, 4096, 16383, 16384, 2**21 - 3, 2**35, 2**62):
        rows: list[Entry] = []
        for i in range(40):
            content = rng.choice(["", "x", "héllo wörld ✓ " * rng.randint(1, 30), "y" * 5000])
            role = rng.choice(["", "user", "assistant", "tool:search", "r" * 64])
            data = rng.choice([None, None, None, {"n": 1, "tags": ["a", "b"]}])
            rows.append((first + i, role, content, data, rng.choice(times), 0))
        assert encode_batch(rows) == batch_to_proto(rows).SerializeToString(), first


def test_a_read_response_serializes_batches_given_as_bytes() -> None:
    rows = entries(40, 50)
    assert serialize_read_response(encode_batch(rows)) == encode_batch(rows)
    up_to_date = ReadResponse(up_to_date=ReadResponse.UpToDate(next_seq=3))
    assert serialize_read_response(up_to_date) == up_to_date.SerializeToString()
