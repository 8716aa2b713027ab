"""Requests the fuzz suite found answered UNKNOWN or INTERNAL, kept as explicit cases.

Each case is one failure class: the RPC, the bodies exactly as sent (hex, as
`test_fuzz.py` prints them under "case"), and what went wrong. They run on both
shapes against the fuzz suite's seeded namespace and must get anything but UNKNOWN
or INTERNAL. Add the literal of every new class the suite reports.

Failures that need more than one request (two CreateIndex calls racing, an export
cancelled as it starts) have tests of their own in tests/contract
(test_indexes.py, test_export.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest

from strata.v1 import records_pb2
from tests.fuzz import encoding
from tests.fuzz.conftest import FUZZ_NAMESPACE, Target
from tests.fuzz.sender import FORBIDDEN, send_sync

pytestmark = pytest.mark.fuzz


@dataclass(frozen=True)
class Case:
    """One request that once got UNKNOWN or INTERNAL."""

    name: str
    path: str
    bodies: tuple[str, ...]
    found: str
    """What the server answered when the suite found it, and the server's log line."""
    metadata: tuple[tuple[str, str], ...] = ()


def _deeply_nested_record(depth: int) -> str:
    """CreateRecord whose data holds lists nested `depth` deep: past protobuf's
    recursion limit (100) the request cannot be parsed at all."""
    request = records_pb2.CreateRecordRequest(
        namespace=FUZZ_NAMESPACE, collection="fz_items", record_id="deep"
    )
    entry = encoding.length_delimited(1, b"a") + encoding.length_delimited(
        2, encoding.nested_value(depth, in_lists=True)
    )
    data = encoding.length_delimited(4, encoding.length_delimited(1, entry))
    return (request.SerializeToString() + data).hex()


CASES = (
    Case(
        "undecodable unary body",
        "/strata.v1.RecordService/GetRecord",
        ("04",),
        "UNKNOWN: Unexpected <class 'google.protobuf.message.DecodeError'>: Error parsing "
        "message with type 'strata.v1.GetRecordRequest' (issue 17, item 1)",
    ),
    Case(
        "truncated length-delimited field",
        "/strata.v1.RecordService/GetRecord",
        ("0affffffff0f",),
        "UNKNOWN: ... DecodeError ... Wire format was corrupt (item 1)",
    ),
    Case(
        "lone surrogate in a string field, health check",
        "/grpc.health.v1.Health/Check",
        ("0a03eda080",),
        "UNKNOWN: ... DecodeError ... String field had bad UTF-8 (item 1)",
    ),
    Case(
        "overlong UTF-8 in a string field",
        "/strata.v1.CacheService/Get",
        ("0a02c0af12046e756c6c",),
        "UNKNOWN: ... DecodeError ... String field had bad UTF-8 (item 1)",
    ),
    Case(
        "undecodable server-streaming body",
        "/strata.v1.RecordService/WatchRecords",
        ("b2bb3784",),
        "UNKNOWN: ... DecodeError ... Wire format was corrupt (item 1)",
    ),
    Case(
        "undecodable message in a client stream",
        "/strata.v1.ArtifactService/UploadArtifact",
        ("ffffffffffffffffffff",),
        "INTERNAL: internal error; log: DecodeError in grpc's deserialize (item 1)",
    ),
    Case(
        "undecodable message in a bidirectional stream",
        "/strata.v1.AdminService/ImportNamespace",
        ("ce49d3d8200463",),
        "INTERNAL: internal error; log: DecodeError in grpc's deserialize (item 1)",
    ),
    Case(
        "undecodable reflection request",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ("04",),
        "UNKNOWN: ... DecodeError ... ServerReflectionRequest (item 1)",
    ),
    Case(
        "JSON nested past the protobuf recursion limit",
        "/strata.v1.RecordService/CreateRecord",
        (_deeply_nested_record(101),),
        "UNKNOWN: ... DecodeError ... Exceeded upb_DecodeOptions_MaxDepth (item 1)",
    ),
    Case(
        "NUL in a record search query",
        "/strata.v1.RecordService/SearchRecords",
        ("0a0b636f6965626c396a30706112104b32627a6b472d7548777548447a71771a026100",),
        "INTERNAL on SQLite: SQLite failed: unterminated string (item 2)",
    ),
    Case(
        "NUL in a transcript search query",
        "/strata.v1.TranscriptService/SearchTranscripts",
        ("0a0466757a7a12026100",),
        "INTERNAL on SQLite: SQLite failed: unterminated string (item 2)",
    ),
    Case(
        "duration past timedelta's range",
        "/strata.v1.ArtifactService/GetArtifactUrl",
        ("0a0169120959557978535933326d1a1508ffffffffffffffff7f1095c9e9fcfaffffffff01",),
        "INTERNAL: OverflowError: Python int too large to convert to C int, in "
        "Duration.ToTimedelta (item 3)",
    ),
    Case(
        "forged page token: a year-1 time at +14:00",
        "/strata.v1.ArtifactService/ListArtifacts",
        (
            "0a0466757a7a20012a5f65794a32496a6f784c434a78496a6f694d4749775a4451344e444a6b"
            "4e7a686a4e4745784d434973496d73694f6c743749695230496a6f694d4441774d5330774d53"
            "30774d5651774d446f774d446f774d4373784e446f774d434a39585830",
        ),
        "INTERNAL: OverflowError: date value out of range, core/paging.py _decode_value (item 4)",
    ),
    Case(
        "forged page token: a 2**80 sequence number",
        "/strata.v1.AdminService/ListAuditEntries",
        (
            "0a0466757a7a4a5c65794a32496a6f784c434a78496a6f694d6a55334d6d566a5a6d49304e7a"
            "6c684d6d5a6b5a434973496d73694f6c743749695232496a6f784d6a41344f5449314f444535"
            "4e6a45304e6a49354d5463304e7a41324d54633266563139",
        ),
        "INTERNAL on SQLite: OverflowError: Python int too large to convert to SQLite "
        "INTEGER (item 4)",
    ),
)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_found_by_fuzzing(fuzz_target: Target, case: Case) -> None:
    method = {method.path: method for method in fuzz_target.methods}[case.path]
    with grpc.insecure_channel(fuzz_target.server.target) as channel:
        bodies = [bytes.fromhex(body) for body in case.bodies]
        code, details = send_sync(channel, method, bodies, case.metadata)
    assert code not in FORBIDDEN, f"{code}: {details} (found as {case.found})"
