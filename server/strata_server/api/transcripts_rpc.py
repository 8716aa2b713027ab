"""TranscriptService: parses requests into transcript use cases
(services/transcripts_service.py) and renders what they return; nothing else.

ReadTranscript's batches arrive as the entries' stored wire forms, so framing them
is all this layer does per batch (api/batch_wire.py): they are sent as bytes, which
is why this service registers itself (`add_to_server`) instead of through the
generated function.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import KW_ONLY
from datetime import datetime
from typing import Any, cast

import grpc
from google.protobuf import empty_pb2

from strata.v1 import transcripts_pb2, transcripts_pb2_grpc
from strata_server.api.batch_wire import batch_message
from strata_server.api.convert import (
    actor,
    idempotency,
    message_from,
    parent_from_proto,
    parent_key,
    parent_to_proto,
    set_timestamp,
    target,
)
from strata_server.api.page_tokens import (
    paging,
)
from strata_server.api.parse_writes import append_write
from strata_server.api.status_codes import rpcs
from strata_server.core import transcript_rules as transcripts
from strata_server.core import validation
from strata_server.core.paging import PageTokens
from strata_server.core.values import frozen
from strata_server.services.archive_service import Archiver
from strata_server.services.transcripts_service import (
    Heartbeat,
    ReadItem,
    Sealed,
    Transcripts,
    UpToDate,
)

Context = grpc.aio.ServicerContext[Any, Any]
ReadResponse = transcripts_pb2.ReadTranscriptResponse


def transcript_to_proto(transcript: transcripts.Transcript) -> transcripts_pb2.Transcript:
    """A domain transcript as the wire message."""
    return message_from(
        transcripts_pb2.Transcript,
        transcript,
        parent=parent_to_proto(transcript.parent),
        tier=_TIERS[transcript.tier],
    )


_TIERS = {
    transcripts.Tier.HOT: transcripts_pb2.TRANSCRIPT_TIER_HOT,
    transcripts.Tier.ARCHIVED: transcripts_pb2.TRANSCRIPT_TIER_ARCHIVED,
}


def serialize_read_response(response: ReadResponse | bytes) -> bytes:
    """ReadTranscript's response serializer: batches come already encoded, the other
    messages (up_to_date, sealed, heartbeat) as messages."""
    return response if isinstance(response, bytes) else response.SerializeToString()


@rpcs(transcripts_pb2.DESCRIPTOR.services_by_name["TranscriptService"])
@frozen
class TranscriptService(transcripts_pb2_grpc.TranscriptServiceServicer):
    """gRPC face of the transcript use cases."""

    transcripts: Transcripts
    archiver: Archiver
    _: KW_ONLY
    max_entry_bytes: int
    tokens: PageTokens

    async def CreateTranscript(
        self, request: transcripts_pb2.CreateTranscriptRequest, context: Context
    ) -> transcripts_pb2.Transcript:
        namespace = validation.namespace(request.namespace)
        id = (
            validation.entity_id(request.transcript_id, "transcript_id")
            if request.transcript_id
            else validation.new_id()
        )
        new = transcripts.new_transcript(
            id,
            request.owner,
            request.title,
            request.labels,
            parent=parent_from_proto(request.parent),
        )
        transcript = await self.transcripts.create(
            namespace, new, actor=actor(context), idempotency=idempotency(request)
        )
        return transcript_to_proto(transcript)

    async def GetTranscript(
        self, request: transcripts_pb2.GetTranscriptRequest, context: Context
    ) -> transcripts_pb2.Transcript:
        return transcript_to_proto(await self.transcripts.get(*target(request)))

    async def ListTranscripts(
        self, request: transcripts_pb2.ListTranscriptsRequest, context: Context
    ) -> transcripts_pb2.ListTranscriptsResponse:
        namespace = validation.namespace(request.namespace)
        owner = request.owner or None
        parent = parent_from_proto(request.parent)
        pages = paging(
            self.tokens, request, "transcripts", namespace, request.owner, *parent_key(parent)
        )
        after = pages.after_row(_is_transcript_key)
        query = transcripts.TranscriptListQuery(pages.limit, owner, after, parent)
        page = await self.transcripts.list_transcripts(namespace, query)
        return transcripts_pb2.ListTranscriptsResponse(
            transcripts=[transcript_to_proto(t) for t in page.items],
            next_page_token=pages.next_token(page),
        )

    async def AppendEntries(
        self, request: transcripts_pb2.AppendEntriesRequest, context: Context
    ) -> transcripts_pb2.AppendEntriesResponse:
        namespace = validation.namespace(request.namespace)
        append = append_write(request, self.max_entry_bytes)
        appended = await self.transcripts.append(
            namespace, append, actor=actor(context), idempotency=idempotency(request)
        )
        return transcripts_pb2.AppendEntriesResponse(
            first_seq=appended.first_seq, next_seq=appended.next_seq
        )

    async def ReadTranscript(  # type: ignore[override]  # batches are sent as bytes
        self, request: transcripts_pb2.ReadTranscriptRequest, context: Context
    ) -> AsyncIterator[ReadResponse | bytes]:
        namespace, id = target(request)
        max_bytes = transcripts.batch_bytes(request.max_batch_bytes)
        items = self.transcripts.read(
            namespace,
            id,
            request.from_seq,
            max_bytes,
            follow=request.follow,
            ended=context.done,  # an RPC gRPC has ended (its client gone) stops
        )
        async with aclosing(items):
            async for item in items:
                yield _read_response(item)

    async def SealTranscript(
        self, request: transcripts_pb2.SealTranscriptRequest, context: Context
    ) -> transcripts_pb2.Transcript:
        namespace, id = target(request)
        sealed = await self.transcripts.seal(namespace, id, actor=actor(context))
        return transcript_to_proto(sealed)

    async def RestoreTranscript(
        self, request: transcripts_pb2.RestoreTranscriptRequest, context: Context
    ) -> transcripts_pb2.Transcript:
        namespace, id = target(request)
        restored = await self.archiver.restore(namespace, id, actor=actor(context))
        return transcript_to_proto(restored)

    async def DeleteTranscript(
        self, request: transcripts_pb2.DeleteTranscriptRequest, context: Context
    ) -> empty_pb2.Empty:
        namespace, id = target(request)
        await self.transcripts.delete(namespace, id, actor=actor(context))
        return empty_pb2.Empty()

    async def SearchTranscripts(
        self, request: transcripts_pb2.SearchTranscriptsRequest, context: Context
    ) -> transcripts_pb2.SearchTranscriptsResponse:
        namespace = validation.namespace(request.namespace)
        text = validation.search_query(request.query)
        id = validation.entity_id(request.id) if request.id else None
        pages = paging(self.tokens, request, "transcript-search", namespace, text, request.id)
        offset = pages.offset()
        page = await self.transcripts.search(
            namespace, transcripts.TranscriptSearch(text, pages.limit, offset, id)
        )
        return transcripts_pb2.SearchTranscriptsResponse(
            hits=[message_from(transcripts_pb2.TranscriptHit, hit) for hit in page.items],
            next_page_token=pages.next_offset(page, offset),
        )


def _is_transcript_key(key: tuple[Any, ...]) -> bool:
    """ListTranscripts orders by (create_time, id)."""
    return len(key) == 2 and isinstance(key[0], datetime) and isinstance(key[1], str)


def _read_response(item: ReadItem) -> ReadResponse | bytes:
    """One item of a read as the wire message (a batch already serialized)."""
    if isinstance(item, transcripts.EntryBatch):
        return batch_message(item.wire, item.next_seq)
    if isinstance(item, UpToDate):
        return ReadResponse(up_to_date=ReadResponse.UpToDate(next_seq=item.next_seq))
    if isinstance(item, Sealed):
        return _sealed(item.transcript)
    return _heartbeat(item)


def _sealed(transcript: transcripts.Transcript) -> ReadResponse:
    sealed = ReadResponse.Sealed(next_seq=transcript.next_seq)
    if transcript.seal_time is not None:
        set_timestamp(sealed.seal_time, transcript.seal_time)
    return ReadResponse(sealed=sealed)


def _heartbeat(item: Heartbeat) -> ReadResponse:
    heartbeat = ReadResponse.Heartbeat(next_seq=item.next_seq)
    set_timestamp(heartbeat.time, item.time)
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
