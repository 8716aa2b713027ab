"""A segment's records read back two ways: `parse` (restores, exports) and
`read_spans` (reads), which must agree on every record, including those whose
varints take more than one byte."""

from __future__ import annotations

import json

from strata_server.storage.transcript_segments import parse, read_spans, record


def wire(body: bytes) -> bytes:
    """An entry's wire form as entry_wire.py frames it: tag 1 (bytes), length, body."""
    length, prefix = len(body), bytearray()
    while True:
        if length < 0x80:
            prefix.append(length)
            break
        prefix.append(length & 0x7F | 0x80)
        length >>= 7
    return b"\x0a" + bytes(prefix) + body


def test_read_spans_agrees_with_parse() -> None:
    records = [
        (5, None, wire(b"x" * 3)),
        (300, json.dumps({"k": "v" * 200}), wire(b"y" * 200)),  # data over 127 bytes
        (70_000, "{}", wire(b"z" * 70_000)),  # three-byte varints
        (127, None, wire(b"w" * 127)),
        (128, json.dumps({"n": 1}), wire(b"v" * 128)),
    ]
    content = b"".join(record(*r) for r in records)
    parsed = list(parse(content))
    assert [(e.size, e.data_json, e.wire) for e in parsed] == records
    assert read_spans(content) == ([r[0] for r in records], [r[2] for r in records])
    assert read_spans(b"") == ([], [])
