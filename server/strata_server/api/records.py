"""RecordService: validates requests, turns them into domain calls, and back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

import grpc
from google.protobuf import empty_pb2, field_mask_pb2, struct_pb2, timestamp_pb2

from strata.v1 import records_pb2, records_pb2_grpc
from strata_server.api.convert import (
    actor,
    data_from_struct,
    fingerprint,
    record_to_proto,
    set_timestamp,
    to_datetime,
)
from strata_server.api.errors import streaming, unary
from strata_server.core import errors, models, validation
from strata_server.core.filters import parse_filter, parse_order_by
from strata_server.core.idle import Probed
from strata_server.core.paging import MAX_OFFSET, PageTokens, page_size, query_digest
from strata_server.core.update import parse_mask
from strata_server.storage.ports import Events, Recheck, RecordStore

Context = grpc.aio.ServicerContext[Any, Any]
MAX_BATCH_IDS = 1000
DEFAULT_SEARCH_PAGE = 20
WATCH_BATCH = 500
"""Most audit entries a WatchRecords stream reads per query."""

_CHANGE_KINDS = {
    models.ChangeKind.CREATED: records_pb2.CHANGE_KIND_CREATED,
    models.ChangeKind.UPDATED: records_pb2.CHANGE_KIND_UPDATED,
    models.ChangeKind.DELETED: records_pb2.CHANGE_KIND_DELETED,
}


WATCH_RECHECK_SECONDS = 1.0
"""How often a watched collection is re-checked for settled changes while some are
pending, one read per collection shared by all its watches. It covers what no
wakeup announces: on PostgreSQL a change is read only once every older transaction
of the cluster has ended (storage/postgres/changes.py), which may be after its own
wakeup. A collection with nothing pending rests until a write wakes it (writes on
replicas whose wakeups do not reach this one: the registry's degraded interval)."""


class _Settled:
    """A watched collection's re-check probe: its cursor after the newest settled
    change, read from where the previous probe stopped, moving while committed
    changes wait to settle."""

    def __init__(self, store: RecordStore, namespace: str, collection: str) -> None:
        self._store = store
        self._namespace = namespace
        self._collection = collection
        self._cursor: str | None = None

    async def __call__(self) -> Probed:
        if self._cursor is None:
            self._cursor = await self._store.changes_head(self._namespace)
        batch = await self._store.record_changes(
            self._namespace, self._collection, self._cursor, None, WATCH_BATCH
        )
        self._cursor = batch.cursor
        pending = await self._store.changes_pending(self._namespace, self._collection)
        return Probed(batch.cursor, moving=pending)


def records_topic(namespace: str, collection: str) -> str:
    """The events topic that wakes WatchRecords streams of one collection."""
    return f"records:{namespace}:{collection}"


def written_collections(writes: Iterable[models.Write | object]) -> set[str]:
    """The collections a batch of writes touches (the topics to notify)."""
    return {write.collection for write in writes if isinstance(write, models.RecordWrite)}


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
        message.record.CopyFrom(record_to_proto(change.record))
    return message


class _CreateShape(Protocol):
    """CreateRecordRequest and CreateRecordWrite share these fields."""

    @property
    def collection(self) -> str: ...
    @property
    def record_id(self) -> str: ...
    @property
    def data(self) -> struct_pb2.Struct: ...
    @property
    def expire_time(self) -> timestamp_pb2.Timestamp: ...
    def HasField(self, name: Any) -> bool: ...


class _UpdateShape(Protocol):
    """UpdateRecordRequest and UpdateRecordWrite share these fields."""

    @property
    def collection(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def data(self) -> struct_pb2.Struct: ...
    @property
    def update_mask(self) -> field_mask_pb2.FieldMask: ...
    @property
    def expected_version(self) -> int: ...
    @property
    def allow_missing(self) -> bool: ...
    @property
    def expire_time(self) -> timestamp_pb2.Timestamp: ...
    def HasField(self, name: Any) -> bool: ...


class _DeleteShape(Protocol):
    """DeleteRecordRequest and DeleteRecordWrite share these fields."""

    @property
    def collection(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def expected_version(self) -> int: ...
    @property
    def allow_missing(self) -> bool: ...


def _expire_time(message: _CreateShape | _UpdateShape, prefix: str) -> datetime | None:
    value = to_datetime(
        message.expire_time, message.HasField("expire_time"), f"{prefix}expire_time"
    )
    if value is not None and value <= datetime.now(UTC):
        raise errors.InvalidArgument.field(f"{prefix}expire_time", "must be in the future")
    return value


def _expected_version(value: int, prefix: str) -> int | None:
    if value < 0:
        raise errors.InvalidArgument.field(f"{prefix}expected_version", "must not be negative")
    return value or None


def _data(value: struct_pb2.Struct, max_bytes: int, field: str) -> models.JSON:
    # Cheap early refusal of grossly oversized data before converting it; the exact
    # limit is enforced on the stored JSON by core.writes.
    size = value.ByteSize()
    if size > 4 * max_bytes:
        raise errors.TooLarge(
            f"record data is about {size} bytes, over the {max_bytes}-byte limit; "
            "store large content as an artifact",
            metadata={"size": str(size), "limit": str(max_bytes)},
        )
    return data_from_struct(value, field)


def create_write(message: _CreateShape, max_bytes: int, prefix: str = "") -> models.CreateRecord:
    """Validate a create (request or Commit write) into a domain write."""
    collection = validation.collection(message.collection, f"{prefix}collection")
    record_id = (
        validation.entity_id(message.record_id, f"{prefix}record_id")
        if message.record_id
        else validation.new_id()
    )
    data = _data(message.data, max_bytes, f"{prefix}data")
    return models.CreateRecord(collection, record_id, data, _expire_time(message, prefix))


def update_write(message: _UpdateShape, max_bytes: int, prefix: str = "") -> models.UpdateRecord:
    """Validate an update (request or Commit write) into a domain write."""
    paths = (
        parse_mask(list(message.update_mask.paths), f"{prefix}update_mask")
        if message.update_mask.paths
        else None
    )
    return models.UpdateRecord(
        collection=validation.collection(message.collection, f"{prefix}collection"),
        id=validation.entity_id(message.id, f"{prefix}id"),
        data=_data(message.data, max_bytes, f"{prefix}data"),
        paths=paths,
        expected_version=_expected_version(message.expected_version, prefix),
        allow_missing=message.allow_missing,
        expire_time=_expire_time(message, prefix),
    )


def delete_write(message: _DeleteShape, prefix: str = "") -> models.DeleteRecord:
    """Validate a delete (request or Commit write) into a domain write."""
    return models.DeleteRecord(
        collection=validation.collection(message.collection, f"{prefix}collection"),
        id=validation.entity_id(message.id, f"{prefix}id"),
        expected_version=_expected_version(message.expected_version, prefix),
        allow_missing=message.allow_missing,
    )


class RecordService(records_pb2_grpc.RecordServiceServicer):
    """gRPC face of a RecordStore."""

    def __init__(
        self, store: RecordStore, max_record_bytes: int, events: Events, *, tokens: PageTokens
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._max_bytes = max_record_bytes
        self._events = events

    async def _write_one(
        self,
        namespace: str,
        write: models.Write,
        context: Context,
        idempotency: models.Idempotency | None = None,
    ) -> models.WriteResult:
        try:
            results = await self._store.commit(
                namespace,
                [write],
                actor=actor(context.invocation_metadata()),
                idempotency=idempotency,
            )
        except errors.StrataError as error:
            error.metadata.pop("write_index", None)  # meaningful only for Commit
            raise
        assert isinstance(write, models.RecordWrite)
        self._events.notify(records_topic(namespace, write.collection))
        return results[0]

    @unary
    async def CreateRecord(
        self, request: records_pb2.CreateRecordRequest, context: Context
    ) -> records_pb2.Record:
        namespace = validation.namespace(request.namespace)
        write = create_write(request, self._max_bytes)
        request_id = validation.request_id(request.request_id)
        idempotency = models.Idempotency(request_id, fingerprint(request)) if request_id else None
        result = await self._write_one(namespace, write, context, idempotency)
        assert isinstance(result, models.Record)
        return record_to_proto(result)

    @unary
    async def GetRecord(
        self, request: records_pb2.GetRecordRequest, context: Context
    ) -> records_pb2.Record:
        record = await self._store.get_record(
            validation.namespace(request.namespace),
            validation.collection(request.collection),
            validation.entity_id(request.id),
        )
        return record_to_proto(record)

    @unary
    async def BatchGetRecords(
        self, request: records_pb2.BatchGetRecordsRequest, context: Context
    ) -> records_pb2.BatchGetRecordsResponse:
        namespace = validation.namespace(request.namespace)
        collection = validation.collection(request.collection)
        if len(request.ids) > MAX_BATCH_IDS:
            raise errors.InvalidArgument.field("ids", f"at most {MAX_BATCH_IDS} ids per call")
        ids = list(
            dict.fromkeys(
                validation.entity_id(value, f"ids[{index}]")
                for index, value in enumerate(request.ids)
            )
        )
        found = {r.id: r for r in await self._store.batch_get_records(namespace, collection, ids)}
        return records_pb2.BatchGetRecordsResponse(
            records=[record_to_proto(found[i]) for i in ids if i in found],
            missing_ids=[i for i in ids if i not in found],
        )

    @unary
    async def UpdateRecord(
        self, request: records_pb2.UpdateRecordRequest, context: Context
    ) -> records_pb2.Record:
        namespace = validation.namespace(request.namespace)
        result = await self._write_one(namespace, update_write(request, self._max_bytes), context)
        assert isinstance(result, models.Record)
        return record_to_proto(result)

    @unary
    async def DeleteRecord(
        self, request: records_pb2.DeleteRecordRequest, context: Context
    ) -> empty_pb2.Empty:
        namespace = validation.namespace(request.namespace)
        await self._write_one(namespace, delete_write(request), context)
        return empty_pb2.Empty()

    @unary
    async def ListRecords(
        self, request: records_pb2.ListRecordsRequest, context: Context
    ) -> records_pb2.ListRecordsResponse:
        namespace = validation.namespace(request.namespace)
        collection = validation.collection(request.collection)
        filter = parse_filter(request.filter)
        order = parse_order_by(request.order_by)
        limit = page_size(request.page_size)
        digest = query_digest("list", namespace, collection, request.filter, request.order_by)
        after = None
        if request.page_token:
            after, _ = self._tokens.decode(request.page_token, digest)
            if after is None or len(after) != len(order):
                raise errors.InvalidArgument.field("page_token", "is not a token for this list")
        page = await self._store.list_records(
            namespace, models.ListQuery(collection, filter, order, limit, after)
        )
        return records_pb2.ListRecordsResponse(
            records=[record_to_proto(record) for record in page.items],
            next_page_token=(
                self._tokens.encode(digest, tuple(page.last_key))
                if page.last_key is not None
                else ""
            ),
        )

    @unary
    async def CountRecords(
        self, request: records_pb2.CountRecordsRequest, context: Context
    ) -> records_pb2.CountRecordsResponse:
        count = await self._store.count_records(
            validation.namespace(request.namespace),
            validation.collection(request.collection),
            parse_filter(request.filter),
        )
        return records_pb2.CountRecordsResponse(count=count)

    @unary
    async def SearchRecords(
        self, request: records_pb2.SearchRecordsRequest, context: Context
    ) -> records_pb2.SearchRecordsResponse:
        namespace = validation.namespace(request.namespace)
        collection = validation.collection(request.collection)
        text = validation.search_query(request.query)
        limit = page_size(request.page_size, DEFAULT_SEARCH_PAGE)
        digest = query_digest("search", namespace, collection, text)
        offset = self._tokens.decode(request.page_token, digest)[1] if request.page_token else 0
        page = await self._store.search_records(
            namespace, models.SearchQuery(collection, text, limit, offset)
        )
        return records_pb2.SearchRecordsResponse(
            hits=[
                records_pb2.SearchHit(record=record_to_proto(hit.record), score=hit.score)
                for hit in page.items
            ],
            next_page_token=(
                self._tokens.encode(digest, offset=offset + limit)
                if page.last_key is not None and offset + limit <= MAX_OFFSET
                else ""
            ),
        )

    @streaming
    async def WatchRecords(
        self, request: records_pb2.WatchRecordsRequest, context: Context
    ) -> AsyncIterator[records_pb2.WatchRecordsResponse]:
        namespace = validation.namespace(request.namespace)
        collection = validation.collection(request.collection)
        filter = parse_filter(request.filter)
        # Listening before the first read: a write committed between a read that
        # found nothing and the wait still wakes the stream.
        wake = records_topic(namespace, collection)
        recheck = Recheck(
            wake, _Settled(self._store, namespace, collection), every=WATCH_RECHECK_SECONDS
        )
        with self._events.listen(wake, recheck=recheck) as wakeups:
            cursor = request.from_cursor or await self._store.changes_head(namespace)
            # Reject a foreign cursor now, before telling the client where it starts.
            await self._store.record_changes(namespace, collection, cursor, filter, 1)
            yield records_pb2.WatchRecordsResponse(started=records_pb2.WatchStarted(cursor=cursor))
            while True:
                batch = await self._store.record_changes(
                    namespace, collection, cursor, filter, WATCH_BATCH
                )
                for change in batch.changes:
                    yield records_pb2.WatchRecordsResponse(change=change_to_proto(change))
                advanced = batch.cursor != cursor
                cursor = batch.cursor
                if not advanced:
                    await wakeups.wait(None)
