"""The archive format's pure rules: manifest parsing, row decoding, transcript
entry offsets and the conflict policies."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from strata_server.core.entry_offsets import EntryOffsets
from strata_server.core.errors import AlreadyExists
from strata_server.core.models import Record
from strata_server.core.transfer_format import (
    VERSION,
    BadArchive,
    ConflictPolicy,
    Kind,
    KindCount,
    Manifest,
    Member,
    dumps_line,
    format_time,
    parse_manifest,
    parse_time,
    split_conflicts,
)
from strata_server.core.transfer_row_decoding import decode
from strata_server.core.transfer_row_encoding import encode
from strata_server.core.transfer_rows import ArchivedEntry

NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def manifest(**fields: object) -> bytes:
    value = json.loads(
        Manifest("default", "", NOW, (Member("records.jsonl.gz", 3, "a" * 64, 1),)).to_bytes()
    )
    value.update(fields)
    return json.dumps(value).encode()


def test_manifest_round_trips_and_refuses_other_versions() -> None:
    parsed = parse_manifest(manifest())
    assert parsed.version == VERSION and parsed.create_time == NOW
    assert parsed.members == (Member("records.jsonl.gz", 3, "a" * 64, 1),)
    assert parse_manifest(manifest(version=1)).members == parsed.members  # no batch rows
    with pytest.raises(BadArchive, match="version is 3"):
        parse_manifest(manifest(version=3))
    with pytest.raises(BadArchive, match="version is True"):
        parse_manifest(manifest(version=True))
    with pytest.raises(BadArchive, match="not describe"):
        parse_manifest(manifest(format="zip"))
    with pytest.raises(BadArchive, match="not valid JSON"):
        parse_manifest(b"{")
    with pytest.raises(BadArchive, match="unknown member"):
        parse_manifest(manifest(members=[{"name": "../etc/passwd", "size": 1, "sha256": "a" * 64}]))
    with pytest.raises(BadArchive, match="malformed"):
        parse_manifest(
            manifest(members=[{"name": "records.jsonl.gz", "size": -1, "sha256": "a" * 64}])
        )


def test_times_have_one_spelling() -> None:
    assert format_time(NOW) == "2026-03-01T12:00:00.123456Z"
    assert parse_time(format_time(NOW)) == NOW
    assert format_time(NOW.replace(microsecond=0)) == "2026-03-01T12:00:00.000000Z"


def test_rows_encode_canonically_and_decode_strictly() -> None:
    record = Record("ns", "tickets", "t1", {"b": 1, "a": [1.5, "ü"]}, 2, NOW, NOW)
    line = dumps_line(encode(Kind.RECORDS, record))
    assert line.startswith(b'{"collection":"tickets","create_time"') and "ü".encode() in line
    assert decode(Kind.RECORDS, json.loads(line), "other", "x:1") == Record(
        "other", "tickets", "t1", {"b": 1, "a": [1.5, "ü"]}, 2, NOW, NOW
    )
    broken = json.loads(line)
    broken["version"] = "2"
    with pytest.raises(BadArchive, match=r"records\.jsonl\.gz:7: 'version' must be an integer"):
        decode(Kind.RECORDS, broken, "ns", "records.jsonl.gz:7")
    with pytest.raises(BadArchive, match="not a valid name"):
        decode(Kind.RECORDS, {**json.loads(line), "collection": "no spaces"}, "ns", "x")
    with pytest.raises(BadArchive, match="not a JSON object"):
        decode(Kind.RECORDS, [1], "ns", "x")


def entry(transcript: str, seq: int, size: int = 40) -> ArchivedEntry:
    return ArchivedEntry(transcript, seq, 0, size, "user", "x", None, NOW)


def test_entry_offsets_follow_sizes_and_refuse_gaps() -> None:
    offsets = EntryOffsets({"a": (3, 90), "b": (1, 0)})
    assert offsets.place(entry("a", 1, 40), "e", 1).start_offset == 0
    assert offsets.place(entry("a", 2, 50), "e", 2).start_offset == 40
    offsets.finish("e")

    gap = EntryOffsets({"a": (3, 80)})
    gap.place(entry("a", 1), "e", 1)
    with pytest.raises(BadArchive, match="jumps from seq 1 to 3"):
        gap.place(entry("a", 3), "e", 2)
    short = EntryOffsets({"a": (3, 80)})
    short.place(entry("a", 1), "e", 1)
    with pytest.raises(BadArchive, match="next_seq 3"):
        short.finish("e")
    with pytest.raises(BadArchive, match="does not hold"):
        EntryOffsets({}).place(entry("z", 1), "e", 1)
    with pytest.raises(BadArchive, match="has no entries"):
        EntryOffsets({"a": (2, 40)}).finish("e")


def test_conflict_policies() -> None:
    rows, keys, stored = ["r1", "r2", "r3"], ["k1", "k2", "k3"], {"k2"}
    count = KindCount("records")
    assert split_conflicts("records", "ns", rows, keys, stored, ConflictPolicy.SKIP, count) == (
        ["r1", "r3"],
        [],
    )
    assert (count.imported, count.skipped, count.overwritten) == (2, 1, 0)
    count = KindCount("records")
    assert split_conflicts(
        "records", "ns", rows, keys, stored, ConflictPolicy.OVERWRITE, count
    ) == (
        ["r1", "r3"],
        ["r2"],
    )
    assert (count.imported, count.skipped, count.overwritten) == (2, 0, 1)
    with pytest.raises(AlreadyExists) as raised:
        split_conflicts("records", "ns", rows, keys, stored, ConflictPolicy.FAIL, KindCount("r"))
    assert raised.value.metadata == {"kind": "records", "id": "k2"}
