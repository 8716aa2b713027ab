"""A long transcript, on both shapes: 20,000 entries (30 MB) read back in order, each
seq exactly once, in byte-bounded batches, without the server's memory growing with
the transcript.

The transcript is loaded through AppendEntries in batches of 1000 (the most one
append takes; four writers at once, so appends from several connections
interleave), once per shape, and shared by the tests of this module.

Why 20,000 entries of 1.5 KB, where this was 200,000 of 120 bytes: what is asserted
depends on the transcript's bytes and its batch boundaries, not on its count of
entries, while loading costs per entry as well as per byte (both engines index every
entry's words for search). The RSS bound (20 MiB) is below the 30 MB that went by,
so a server that held the transcript in memory would fail; a 64 KiB batch holds
about 40 entries, so a read crosses about 500 batch boundaries (about 30 at 1 MiB),
each a keyset query whose row LIMIT is more than fits in the batch; and the 20
appends of four writers still interleave.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from strata.v1 import transcripts_pb2
from tests.contract.transcript_helpers import (
    create_transcript,
    entry,
    read_request,
    transcript_stub,
)
from tests.support.server import StrataProcess

ENTRIES = 20_000
PER_APPEND = 1000
WRITERS = 4
CONTENT = "{:08d} " + "lorem ipsum dolor sit amet " * 55  # ~1.5 KB per entry


@pytest.fixture(scope="module")
def long_transcript(server: StrataProcess, stubs_for) -> Iterator[tuple[str, float]]:
    """The id of a transcript of ENTRIES entries on this shape's server, and how long
    loading it took."""
    ts = transcript_stub(stubs_for(server).channel)
    transcript_id = create_transcript(ts)
    started = time.monotonic()

    def write(writer: int) -> None:
        for chunk in range(writer, ENTRIES // PER_APPEND, WRITERS):
            ts.AppendEntries(
                transcripts_pb2.AppendEntriesRequest(
                    id=transcript_id,
                    entries=[
                        entry(CONTENT.format(chunk * PER_APPEND + i), "assistant")
                        for i in range(PER_APPEND)
                    ],
                ),
                timeout=60,
            )

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(write, range(WRITERS)))
    yield transcript_id, time.monotonic() - started


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_read_every_entry_in_order_exactly_once(server, stubs_for, long_transcript):
    transcript_id, load_seconds = long_transcript
    ts = transcript_stub(stubs_for(server).channel)
    assert server.process is not None
    pid = server.process.pid
    baseline = _rss_kib(pid)
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, _rss_kib(pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    expected = 1
    batches = 0
    contents_ok = True
    try:
        for message in ts.ReadTranscript(read_request(transcript_id), timeout=120):
            kind = message.WhichOneof("event")
            if kind == "up_to_date":
                assert message.up_to_date.next_seq == ENTRIES + 1
                continue
            assert kind == "batch"
            batches += 1
            size = 0
            for item in message.batch.entries:
                assert item.seq == expected, f"got seq {item.seq}, expected {expected}"
                # Each writer's chunk holds consecutive numbers, in request order.
                contents_ok &= item.content.startswith(f"{int(item.content[:8]):08d} ")
                size += len(item.content) + len(item.role) + 32
                expected += 1
            assert size <= 64 * 1024
            assert message.batch.next_seq == expected
    finally:
        done.set()
        sampler.join()
    seconds = time.monotonic() - started
    assert expected == ENTRIES + 1
    assert contents_ok
    print(
        f"loaded {ENTRIES} entries in {load_seconds:.1f} s; read in {seconds:.1f} s "
        f"({ENTRIES / seconds:,.0f} entries/s, {batches} batches); "
        f"server RSS {baseline / 1024:.0f} MiB -> peak {peak / 1024:.0f} MiB"
    )
    # About 30 MB of entries went by: memory must not follow the transcript's size.
    assert peak - baseline < 20 * 1024, f"RSS grew by {(peak - baseline) / 1024:.0f} MiB"


def test_entries_numbers_are_all_there(server, stubs_for, long_transcript):
    """Every appended entry (identified by its number) comes back once."""
    transcript_id, _ = long_transcript
    ts = transcript_stub(stubs_for(server).channel)
    seen = bytearray(ENTRIES)
    for message in ts.ReadTranscript(
        read_request(transcript_id, max_batch_bytes=1024 * 1024), timeout=120
    ):
        for item in message.batch.entries:
            number = int(item.content[:8])
            assert not seen[number], f"entry {number} delivered twice"
            seen[number] = 1
    assert all(seen)


def test_tail_of_a_long_transcript(server, stubs_for, long_transcript):
    transcript_id, _ = long_transcript
    ts = transcript_stub(stubs_for(server).channel)
    messages = list(ts.ReadTranscript(read_request(transcript_id, from_seq=-5), timeout=30))
    assert [e.seq for e in messages[0].batch.entries] == list(range(ENTRIES - 4, ENTRIES + 1))
    assert messages[-1].WhichOneof("event") == "up_to_date"
