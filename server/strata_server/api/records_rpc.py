"""RecordService: parses requests into record use cases (services/records_service.py)
and renders their records and changes; nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import KW_ONLY
from typing import Any

import grpc
from google.protobuf import empty_pb2

from strata.v1 import records_pb2, records_pb2_grpc
from strata_server.api.convert import (
    actor,
    collection_of,
    fill_record,
    idempotency,
    record_to_proto,
    set_timestamp,
)
from strata_server.api.page_tokens import (
    paging,
)
from strata_server.api.parse_writes import create_write, delete_write, update_write
from strata_server.api.status_codes import rpcs
from strata_server.core import errors, models, validation
from strata_server.core.filters import parse_filter, parse_order_by
from strata_server.core.paging import PageTokens
from strata_server.core.values import frozen
from strata_server.services.records_service import Records, WatchStarted

Context = grpc.aio.ServicerContext[Any, Any]
MAX_BATCH_IDS = 1000
DEFAULT_SEARCH_PAGE = 20
_CHANGE_KINDS = {
    models.ChangeKind.CREATED: records_pb2.CHANGE_KIND_CREATED,
    models.ChangeKind.UPDATED: records_pb2.CHANGE_KIND_UPDATED,
    models.ChangeKind.DELETED: records_pb2.CHANGE_KIND_DELETED,
}


def change_to_proto(change: models.RecordChange) -> records_pb2.RecordChange:
    """A domain change as the wire message."""
    message = records_pb2.RecordChange(
        kind=_CHANGE_KINDS[change.kind],
        collection=change.collection,
        record_id=change.record_id,
        version=change.version,
        cursor=change.cursor,
    )
    set_timestamp(message.time, change.time)
    if change.record is not None:
        fill_record(message.record, change.record)
    return message


@rpcs(records_pb2.DESCRIPTOR.services_by_name["RecordService"])
@frozen
class RecordService(records_pb2_grpc.RecordServiceServicer):
    """gRPC face of the record use cases."""

    records: Records
    max_record_bytes: int
    _: KW_ONLY
    tokens: PageTokens

    async def CreateRecord(
        self, request: records_pb2.CreateRecordRequest, context: Context
    ) -> records_pb2.Record:
        namespace = validation.namespace(request.namespace)
        write = create_write(request, self.max_record_bytes)
        return await self._record_written(namespace, write, context, idempotency(request))

    async def GetRecord(
        self, request: records_pb2.GetRecordRequest, context: Context
    ) -> records_pb2.Record:
        namespace, collection = collection_of(request)
        record = await self.records.get(namespace, collection, validation.entity_id(request.id))
        return record_to_proto(record)

    async def BatchGetRecords(
        self, request: records_pb2.BatchGetRecordsRequest, context: Context
    ) -> records_pb2.BatchGetRecordsResponse:
        namespace, collection = collection_of(request)
        if len(request.ids) > MAX_BATCH_IDS:
            raise errors.InvalidArgument.field("ids", f"at most {MAX_BATCH_IDS} ids per call")
        ids = list(
            dict.fromkeys(
                validation.entity_id(value, f"ids[{index}]")
                for index, value in enumerate(request.ids)
            )
        )
        found = {r.id: r for r in await self.records.batch_get(namespace, collection, ids)}
        response = records_pb2.BatchGetRecordsResponse(
            missing_ids=[i for i in ids if i not in found]
        )
        for i in ids:
            if i in found:
                fill_record(response.records.add(), found[i])
        return response

    async def UpdateRecord(
        self, request: records_pb2.UpdateRecordRequest, context: Context
    ) -> records_pb2.Record:
        namespace = validation.namespace(request.namespace)
        write = update_write(request, self.max_record_bytes)
        return await self._record_written(namespace, write, context)

    async def _record_written(
        self,
        namespace: str,
        write: models.CreateRecord | models.UpdateRecord,
        context: Context,
        retried_as: models.Idempotency | None = None,
    ) -> records_pb2.Record:
        """Commit a create or an update and render the record it leaves (a create is
        recognised when retried by its request id: `retried_as`)."""
        result = await self.records.write(
            namespace, write, actor=actor(context), idempotency=retried_as
        )
        assert isinstance(result, models.Record)
        return record_to_proto(result)

    async def DeleteRecord(
        self, request: records_pb2.DeleteRecordRequest, context: Context
    ) -> empty_pb2.Empty:
        namespace = validation.namespace(request.namespace)
        await self.records.write(namespace, delete_write(request), actor=actor(context))
        return empty_pb2.Empty()

    async def ListRecords(
        self, request: records_pb2.ListRecordsRequest, context: Context
    ) -> records_pb2.ListRecordsResponse:
        namespace, collection = collection_of(request)
        filter = parse_filter(request.filter)
        order = parse_order_by(request.order_by)
        pages = paging(
            self.tokens, request, "list", namespace, collection, request.filter, request.order_by
        )
        after = pages.after_row(lambda key: len(key) == len(order))
        page = await self.records.list_records(
            namespace, models.ListQuery(collection, filter, order, pages.limit, after)
        )
        response = records_pb2.ListRecordsResponse(next_page_token=pages.next_token(page))
        add = response.records.add
        for record in page.items:
            fill_record(add(), record)
        return response

    async def CountRecords(
        self, request: records_pb2.CountRecordsRequest, context: Context
    ) -> records_pb2.CountRecordsResponse:
        namespace, collection = collection_of(request)
        count = await self.records.count(namespace, collection, parse_filter(request.filter))
        return records_pb2.CountRecordsResponse(count=count)

    async def SearchRecords(
        self, request: records_pb2.SearchRecordsRequest, context: Context
    ) -> records_pb2.SearchRecordsResponse:
        namespace, collection = collection_of(request)
        text = validation.search_query(request.query)
        pages = paging(
            self.tokens, request, "search", namespace, collection, text, default=DEFAULT_SEARCH_PAGE
        )
        offset = pages.offset()
        page = await self.records.search(
            namespace, models.SearchQuery(collection, text, pages.limit, offset)
        )
        response = records_pb2.SearchRecordsResponse(
            next_page_token=pages.next_offset(page, offset)
        )
        for hit in page.items:
            found = response.hits.add(score=hit.score)
            fill_record(found.record, hit.record)
        return response

    async def WatchRecords(
        self, request: records_pb2.WatchRecordsRequest, context: Context
    ) -> AsyncIterator[records_pb2.WatchRecordsResponse]:
        namespace, collection = collection_of(request)
        filter = parse_filter(request.filter)
        changes = self.records.watch(namespace, collection, filter, request.from_cursor)
        async with aclosing(changes):
            async for change in changes:
                if isinstance(change, WatchStarted):
                    started = records_pb2.WatchStarted(cursor=change.cursor)
                    yield records_pb2.WatchRecordsResponse(started=started)
                else:
                    yield records_pb2.WatchRecordsResponse(change=change_to_proto(change))
