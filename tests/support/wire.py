"""What ReadTranscript sends for a stored batch, decoded: for the storage tests,
which read batches straight from an adapter."""

from __future__ import annotations

from strata.v1 import transcripts_pb2
from strata_server.api.batch_wire import batch_message
from strata_server.core.transcript_rules import EntryBatch


def sent(batch: EntryBatch | None) -> list[transcripts_pb2.Entry]:
    """The entries of the stream message ReadTranscript makes of `batch`."""
    assert batch is not None
    message = batch_message(batch.wire, batch.next_seq)
    response = transcripts_pb2.ReadTranscriptResponse.FromString(message)
    assert response.batch.next_seq == batch.next_seq
    return list(response.batch.entries)
