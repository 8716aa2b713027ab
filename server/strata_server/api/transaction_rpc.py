"""TransactionService: parses a Commit's writes with the same builders as the
single-write RPCs (api/parse_writes.py), commits them through the Commit use case,
and renders each result."""

from __future__ import annotations

from dataclasses import KW_ONLY
from datetime import UTC, datetime
from typing import Any

import grpc

from strata.v1 import transaction_pb2, transaction_pb2_grpc
from strata_server.api.convert import actor, fill_record, idempotency, job_to_proto
from strata_server.api.parse_writes import (
    append_write,
    create_write,
    delete_write,
    new_job,
    update_write,
)
from strata_server.api.status_codes import rpcs
from strata_server.core import errors, models, validation
from strata_server.core.job_transitions import Job
from strata_server.core.transcript_rules import DEFAULT_MAX_ENTRY_BYTES, Appended
from strata_server.core.values import frozen
from strata_server.services.commit_service import Commits

Context = grpc.aio.ServicerContext[Any, Any]
MAX_WRITES = 1000


def _write(
    write: transaction_pb2.Write, index: int, max_bytes: int, max_entry_bytes: int, now: datetime
) -> models.Write:
    kind = write.WhichOneof("operation")
    prefix = f"writes[{index}].{kind}."
    try:
        if kind == "append":
            return append_write(write.append, max_entry_bytes, prefix)
        if kind == "enqueue":
            return new_job(write.enqueue, max_bytes, now, prefix)
        if kind == "create":
            return create_write(write.create, max_bytes, prefix)
        if kind == "update":
            return update_write(write.update, max_bytes, prefix)
        if kind == "delete":
            return delete_write(write.delete, prefix)
        raise errors.InvalidArgument.field(f"writes[{index}]", "names no operation")
    except errors.StrataError as error:
        raise errors.with_write_index(error, index) from None


def _result(target: transaction_pb2.WriteResult, result: models.WriteResult, now: datetime) -> None:
    """Write one result into the response's empty WriteResult, in place (see
    convert.fill_record: a Commit of many creates answers with as many records)."""
    if isinstance(result, models.Record):
        fill_record(target.record, result)
    elif isinstance(result, Job):
        target.job.CopyFrom(job_to_proto(result, now))
    elif isinstance(result, Appended):
        target.appended.SetInParent()
        target.appended.first_seq = result.first_seq
        target.appended.next_seq = result.next_seq
    else:
        deleted = target.deleted
        deleted.SetInParent()
        deleted.collection, deleted.id, deleted.existed = (
            result.collection,
            result.id,
            result.existed,
        )


@rpcs(transaction_pb2.DESCRIPTOR.services_by_name["TransactionService"])
@frozen
class TransactionService(transaction_pb2_grpc.TransactionServiceServicer):
    """gRPC face of Commit (services/commit_service.py)."""

    commits: Commits
    max_record_bytes: int
    _: KW_ONLY
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES

    async def Commit(
        self, request: transaction_pb2.CommitRequest, context: Context
    ) -> transaction_pb2.CommitResponse:
        namespace = validation.namespace(request.namespace)
        if not request.writes:
            raise errors.InvalidArgument.field("writes", "must hold at least one write")
        if len(request.writes) > MAX_WRITES:
            raise errors.InvalidArgument.field("writes", f"at most {MAX_WRITES} writes per commit")
        now = datetime.now(UTC)
        writes = [
            _write(write, i, self.max_record_bytes, self.max_entry_bytes, now)
            for i, write in enumerate(request.writes)
        ]
        results = await self.commits.commit(
            namespace, writes, actor=actor(context), idempotency=idempotency(request)
        )
        seen = datetime.now(UTC)  # after the store stamped the new jobs
        response = transaction_pb2.CommitResponse()
        add = response.results.add
        for result in results:
            _result(add(), result, seen)
        return response
