"""api/decoding.py: a caller sending undecodable bytes in a loop gets every refusal,
but the log gets one WARNING per method per WARN_EVERY_SECONDS, and the next line
says how many were held back."""

from __future__ import annotations

import pytest
import structlog

from strata.v1 import records_pb2
from strata_server.api import decoding
from strata_server.core.errors import InvalidArgument

GARBAGE = b"\x0a\x05ab"  # a length that runs past the end


def test_repeated_undecodable_requests_are_refused_each_but_logged_once() -> None:
    decode = decoding._decoder(records_pb2.GetRecordRequest.FromString, "/m/GetRecord")
    with structlog.testing.capture_logs() as logged:
        for _ in range(5):
            with pytest.raises(InvalidArgument):
                decode(GARBAGE)
    warnings = [entry for entry in logged if entry["event"] == "undecodable request"]
    assert len(warnings) == 1
    assert warnings[0]["not_logged_since_last"] == 0


def test_the_next_line_after_the_interval_counts_what_was_held_back(monkeypatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(decoding.time, "monotonic", lambda: now[0])
    decode = decoding._decoder(records_pb2.GetRecordRequest.FromString, "/m/GetRecord")
    with structlog.testing.capture_logs() as logged:
        for _ in range(4):
            with pytest.raises(InvalidArgument):
                decode(GARBAGE)
        now[0] += decoding.WARN_EVERY_SECONDS
        with pytest.raises(InvalidArgument):
            decode(GARBAGE)
    warnings = [entry for entry in logged if entry["event"] == "undecodable request"]
    assert [w["not_logged_since_last"] for w in warnings] == [0, 3]
