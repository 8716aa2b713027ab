"""storage/blobs/inspection.py on stored bytes in memory: every byte of a compressed
blob's frame index matters (each flipped byte is found without reading content),
a well-formed blob of other content is found only by reading it, and raw blobs are
re-hashed."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from strata_server.core.artifact_rules import Compression, StoredBlob
from strata_server.core.backup_rules import PARTIAL, backup_name, to_remove
from strata_server.storage.blobs import encoding
from strata_server.storage.blobs.inspection import inspect


def encoded(content: bytes) -> tuple[bytes, StoredBlob]:
    encoder = encoding.Encoder("text/plain")
    out = encoder.feed(content)
    rest, staged = encoder.finish()
    data = out + rest
    blob = StoredBlob(staged.sha256, staged.compression, len(data), datetime.now(UTC))
    return data, blob


def reader(data: bytes):  # type: ignore[no-untyped-def]
    return lambda offset, length: data[offset : offset + length]


CONTENT = b"".join(b"line %d of a log that compresses\n" % i for i in range(90_000))


def test_a_sound_compressed_blob_passes_both_checks():
    data, blob = encoded(CONTENT)
    assert blob.compression is Compression.ZSTD and len(CONTENT) > 2 * encoding.FRAME_SIZE
    assert inspect(blob, reader(data), content=False, size=len(CONTENT)) is None
    assert inspect(blob, reader(data), content=True) is None
    problem = inspect(blob, reader(data), content=False, size=len(CONTENT) + 1)
    assert problem is not None and "add up" in problem


def test_every_byte_of_the_frame_index_is_checked():
    data, blob = encoded(CONTENT)
    frames = len(CONTENT) // encoding.FRAME_SIZE + 1
    table = encoding.table_size(frames)
    for at in range(len(data) - table, len(data)):
        damaged = bytearray(data)
        damaged[at] ^= 0x01
        problem = inspect(blob, reader(bytes(damaged)), content=False, size=len(CONTENT))
        assert problem is not None and "frame index" in problem, at
        with_content = inspect(blob, reader(bytes(damaged)), content=True)
        assert with_content is not None, at


def test_other_content_in_a_well_formed_blob_is_found_only_by_reading_it():
    data, _ = encoded(CONTENT)
    _, blob = encoded(CONTENT.replace(b"line 7 ", b"LINE 7 "))
    blob = StoredBlob(blob.sha256, blob.compression, len(data), blob.modified)
    assert inspect(blob, reader(data), content=False) is None
    assert "no longer hashes" in (inspect(blob, reader(data), content=True) or "")


def test_a_damaged_frame_is_named():
    data, blob = encoded(CONTENT)
    damaged = bytearray(data)
    damaged[20] ^= 0xFF  # inside frame 0's compressed bytes
    problem = inspect(blob, reader(bytes(damaged)), content=True)
    assert problem is not None and ("frame 0" in problem or "no longer hashes" in problem)


def test_raw_blobs_are_rehashed():
    content = bytes(range(256)) * 4000
    blob = StoredBlob(
        hashlib.sha256(content).hexdigest(), Compression.NONE, len(content), datetime.now(UTC)
    )
    assert inspect(blob, reader(content), content=False) is None
    assert inspect(blob, reader(content), content=True) is None
    damaged = b"\xff" + content[1:]
    assert inspect(blob, reader(damaged), content=False) is None
    assert "no longer hash" in (inspect(blob, reader(damaged), content=True) or "")


@pytest.mark.parametrize("keep", [1, 2, 5])
def test_backups_beyond_the_count_go_oldest_first(keep: int):
    names = [backup_name(datetime(2026, 12, day, tzinfo=UTC)) for day in range(1, 5)]
    stray = [names[0] + PARTIAL, "strata-20261201T000000Z.db", "notes.txt"]
    gone = to_remove([*reversed(names), *stray], keep)
    assert gone == names[: max(0, 4 - keep)]
