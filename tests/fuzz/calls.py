"""Hostile calls to any RPC, derived from its request's descriptor.

Nothing here names an RPC: `calls(method, pools)` fills the request message by
its descriptor (`fields.Builder`: field by field, recursively, from pools by type
and name), so a new RPC or field is fuzzed the day it is added.

A call is one of:
- "message": a well-formed request, with hostile values in some or all fields;
- "raw": random bytes as the whole request body;
- "mutant": a well-formed request with its bytes damaged (cut, flipped, spliced);
- "token": a List/Search request that got a real next_page_token, replayed with
  that token forged (so the query digest matches and the forged contents are read).
Client-streaming RPCs get zero to four such bodies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf import text_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from tests.fuzz import encoding, hostile
from tests.fuzz.encoding import Built
from tests.fuzz.fields import Builder, Pools, damage


@dataclass(frozen=True)
class Method:
    """One RPC as the server's reflection describes it."""

    path: str
    input: Descriptor
    message_class: type[Message]
    response_class: type[Message]
    client_streaming: bool
    server_streaming: bool

    @property
    def pages(self) -> bool:
        """Whether it is paged: a page_token in, a next_page_token out."""
        return "page_token" in self.input.fields_by_name


@dataclass
class Known:
    """What the fuzzer knows of the caller's namespace, so some requests name things
    that exist and get past the lookups: values by field name, bytes by field name
    (a real export archive for `chunk`), and for paged RPCs the requests that got a
    next_page_token along with that token."""

    namespace: str
    forbidden_namespaces: frozenset[str]
    values: dict[str, list[str]] = field(default_factory=dict)
    blobs: dict[str, list[bytes]] = field(default_factory=dict)
    pages: dict[str, list[tuple[Message, str]]] = field(default_factory=dict)


@dataclass
class Call:
    """One RPC to make: its bodies as sent, and how they were made (for reports)."""

    method: Method
    origin: str
    bodies: list[bytes]
    built: list[Built | None] = field(default_factory=list)
    metadata: tuple[tuple[str, str], ...] = ()
    """Extra metadata sent with the call (hostile values of the headers Strata reads)."""

    def describe(self, limit: int = 600) -> str:
        """The request, readable: text format where it was a message, else hex."""
        parts = []
        for body, built in zip(self.bodies, self.built or [None] * len(self.bodies), strict=True):
            if built is not None:
                text = text_format.MessageToString(built.message, as_one_line=True)
                if len(text) > limit:
                    text = f"{text[:limit]}... ({len(text)} chars)"
                swaps = "".join(f" [{old!r} -> {new[:40]!r}]" for old, new in built.swaps)
                parts.append(f"{{{text}}}{swaps[:limit]}")
            else:
                shown = body[:limit].hex()
                parts.append(f"bytes.fromhex({shown!r}){'...' if len(body) > limit else ''}")
        shown = f"{self.method.path} {self.origin}: " + ", ".join(parts or ["<no messages>"])
        return shown + (f" metadata {self.metadata!r}"[:limit] if self.metadata else "")

    def head(self, limit: int = 300) -> str:
        """The call in brief: sizes and the first bytes of each body."""
        parts = [f"{len(body)} bytes {body[: limit // 2].hex()}..." for body in self.bodies]
        return f"{self.method.path} {self.origin}: " + ", ".join(parts or ["<no messages>"])

    def literal(self) -> str:
        """The call as a regression case literal (bodies as hex)."""
        bodies = ", ".join(repr(body.hex()) for body in self.bodies)
        extra = f", metadata={self.metadata!r}" if self.metadata else ""
        return f"({self.method.path!r}, [{bodies}]{extra})"


WIRE_EDGES: tuple[bytes, ...] = (
    b"\x04",
    b"\x00",
    b"\x00\x00",
    b"\xff" * 10,
    b"\x08" + b"\xff" * 10 + b"\x01",  # an 11-byte varint
    b"\x0a\xff\xff\xff\xff\x0f",  # a length past the end
    b"\x0a\x05ab",  # truncated
    b"\x0b",  # start group
    b"\x0c",  # end group without a start
    b"\x0e",  # wire type 6
    b"\x0f",  # wire type 7
    b"\x0a\x03\xed\xa0\x80",  # field 1 (namespace): a lone surrogate
    b"\x12\x02\xc0\xaf",  # field 2: an overlong '/'
    b"\xf8\xff\xff\xff\x0f\x01",  # the largest field number
    b"\x0a\x00" * 10_000,  # one field repeated
    b"\x22" + encoding.varint(300) + b"\x22\x80\x02" * 100,  # nested lengths that lie
)
"""Request bodies that break the wire format in the known ways."""


# --- whole calls --------------------------------------------------------------------------


def built(draw: st.DrawFn, method: Method, pools: Pools, position: int | None = None) -> Built:
    """One well-formed request, with hostile values in some or all fields; `position`
    is its place in a client stream."""
    message = method.message_class()
    service = method.path.split("/")[1].rsplit(".", 1)[-1]
    builder = Builder(draw, pools, service, position)
    builder.fill(message)
    return Built(message, builder.swaps)


RAW_BODIES = st.one_of(
    st.binary(max_size=16),
    st.binary(max_size=512),
    st.sampled_from(WIRE_EDGES),
)


def token_replay(draw: st.DrawFn, method: Method, known: Known) -> Built:
    """A paged request that got a real token, sent again with the token forged."""
    request, token = draw(st.sampled_from(known.pages[method.path]))
    message = method.message_class()
    message.CopyFrom(request)
    message.page_token = hostile.forge(draw, token)
    return Built(message)


_HEADER_VALUES = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    st.sampled_from(
        ("", "x" * 300, "x" * 9000, "Bearer", "Bearer " + "a" * 100, "../../etc/passwd", "*")
    ),
)
_METADATA = hostile.weighted(
    (9, st.just(())),
    (
        1,
        st.lists(
            st.tuples(
                st.sampled_from(("x-strata-actor", "authorization", "x-strata-namespace")),
                _HEADER_VALUES,
            ),
            min_size=1,
            max_size=3,
        ).map(tuple),
    ),
)
"""Metadata: mostly none; sometimes hostile values of the headers Strata reads
(printable ASCII only: the client itself refuses anything else)."""
_ORIGINS = st.sampled_from(["message"] * 5 + ["raw", "mutant"])
_ORIGINS_PAGED = st.sampled_from(["message"] * 5 + ["raw", "mutant", "token", "token"])
_STREAM_LENGTH = st.integers(0, 4)


def calls(method: Method, pools: Pools) -> st.SearchStrategy[Call]:
    """Hostile calls to `method` (see the module docstring for the kinds); one
    strategy per method, so Hypothesis validates it once."""
    return pools.cached(("calls", method.path), lambda: _calls(method, pools))


@st.composite
def _calls(draw: st.DrawFn, method: Method, pools: Pools) -> Call:
    origin = draw(_ORIGINS_PAGED if method.path in pools.known.pages else _ORIGINS)
    count = draw(_STREAM_LENGTH) if method.client_streaming else 1
    bodies: list[bytes] = []
    made: list[Built | None] = []
    for position in range(count):
        if origin == "raw":
            bodies.append(draw(RAW_BODIES))
            made.append(None)
            continue
        if origin == "token":
            one = token_replay(draw, method, pools.known)
        else:
            one = built(draw, method, pools, position if method.client_streaming else None)
        body = one.body()
        if origin == "mutant":
            bodies.append(damage(draw, body))
            made.append(None)
        else:
            bodies.append(body)
            made.append(one)
    return Call(method, origin, bodies, made, draw(_METADATA))
