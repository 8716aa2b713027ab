"""Decoding and the caller's checks are one interceptor (api/auth.py is
api/decoding.py's interceptor with the checks): under `--auth token` a request's
bytes are still judged before its caller, and a caller's answer is the same for
every call shape, whether the call goes straight to the servicer (a unary call of
an identified caller) or through the checks' own coroutine."""

from __future__ import annotations

import grpc

from strata.v1 import records_pb2, records_pb2_grpc
from tests.contract.helpers import expect_error
from tests.security.support import unique

GARBAGE = b"\x0a\x05ab"  # a length that runs past the end
GET = "/strata.v1.RecordService/GetRecord"


def test_undecodable_bytes_are_invalid_argument_whoever_sends_them(secure):
    namespace = unique("decoding")
    writer = secure.token("writer", namespace)
    callers = {
        "a writer": (("authorization", f"Bearer {writer}"),),
        "no token": (),
        "an unknown token": (("authorization", "Bearer st_not-a-token"),),
    }
    with grpc.insecure_channel(secure.process.target) as channel:
        call = channel.unary_unary(GET)
        for metadata in callers.values():
            expect_error(
                lambda metadata=metadata: call(GARBAGE, metadata=metadata, timeout=30),
                grpc.StatusCode.INVALID_ARGUMENT,
                "MALFORMED_REQUEST",
                message_type="strata.v1.GetRecordRequest",
            )


def test_the_same_bytes_decoded_reach_the_checks_then_the_servicer(secure):
    mine, theirs = unique("decoded-mine"), unique("decoded-theirs")
    writer = secure.token("writer", mine)
    request = records_pb2.GetRecordRequest(namespace=mine, collection="c", id="absent")
    with grpc.insecure_channel(secure.process.target) as channel:
        records = records_pb2_grpc.RecordServiceStub(channel)
        bearer = (("authorization", f"Bearer {writer}"),)
        # Identified, namespace covered: straight to the servicer, which finds nothing.
        expect_error(
            lambda: records.GetRecord(request, metadata=bearer, timeout=30),
            grpc.StatusCode.NOT_FOUND,
        )
        # Identified, another namespace: the checks refuse it, with their ErrorInfo.
        other = records_pb2.GetRecordRequest(namespace=theirs, collection="c", id="absent")
        expect_error(
            lambda: records.GetRecord(other, metadata=bearer, timeout=30),
            grpc.StatusCode.PERMISSION_DENIED,
            "NAMESPACE_NOT_ALLOWED",
            namespace=theirs,
        )
        # Not identified: refused before any servicer runs.
        expect_error(
            lambda: records.GetRecord(request, timeout=30),
            grpc.StatusCode.UNAUTHENTICATED,
            "UNAUTHENTICATED",
        )
