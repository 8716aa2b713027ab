"""Bad input to every TranscriptService RPC: the exact code and detail, and never
UNKNOWN, INTERNAL or UNAVAILABLE.

`CASES` holds each bad request with the status it must get. `ODDITIES` holds
requests that are unusual but allowed; the sweep at the end asserts that no oddity
is answered with one of CALLER_FAULT_CODES (each case's exact status already
excludes them), and a last test that the refused requests changed nothing.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from strata.v1 import transaction_pb2, transcripts_pb2
from tests.contract.helpers import CALLER_FAULT_CODES, expect_error, raised_by, unique
from tests.contract.transcript_helpers import entry, read_all, transcript_stub

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
TOO_LARGE = grpc.StatusCode.RESOURCE_EXHAUSTED
MIB = 1024 * 1024
UNKNOWN_ID = "no-such-transcript"


@dataclass(frozen=True)
class Ctx:
    """A transcript of this test's own holding three entries."""

    ts: Any
    tx: Any
    id: str


Call = Callable[[Ctx], Any]


@dataclass(frozen=True)
class Case:
    """A bad request and the status it must get."""

    call: Call
    code: grpc.StatusCode = INVALID
    reason: str | None = "INVALID_ARGUMENT"
    field: str | None = None
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    message: str | None = None
    """A phrase the status message must contain."""


CASES: dict[str, Case] = {}


def case(
    name: str,
    call: Call,
    field: str | None = None,
    code: grpc.StatusCode = INVALID,
    reason: str | None = "INVALID_ARGUMENT",
    message: str | None = None,
    **metadata: str,
) -> None:
    """Add a bad request to CASES."""
    assert name not in CASES, name
    CASES[name] = Case(call, code, reason, field, metadata, message)


def _create(c: Ctx, **fields: Any) -> Any:
    return c.ts.CreateTranscript(transcripts_pb2.CreateTranscriptRequest(**fields))


def _append(c: Ctx, entries: list[Any] | None = None, **fields: Any) -> Any:
    fields.setdefault("id", c.id)
    return c.ts.AppendEntries(
        transcripts_pb2.AppendEntriesRequest(
            entries=entries if entries is not None else [entry("ok")], **fields
        )
    )


def _read(c: Ctx, **fields: Any) -> Any:
    fields.setdefault("id", c.id)
    transcript_id = fields.pop("id")
    return read_all(c.ts, transcript_id, **fields)


def _get(c: Ctx, **fields: Any) -> Any:
    return c.ts.GetTranscript(transcripts_pb2.GetTranscriptRequest(**fields))


def _seal(c: Ctx, **fields: Any) -> Any:
    return c.ts.SealTranscript(transcripts_pb2.SealTranscriptRequest(**fields))


def _delete(c: Ctx, **fields: Any) -> Any:
    return c.ts.DeleteTranscript(transcripts_pb2.DeleteTranscriptRequest(**fields))


def _list(c: Ctx, **fields: Any) -> Any:
    return c.ts.ListTranscripts(transcripts_pb2.ListTranscriptsRequest(**fields))


def _search(c: Ctx, **fields: Any) -> Any:
    fields.setdefault("query", "hello")
    return c.ts.SearchTranscripts(transcripts_pb2.SearchTranscriptsRequest(**fields))


def _commit_append(c: Ctx, entries: list[Any], **fields: Any) -> Any:
    fields.setdefault("id", c.id)
    return c.tx.Commit(
        transaction_pb2.CommitRequest(
            writes=[
                transaction_pb2.Write(
                    append=transaction_pb2.AppendEntriesWrite(entries=entries, **fields)
                )
            ]
        )
    )


def _token(body: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


# --- Unknown ids -----------------------------------------------------------------------

case("GetTranscript unknown id", lambda c: _get(c, id=UNKNOWN_ID), code=NOT_FOUND, reason=None)
case(
    "AppendEntries unknown id",
    lambda c: _append(c, id=UNKNOWN_ID),
    code=NOT_FOUND,
    reason=None,
)
case(
    "ReadTranscript unknown id",
    lambda c: _read(c, id=UNKNOWN_ID),
    code=NOT_FOUND,
    reason=None,
)
case(
    "ReadTranscript following an unknown id",
    lambda c: _read(c, id=UNKNOWN_ID, follow=True),
    code=NOT_FOUND,
    reason=None,
)
case("SealTranscript unknown id", lambda c: _seal(c, id=UNKNOWN_ID), code=NOT_FOUND, reason=None)
case(
    "DeleteTranscript unknown id", lambda c: _delete(c, id=UNKNOWN_ID), code=NOT_FOUND, reason=None
)
case(
    "Commit append to an unknown id",
    lambda c: _commit_append(c, [entry("x")], id=UNKNOWN_ID),
    code=NOT_FOUND,
    reason=None,
    write_index="0",
)

# --- Ids, names and other fields -------------------------------------------------------

for rpc, call in {
    "GetTranscript": _get,
    "SealTranscript": _seal,
    "DeleteTranscript": _delete,
    "AppendEntries": _append,
    "ReadTranscript": _read,
}.items():
    case(f"{rpc} empty id", lambda c, call=call: call(c, id=""), "id")
    case(f"{rpc} malformed id", lambda c, call=call: call(c, id="bad id/with slash"), "id")
    case(
        f"{rpc} bad namespace",
        lambda c, call=call: call(c, id=c.id, namespace="Bad NS"),
        "namespace",
    )
case(
    "CreateTranscript malformed transcript_id",
    lambda c: _create(c, transcript_id="-x"),
    "transcript_id",
)
case("CreateTranscript owner too long", lambda c: _create(c, owner="o" * 257), "owner")
case("CreateTranscript owner with a newline", lambda c: _create(c, owner="a\nb"), "owner")
case("CreateTranscript title too long", lambda c: _create(c, title="t" * 1025), "title")
case("CreateTranscript bad label key", lambda c: _create(c, labels={"1bad": "v"}), "labels")
case(
    "CreateTranscript label value too long",
    lambda c: _create(c, labels={"k": "v" * 257}),
    "labels[k]",
)
case(
    "CreateTranscript too many labels",
    lambda c: _create(c, labels={f"k{i}": "v" for i in range(65)}),
    "labels",
)
case(
    "CreateTranscript request_id too long",
    lambda c: _create(c, request_id="r" * 257),
    "request_id",
)

# --- Append --------------------------------------------------------------------------

case("AppendEntries no entries", lambda c: _append(c, entries=[]), "entries")
case(
    "AppendEntries 1001 entries",
    lambda c: _append(c, entries=[entry("x")] * 1001),
    "entries",
)
case(
    "AppendEntries oversized entry",
    lambda c: _append(c, entries=[entry("ok"), entry("x" * (MIB + 1))]),
    code=TOO_LARGE,
    reason="TOO_LARGE",
    message="artifact",
    entry_index="1",
)
case(
    "AppendEntries oversized data",
    lambda c: _append(c, entries=[entry("ok", data={"blob": "x" * (MIB + 1)})]),
    code=TOO_LARGE,
    reason="TOO_LARGE",
    message="artifact",
    entry_index="0",
)
case(
    "AppendEntries content and data together oversized",
    lambda c: _append(c, entries=[entry("x" * (MIB // 2 + 10), data={"b": "y" * (MIB // 2)})]),
    code=TOO_LARGE,
    reason="TOO_LARGE",
    message="artifact",
    entry_index="0",
)
case(
    "AppendEntries bad role",
    lambda c: _append(c, entries=[entry("x", role="not a role!")]),
    "entries[0].role",
    entry_index="0",
)
case(
    "AppendEntries role too long",
    lambda c: _append(c, entries=[entry("x"), entry("x", role="r" * 65)]),
    "entries[1].role",
    entry_index="1",
)
case(
    "AppendEntries content with NUL",
    lambda c: _append(c, entries=[entry("a\x00b")]),
    "entries[0].content",
)
case(
    "AppendEntries data with NUL",
    lambda c: _append(c, entries=[entry("a", data={"k": "a\x00b"})]),
    "entries[0].data",
)
case(
    "AppendEntries negative expected_next_seq",
    lambda c: _append(c, expected_next_seq=-1),
    "expected_next_seq",
)
case(
    "AppendEntries stale expected_next_seq",
    lambda c: _append(c, expected_next_seq=2),
    code=grpc.StatusCode.FAILED_PRECONDITION,
    reason="SEQ_MISMATCH",
    next_seq="4",
)
case(
    "AppendEntries request_id reused with other content",
    lambda c: (
        _append(c, entries=[entry("a")], request_id="reused-" + c.id),
        _append(c, entries=[entry("b")], request_id="reused-" + c.id),
    ),
    "request_id",
)
case(
    "Commit append oversized entry",
    lambda c: _commit_append(c, [entry("x" * (MIB + 1))]),
    code=TOO_LARGE,
    reason="TOO_LARGE",
    message="artifact",
    write_index="0",
    entry_index="0",
)
case(
    "Commit append no entries",
    lambda c: _commit_append(c, []),
    "writes[0].append.entries",
    write_index="0",
)

# --- Read ----------------------------------------------------------------------------

case(
    "ReadTranscript negative max_batch_bytes",
    lambda c: _read(c, max_batch_bytes=-1),
    "max_batch_bytes",
)
case(
    "ReadTranscript following with negative max_batch_bytes",
    lambda c: _read(c, max_batch_bytes=-65536, follow=True),
    "max_batch_bytes",
)
case(
    "ReadTranscript from_seq past the end",
    lambda c: _read(c, from_seq=5),
    code=grpc.StatusCode.OUT_OF_RANGE,
    reason="PAST_END",
    next_seq="4",
)
case(
    "ReadTranscript from_seq far past the end",
    lambda c: _read(c, from_seq=2**62),
    code=grpc.StatusCode.OUT_OF_RANGE,
    reason="PAST_END",
    next_seq="4",
)

# --- List and search -----------------------------------------------------------------

case("ListTranscripts negative page_size", lambda c: _list(c, page_size=-1), "page_size")
case("ListTranscripts garbage page_token", lambda c: _list(c, page_token="garbage"), "page_token")
case(
    "ListTranscripts page_token of another owner",
    lambda c: _list(c, owner="bob", page_token=_list(c, page_size=1).next_page_token),
    "page_token",
)
case(
    "ListTranscripts page_token with a forged key",
    lambda c: _list(c, page_token=_token({"v": 1, "q": "0" * 16, "k": [{"$v": 1}]})),
    "page_token",
)
case("SearchTranscripts empty query", lambda c: _search(c, query="  "), "query")
case("SearchTranscripts query too long", lambda c: _search(c, query="q" * 1025), "query")
case("SearchTranscripts negative page_size", lambda c: _search(c, page_size=-1), "page_size")
case("SearchTranscripts garbage page_token", lambda c: _search(c, page_token="!!"), "page_token")
case("SearchTranscripts malformed id", lambda c: _search(c, id="a b"), "id")


def new_ctx(stubs: Any) -> Ctx:
    """A fresh transcript with three entries."""
    ts = transcript_stub(stubs.channel)
    transcript_id = unique("t")
    ts.CreateTranscript(transcripts_pb2.CreateTranscriptRequest(transcript_id=transcript_id))
    ts.AppendEntries(
        transcripts_pb2.AppendEntriesRequest(
            id=transcript_id, entries=[entry("hello one"), entry("two"), entry("three")]
        )
    )
    return Ctx(ts, stubs.tx, transcript_id)


@pytest.fixture
def ctx(stubs) -> Ctx:
    """A fresh transcript with three entries."""
    return new_ctx(stubs)


def changes_state(name: str) -> bool:
    """The case whose first append succeeds on purpose."""
    return "reused" in name


@pytest.fixture(scope="module")
def shared_ctx(server, stubs_for) -> Ctx:
    """One transcript for every case that changes nothing. test_refused_requests_
    change_nothing sends all of them in a row to one ctx and finds it as it was, so
    each gets the state a fresh ctx would give it; a fresh transcript per case cost
    most of this module's time."""
    return new_ctx(stubs_for(server))


@pytest.mark.parametrize("name", CASES.keys(), ids=CASES.keys())
def test_bad_request_gets_the_right_status(shared_ctx, name: str, request):
    bad = CASES[name]
    ctx = request.getfixturevalue("ctx") if changes_state(name) else shared_ctx
    expect_error(lambda: bad.call(ctx), bad.code, bad.reason, bad.field, **bad.metadata)
    if bad.message is not None:
        error = raised_by(lambda: bad.call(ctx))
        assert bad.message in (error.details() or ""), error.details()


def test_refused_requests_change_nothing(ctx):
    for name, bad in CASES.items():
        if changes_state(name):
            continue
        with contextlib.suppress(grpc.RpcError):
            bad.call(ctx)
    stream = read_all(ctx.ts, ctx.id)
    assert [e.content for e in stream.entries] == ["hello one", "two", "three"]
    transcript = ctx.ts.GetTranscript(transcripts_pb2.GetTranscriptRequest(id=ctx.id))
    assert transcript.next_seq == 4 and not transcript.sealed


ODDITIES: dict[str, Call] = {
    "AppendEntries 1000 entries": lambda c: _append(c, entries=[entry("x")] * 1000),
    "AppendEntries an entry of exactly 1 MiB": lambda c: _append(c, entries=[entry("x" * MIB)]),
    "AppendEntries empty entry": lambda c: _append(c, entries=[transcripts_pb2.Entry()]),
    "AppendEntries entries with seq and create_time set (ignored)": lambda c: _append(
        c, entries=[transcripts_pb2.Entry(seq=99, content="x")]
    ),
    "ReadTranscript max_batch_bytes 1": lambda c: _read(c, max_batch_bytes=1),
    "ReadTranscript max_batch_bytes int32 max": lambda c: _read(c, max_batch_bytes=2**31 - 1),
    "ReadTranscript from_seq int64 min": lambda c: _read(c, from_seq=-(2**63)),
    "ListTranscripts huge page_size": lambda c: _list(c, page_size=2**31 - 1),
    "SearchTranscripts FTS syntax": lambda c: _search(c, query='NEAR("a" b) OR * ^x col:y'),
    "SearchTranscripts punctuation only": lambda c: _search(c, query="!!! ???"),
    "SealTranscript twice": lambda c: (_seal(c, id=c.id), _seal(c, id=c.id)),
}


def test_edge_values_are_served(ctx):
    assert [e.seq for e in _read(ctx, max_batch_bytes=1).entries] == [1, 2, 3]
    assert len(_read(ctx, from_seq=-(2**63)).entries) == 3
    reply = _append(ctx, entries=[entry("x" * MIB)])
    assert reply.first_seq == 4
    assert [len(e.content) for e in _read(ctx, from_seq=4).entries] == [MIB]


# Only the oddities: every case of CASES already has its exact status asserted above,
# which excludes UNKNOWN and INTERNAL, so sending it again would prove nothing more.
SWEEP = ODDITIES


@pytest.mark.parametrize("call", SWEEP.values(), ids=SWEEP.keys())
def test_no_request_yields_unknown_or_internal(ctx, call):
    try:
        call(ctx)
    except grpc.RpcError as error:
        assert error.code() not in CALLER_FAULT_CODES, f"{error.code().name}: {error.details()}"
