"""TranscriptService: validates requests, turns them into TranscriptStore calls, and
streams transcripts to readers, live when they follow.

A ReadTranscript stream keeps only a cursor (the next seq to deliver) and reads one
byte-bounded batch at a time from the database, so memory is bounded by the batch
size whatever the transcript's length, and each batch is written (awaited) before
the next is read, so a slow reader is never buffered ahead of. A follower listens
on its transcript's events topic before it first reads: an append on any replica
notifies that topic after it commits, and the follower re-reads the database (the
wakeup carries no data). An idle follower reads nothing: a wakeup that never came
(the events channel between replicas was down) is covered by the transcript's
re-check, one query shared by all its followers (storage/events/local.py).
Between reads a follower holds no database connection, only its listener, which
the `with` block releases however the stream ends (a cancelled call included).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import grpc
from google.protobuf import empty_pb2

from strata.v1 import transaction_pb2, transcripts_pb2, transcripts_pb2_grpc
from strata_server.api.batch_wire import batch_message
from strata_server.api.convert import actor, data_from_struct, fingerprint, set_timestamp
from strata_server.api.errors import streaming, unary
from strata_server.core import errors, idle, transcripts, validation
from strata_server.core.models import Idempotency
from strata_server.core.paging import MAX_OFFSET, PageTokens, page_size, query_digest
from strata_server.storage.ports import Events, Recheck, TranscriptStore

Context = grpc.aio.ServicerContext[Any, Any]
ReadResponse = transcripts_pb2.ReadTranscriptResponse


def topic(namespace: str, id: str) -> str:
    """The events topic that wakes the followers of one transcript."""
    return f"transcript:{namespace}:{id}"


def transcript_to_proto(transcript: transcripts.Transcript) -> transcripts_pb2.Transcript:
    """A domain transcript as the wire message."""
    message = transcripts_pb2.Transcript(
        namespace=transcript.namespace,
        id=transcript.id,
        owner=transcript.owner,
        title=transcript.title,
        labels=dict(transcript.labels),
        next_seq=transcript.next_seq,
        size_bytes=transcript.size_bytes,
        sealed=transcript.sealed,
    )
    set_timestamp(message.create_time, transcript.create_time)
    set_timestamp(message.update_time, transcript.update_time)
    if transcript.seal_time is not None:
        set_timestamp(message.seal_time, transcript.seal_time)
    return message


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Consume the outcome of a read no one awaits, so its error is not logged as
    never retrieved."""
    if not task.cancelled():
        task.exception()


def serialize_read_response(response: ReadResponse | bytes) -> bytes:
    """ReadTranscript's response serializer: batches come already encoded, the other
    messages (up_to_date, sealed, heartbeat) as messages."""
    return response if isinstance(response, bytes) else response.SerializeToString()


def new_entries(
    entries: Sequence[transcripts_pb2.Entry], max_entry_bytes: int, prefix: str = ""
) -> list[transcripts.NewEntry]:
    """Validate the entries of an append (alone or inside a Commit); errors carry
    `entry_index`."""
    if not 1 <= len(entries) <= transcripts.MAX_APPEND_ENTRIES:
        raise errors.InvalidArgument.field(
            f"{prefix}entries", f"must hold 1 to {transcripts.MAX_APPEND_ENTRIES} entries"
        )
    checked = []
    for index, entry in enumerate(entries):
        field = f"{prefix}entries[{index}]."
        try:
            data = data_from_struct(entry.data, f"{field}data") if entry.HasField("data") else None
            checked.append(
                transcripts.new_entry(entry.role, entry.content, data, max_entry_bytes, field)
            )
        except errors.StrataError as error:
            error.metadata.setdefault("entry_index", str(index))
            raise
    return checked


def append_write(
    request: transcripts_pb2.AppendEntriesRequest | transaction_pb2.AppendEntriesWrite,
    max_entry_bytes: int,
    prefix: str = "",
) -> transcripts.AppendEntries:
    """Validate an append (an AppendEntries call, or a Commit's append write)."""
    id = validation.entity_id(request.id, f"{prefix}id")
    if request.expected_next_seq < 0:
        raise errors.InvalidArgument.field(
            f"{prefix}expected_next_seq", "must be positive (or 0 for no check)"
        )
    return transcripts.AppendEntries(
        id,
        new_entries(request.entries, max_entry_bytes, prefix),
        request.expected_next_seq or None,
    )


class TranscriptService(transcripts_pb2_grpc.TranscriptServiceServicer):
    """gRPC face of a TranscriptStore, with followers woken through an Events port."""

    def __init__(
        self,
        store: TranscriptStore,
        events: Events,
        *,
        max_entry_bytes: int,
        heartbeat_seconds: float,
        tokens: PageTokens,
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._events = events
        self._max_entry_bytes = max_entry_bytes
        self._heartbeat = heartbeat_seconds
        # The followed transcripts' re-checks fall due together: one query per round.
        self._states = idle.Batched(store.transcript_states)

    @unary
    async def CreateTranscript(
        self, request: transcripts_pb2.CreateTranscriptRequest, context: Context
    ) -> transcripts_pb2.Transcript:
        namespace = validation.namespace(request.namespace)
        id = (
            validation.entity_id(request.transcript_id, "transcript_id")
            if request.transcript_id
            else validation.new_id()
        )
        new = transcripts.new_transcript(id, request.owner, request.title, request.labels)
        request_id = validation.request_id(request.request_id)
        idempotency = Idempotency(request_id, fingerprint(request)) if request_id else None
        transcript = await self._store.create_transcript(
            namespace, new, actor=actor(context.invocation_metadata()), idempotency=idempotency
        )
        return transcript_to_proto(transcript)

    @unary
    async def GetTranscript(
        self, request: transcripts_pb2.GetTranscriptRequest, context: Context
    ) -> transcripts_pb2.Transcript:
        transcript = await self._store.get_transcript(
            validation.namespace(request.namespace), validation.entity_id(request.id)
        )
        return transcript_to_proto(transcript)

    @unary
    async def ListTranscripts(
        self, request: transcripts_pb2.ListTranscriptsRequest, context: Context
    ) -> transcripts_pb2.ListTranscriptsResponse:
        namespace = validation.namespace(request.namespace)
        owner = request.owner or None
        limit = page_size(request.page_size)
        digest = query_digest("transcripts", namespace, request.owner)
        after = None
        if request.page_token:
            after, _ = self._tokens.decode(request.page_token, digest)
            if (
                after is None
                or len(after) != 2
                or not isinstance(after[0], datetime)
                or not isinstance(after[1], str)
            ):
                raise errors.InvalidArgument.field("page_token", "is not a token for this list")
        page = await self._store.list_transcripts(namespace, owner, limit, after)
        return transcripts_pb2.ListTranscriptsResponse(
            transcripts=[transcript_to_proto(t) for t in page.items],
            next_page_token=self._tokens.encode(digest, tuple(page.last_key))
            if page.last_key is not None
            else "",
        )

    @unary
    async def AppendEntries(
        self, request: transcripts_pb2.AppendEntriesRequest, context: Context
    ) -> transcripts_pb2.AppendEntriesResponse:
        namespace = validation.namespace(request.namespace)
        append = append_write(request, self._max_entry_bytes)
        request_id = validation.request_id(request.request_id)
        idempotency = Idempotency(request_id, fingerprint(request)) if request_id else None
        wake = topic(namespace, append.id)
        # With PostgreSQL events the append's own commit tells the other replicas.
        notice = self._events.commit_notice(wake)
        appended = await self._store.append_entries(
            namespace,
            append,
            actor=actor(context.invocation_metadata()),
            idempotency=idempotency,
            notice=notice,
        )
        self._events.notify(wake, announced=notice is not None)
        return transcripts_pb2.AppendEntriesResponse(
            first_seq=appended.first_seq, next_seq=appended.next_seq
        )

    @streaming
    async def ReadTranscript(  # type: ignore[override]  # batches are sent as bytes
        self, request: transcripts_pb2.ReadTranscriptRequest, context: Context
    ) -> AsyncIterator[ReadResponse | bytes]:
        namespace = validation.namespace(request.namespace)
        id = validation.entity_id(request.id)
        max_bytes = transcripts.batch_bytes(request.max_batch_bytes)
        loop = asyncio.get_running_loop()
        # Listening before the first read: an append that commits between a read
        # that found nothing and the wait still wakes the stream.
        wake = topic(namespace, id)
        recheck = Recheck(wake, functools.partial(self._version, namespace, id))
        with self._events.listen(wake, recheck=recheck) as wakeups:
            transcript = await self._store.get_transcript(namespace, id)
            cursor = transcripts.start_seq(request.from_seq, transcript.next_seq)
            if cursor > transcript.next_seq and (not request.follow or transcript.sealed):
                raise transcripts.past_end(id, cursor, transcript.next_seq)
            told_up_to_date = False  # for the current cursor
            quiet_since = loop.time()  # when the stream last sent anything
            look = True  # whether entries may be waiting at the cursor
            ahead: asyncio.Task[transcripts.EntryBatch | None] | None = None  # the next batch
            try:
                while True:
                    if look:
                        if ahead is not None:
                            batch, ahead = await ahead, None
                        else:
                            batch = await self._store.read_batch(namespace, id, cursor, max_bytes)
                        if batch is not None:
                            cursor = batch.next_seq
                            # Read the next batch while this one is written, so the
                            # write and the database round trip no longer take turns:
                            # bench/transcripts.py on 200k entries, 64 KiB / 1 MiB
                            # batches, 143k/136k -> 165k/155k entries/s. At most two
                            # batches are held, so memory stays bounded.
                            ahead = asyncio.create_task(
                                self._store.read_batch(namespace, id, cursor, max_bytes)
                            )
                            # The entries come in their stored wire form: framing them
                            # is all the server does per batch (api/batch_wire.py).
                            yield batch_message(batch.wire, batch.next_seq)
                            told_up_to_date = False
                            quiet_since = loop.time()
                            continue
                    # Nothing at the cursor: where does the transcript stand? (NotFound
                    # once it is deleted, which ends the stream with that error.)
                    transcript = await self._store.get_transcript(namespace, id)
                    if transcript.next_seq > cursor:
                        look = True  # committed between the two reads
                        continue
                    if transcript.sealed:
                        yield _sealed(transcript)
                        return
                    if cursor == transcript.next_seq and not told_up_to_date:
                        yield ReadResponse(
                            up_to_date=ReadResponse.UpToDate(next_seq=transcript.next_seq)
                        )
                        told_up_to_date = True
                        quiet_since = loop.time()
                    if not request.follow:
                        return
                    # Idle until a wakeup (an append, seal or delete on any replica, or
                    # the topic's shared re-check): heartbeats only, no database read.
                    while True:
                        due = idle.heartbeat_at(quiet_since, self._heartbeat) - loop.time()
                        if due <= 0:
                            yield _heartbeat(cursor)
                            quiet_since = loop.time()
                            continue
                        woke = await wakeups.wait(due)
                        # An RPC gRPC has ended (its client gone) stops here.
                        if context.done():
                            return
                        if woke:
                            break
                    look = True

            finally:
                if ahead is not None:  # the stream ended (or failed) with a read in flight
                    ahead.add_done_callback(_retrieve)
                    ahead.cancel()

    async def _version(self, namespace: str, id: str) -> tuple[int, bool] | None:
        """What the followers of a transcript re-check: its next seq and whether it is
        sealed (None once it is gone)."""
        return await self._states.get((namespace, id))

    @unary
    async def SealTranscript(
        self, request: transcripts_pb2.SealTranscriptRequest, context: Context
    ) -> transcripts_pb2.Transcript:
        namespace = validation.namespace(request.namespace)
        id = validation.entity_id(request.id)
        transcript = await self._store.seal_transcript(
            namespace, id, actor=actor(context.invocation_metadata())
        )
        self._events.notify(topic(namespace, id))
        return transcript_to_proto(transcript)

    @unary
    async def DeleteTranscript(
        self, request: transcripts_pb2.DeleteTranscriptRequest, context: Context
    ) -> empty_pb2.Empty:
        namespace = validation.namespace(request.namespace)
        id = validation.entity_id(request.id)
        await self._store.delete_transcript(
            namespace, id, actor=actor(context.invocation_metadata())
        )
        self._events.notify(topic(namespace, id))
        return empty_pb2.Empty()

    @unary
    async def SearchTranscripts(
        self, request: transcripts_pb2.SearchTranscriptsRequest, context: Context
    ) -> transcripts_pb2.SearchTranscriptsResponse:
        namespace = validation.namespace(request.namespace)
        text = validation.search_query(request.query)
        id = validation.entity_id(request.id) if request.id else None
        limit = page_size(request.page_size)
        digest = query_digest("transcript-search", namespace, text, request.id)
        offset = self._tokens.decode(request.page_token, digest)[1] if request.page_token else 0
        page = await self._store.search_transcripts(
            namespace, transcripts.TranscriptSearch(text, limit, offset, id)
        )
        next_offset = offset + limit
        more = page.last_key is not None and next_offset <= MAX_OFFSET
        response = transcripts_pb2.SearchTranscriptsResponse(
            next_page_token=self._tokens.encode(digest, offset=next_offset) if more else ""
        )
        for hit in page.items:
            message = response.hits.add(
                transcript_id=hit.transcript_id,
                seq=hit.seq,
                role=hit.role,
                snippet=hit.snippet,
                score=hit.score,
            )
            set_timestamp(message.create_time, hit.create_time)
        return response


def _sealed(transcript: transcripts.Transcript) -> ReadResponse:
    sealed = ReadResponse.Sealed(next_seq=transcript.next_seq)
    if transcript.seal_time is not None:
        set_timestamp(sealed.seal_time, transcript.seal_time)
    return ReadResponse(sealed=sealed)


def _heartbeat(cursor: int) -> ReadResponse:
    heartbeat = ReadResponse.Heartbeat(next_seq=cursor)
    set_timestamp(heartbeat.time, datetime.now(UTC))
    return ReadResponse(heartbeat=heartbeat)


class _Registrations:
    """Stands in for a server to catch the method handlers the generated
    `add_TranscriptServiceServicer_to_server` builds."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        self.handlers = dict(handlers)


def add_to_server(service: TranscriptService, server: grpc.aio.Server) -> None:
    """Register `service` as the generated code would, except that ReadTranscript's
    responses go through `serialize_read_response` (its batches are bytes)."""
    registrations = _Registrations()
    transcripts_pb2_grpc.add_TranscriptServiceServicer_to_server(
        service, cast(grpc.aio.Server, registrations)
    )
    handlers = registrations.handlers
    descriptor = transcripts_pb2.DESCRIPTOR.services_by_name["TranscriptService"]
    if set(handlers) != {method.name for method in descriptor.methods}:
        raise RuntimeError("the generated TranscriptService registration changed shape")
    handlers["ReadTranscript"] = grpc.unary_stream_rpc_method_handler(
        service.ReadTranscript,
        request_deserializer=transcripts_pb2.ReadTranscriptRequest.FromString,
        response_serializer=serialize_read_response,
    )
    name = descriptor.full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
    server.add_registered_method_handlers(name, handlers)
