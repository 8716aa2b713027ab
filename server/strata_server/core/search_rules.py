"""One search across kinds: what a search asks, what each kind's engine search
returns, and how those per-kind lists become one ranked page.

Ranking across kinds: each engine ranks within one kind only (SQLite's bm25,
PostgreSQL's ts_rank), on scales that cannot be compared. So each kind's ranks
are divided by the rank of that kind's best hit (its first): every kind's best
hit scores 1, and the rest fall in (0, 1] by how far they trail it. The kinds'
lists are then merged by score, ties broken by kind (in `SearchKind` order) and
target, so the order is total and the same on every call: a page token only
needs the offset. The best hit of a kind is the first row of its engine search
whatever the page, so the scores do not change from page to page.

Snippets are made last, for the page's hits only (`snippet`, from the texts the
index returns for them), the same way on both engines: ranking a deep page reads
no text of the hits above it.
"""

from __future__ import annotations

import codecs
import enum
import heapq
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from strata_server.core.values import frozen

Target = tuple[str, str] | tuple[str, int]
"""What a hit names (see `KindHit.target`)."""


class SearchKind(enum.IntEnum):
    """What a hit is, in tie-breaking order (the proto's numbers)."""

    RECORD = 1
    TRANSCRIPT_ENTRY = 2
    ARTIFACT = 3
    ARTIFACT_TEXT = 4


@frozen
class SearchRequest:
    """A checked search: `kinds` never empty, `collections` empty for every one."""

    text: str
    kinds: frozenset[SearchKind]
    collections: tuple[str, ...] = ()
    owner: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None

    def digest_parts(self) -> tuple[str, ...]:
        """Everything that defines the hits and their order, for the page token."""
        return (
            "search",
            self.text,
            ",".join(str(int(kind)) for kind in sorted(self.kinds)),
            "\x1e".join(sorted(self.collections)),
            self.owner or "",
            self.start_time.isoformat() if self.start_time else "",
            self.end_time.isoformat() if self.end_time else "",
        )


@frozen
class KindQuery:
    """One kind's engine search: the best `limit` hits of `request` of `kind`."""

    kind: SearchKind
    request: SearchRequest
    limit: int


@frozen
class KindHit:
    """A hit as an engine ranks it within its kind.

    `target` names it: (collection, id) for a record, (transcript_id, seq) for an
    entry, (artifact_id, name) for an artifact."""

    kind: SearchKind
    target: Target
    rank: float
    """The engine's rank, higher is better (bm25 negated on SQLite)."""
    owner: str
    time: datetime


@frozen
class SearchHit:
    """A hit of the merged list, with its normalised score (and, once it is on the
    page served, its snippet)."""

    kind: SearchKind
    target: Target
    score: float
    owner: str
    time: datetime
    snippet: str = ""


def normalised(hits: Sequence[KindHit]) -> list[SearchHit]:
    """One kind's hits (best first) scored against the best: rank / best rank, so
    the best scores 1. An engine that ranks its best at or below 0 (no signal)
    gives every hit 1."""
    best = hits[0].rank if hits else 0.0
    return [
        SearchHit(
            hit.kind,
            hit.target,
            min(1.0, hit.rank / best) if best > 0 else 1.0,
            hit.owner,
            hit.time,
        )
        for hit in hits
    ]


def _order(hit: SearchHit) -> tuple[Any, ...]:
    return (-hit.score, int(hit.kind), hit.target)


def merged(per_kind: Mapping[SearchKind, Sequence[KindHit]]) -> list[SearchHit]:
    """Every kind's hits in one list, best first (see the module docstring)."""
    lists = [sorted(normalised(hits), key=_order) for hits in per_kind.values()]
    return list(heapq.merge(*lists, key=_order))


_WINDOW = 12
"""Words of context on each side of the first match in a Python-made snippet."""


def snippet(texts: Iterable[str], text: str) -> str:
    """A hit's snippet: the words around the first word of `text` in `texts` (a
    record's string values, an entry's content, an artifact's name and labels or
    its text), the words matched (case-insensitively, as a prefix of a word,
    as the engines tokenise) between `**`, and `…` where text was cut."""
    terms = [re.escape(term) for term in re.findall(r"\w+", text.lower())]
    if not terms:
        return ""
    pattern = re.compile(r"\b(" + "|".join(terms) + r")\w*", re.IGNORECASE)
    values = list(texts)
    for value in values:
        words = value.split()
        at = next((i for i, word in enumerate(words) if pattern.search(word)), None)
        if at is None:
            continue
        start, end = max(0, at - _WINDOW), min(len(words), at + _WINDOW + 1)
        shown = " ".join(
            pattern.sub(lambda m: f"**{m.group(0)}**", word) for word in words[start:end]
        )
        return ("…" if start > 0 else "") + shown + ("…" if end < len(words) else "")
    return " ".join(values)[: _WINDOW * 8]


def string_values(data: Any) -> list[str]:
    """The string values of a record's data, depth first (what its index holds)."""
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [text for value in data.values() for text in string_values(value)]
    if isinstance(data, list):
        return [text for value in data for text in string_values(value)]
    return []


_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/javascript",
        "application/toml",
        "application/sql",
    }
)
_SNIFFED_TYPES = frozenset({"", "application/octet-stream"})
"""Types that say nothing about the content: their first bytes decide."""


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def wants_text(content_type: str) -> bool:
    """Whether an artifact of this type may be text: declared text (text/*, JSON,
    XML, YAML, ...) or a type that says nothing (then `indexable_text` sniffs)."""
    media = _media_type(content_type)
    return (
        media.startswith("text/")
        or media in _TEXT_TYPES
        or media.endswith(("+json", "+xml"))
        or media in _SNIFFED_TYPES
    )


def indexable_text(content_type: str, head: bytes) -> str | None:
    """The text to index from an artifact's first bytes `head` (already cut to the
    limit), or None when it is not text. Declared text is decoded as UTF-8 with
    bad bytes replaced; an untyped artifact counts as text only when its first
    bytes hold no NUL and decode as UTF-8. A character cut by the limit is dropped;
    NULs become spaces (PostgreSQL text holds none)."""
    if not wants_text(content_type):
        return None
    decoder = codecs.getincrementaldecoder("utf-8")
    if _media_type(content_type) in _SNIFFED_TYPES:
        if b"\x00" in head:
            return None
        try:
            return decoder("strict").decode(head, final=False)
        except UnicodeDecodeError:
            return None
    return decoder("replace").decode(head, final=False).replace("\x00", " ")
