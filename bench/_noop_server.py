"""A gRPC server whose GetRecord returns one constant Record and does nothing else.

It measures the floor of a Python grpc.aio server on this machine (same grpcio,
same uvloop event loop as `strata serve`), so the GetRecord ratio can be read
against what any Python servicer could reach. Run by bench/records.py.
"""

from __future__ import annotations

import sys
from typing import Any

import grpc
import uvloop

from strata.v1 import records_pb2, records_pb2_grpc

RECORD = records_pb2.Record(namespace="bench", collection="bench_get", id="r000001", version=1)
RECORD.data.update({"status": "s01", "n": 1, "title": "a record of about 100 bytes"})


class NoopRecords(records_pb2_grpc.RecordServiceServicer):
    """Answers GetRecord with RECORD: no validation, no storage, no conversion."""

    async def GetRecord(
        self, request: records_pb2.GetRecordRequest, context: Any
    ) -> records_pb2.Record:
        return RECORD


async def serve(address: str) -> None:
    """Serve until killed."""
    server = grpc.aio.server()
    records_pb2_grpc.add_RecordServiceServicer_to_server(NoopRecords(), server)
    server.add_insecure_port(address)
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    uvloop.run(serve(sys.argv[1]))
