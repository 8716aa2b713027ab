"""How a read's rows become a batch (`core.transcript_rules.fit_batch`) and the bytes of a
stream message (`storage/entry_wire.py`, stored with each entry, and
`api/batch_wire.py`, which frames a batch):
the hot path of ReadTranscript."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from strata.v1 import transcripts_pb2
from strata_server import protowire
from strata_server.api import batch_wire
from strata_server.api.convert import set_timestamp
from strata_server.api.transcripts_rpc import ReadResponse, serialize_read_response
from strata_server.core.transcript_rules import Entry, fit_batch, new_entry
from strata_server.storage import entry_wire

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


def batch_to_proto(entries: Sequence[Entry]) -> ReadResponse:
    """The stream message a batch must be, built through the protobuf library."""
    response = ReadResponse()
    batch = response.batch
    for seq, role, content, data, create_time, _size in entries:
        message = batch.entries.add(seq=seq, role=role, content=content)
        set_timestamp(message.create_time, create_time)
        if data is not None:
            message.data.update(data)
    batch.next_seq = entries[-1][0] + 1
    return response


def encode(entries: Sequence[Entry]) -> bytes:
    """What ReadTranscript sends for `entries`: their stored forms, framed."""
    batch = entry_wire.encoded_batch(entries)
    return batch_wire.batch_message(batch.wire, batch.next_seq)


def test_a_batch_gives_each_entry_its_own_time_and_data() -> None:
    later = T0 + timedelta(seconds=1, microseconds=1)
    rows: list[Entry] = [
        (1, "user", "a", None, T0, 40),
        (2, "tool", "b", {"calls": [1, "x"], "ok": True}, T0, 60),
        (3, "assistant", "c", None, later, 40),
    ]
    message = ReadResponse.FromString(encode(rows))
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


def test_stored_forms_are_byte_for_byte_the_message() -> None:
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
        expected = batch_to_proto(rows)
        assert ReadResponse.FromString(encode(rows)) == expected, first
        # Without data (a Struct's map order is upb's to choose), the very bytes:
        plain: list[Entry] = [
            (first + i, role, content, None, time, size)
            for i, (_, role, content, _, time, size) in enumerate(rows)
        ]
        assert encode(plain) == batch_to_proto(plain).SerializeToString(), first


def test_an_appended_entry_body_is_the_request_entry_encoded() -> None:
    entry = new_entry("tool", "ran ✓", {"exit": 0, "out": ["a"]}, 1 << 20)
    sent = transcripts_pb2.Entry(role="tool", content="ran ✓")
    sent.data.update({"exit": 0, "out": ["a"]})
    body = entry_wire.entry_body(entry.role, entry.content, entry.data)
    assert transcripts_pb2.Entry.FromString(body) == sent
    assert entry_wire.entry_body("user", "", None) == b"\x12\x04user"


def test_varint_is_the_protobuf_one() -> None:
    assert protowire.varint(0) == b"\x00"
    for value in (1, 127, 128, 300, 16383, 16384, 2**35, 2**63 - 1):
        message = transcripts_pb2.ReadTranscriptResponse.Batch(next_seq=value)
        assert protowire.varint(value) == message.SerializeToString()[1:], value


def test_a_read_response_serializes_batches_given_as_bytes() -> None:
    rows = entries(40, 50)
    assert serialize_read_response(encode(rows)) == encode(rows)
    up_to_date = ReadResponse(up_to_date=ReadResponse.UpToDate(next_seq=3))
    assert serialize_read_response(up_to_date) == up_to_date.SerializeToString()
