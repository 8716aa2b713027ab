"""The ranking across kinds, record snippets and which artifact bytes count as text
(core/search_rules.py): pure rules, no engine."""

from __future__ import annotations

from datetime import UTC, datetime

from strata_server.core.search_rules import (
    KindHit,
    SearchKind,
    indexable_text,
    merged,
    snippet,
    string_values,
    wants_text,
)

AT = datetime(2026, 1, 1, tzinfo=UTC)


def hit(kind: SearchKind, name: str, rank: float) -> KindHit:
    return KindHit(kind, (name, name), rank, "", AT)


def test_each_kind_is_scored_against_its_best_then_merged():
    hits = merged(
        {
            SearchKind.RECORD: [
                hit(SearchKind.RECORD, "r1", 8.0),
                hit(SearchKind.RECORD, "r2", 2.0),
            ],
            SearchKind.TRANSCRIPT_ENTRY: [
                hit(SearchKind.TRANSCRIPT_ENTRY, "e1", 0.1),
                hit(SearchKind.TRANSCRIPT_ENTRY, "e2", 0.05),
            ],
        }
    )
    assert [(h.target[0], h.score) for h in hits] == [
        ("r1", 1.0),
        ("e1", 1.0),
        ("e2", 0.5),
        ("r2", 0.25),
    ]


def test_a_kind_without_rank_signal_scores_one():
    hits = merged({SearchKind.ARTIFACT: [hit(SearchKind.ARTIFACT, "a", 0.0)]})
    assert [h.score for h in hits] == [1.0]


def test_ties_break_by_kind_then_target():
    hits = merged(
        {
            SearchKind.ARTIFACT: [
                hit(SearchKind.ARTIFACT, "b", 1.0),
                hit(SearchKind.ARTIFACT, "a", 1.0),
            ],
            SearchKind.RECORD: [hit(SearchKind.RECORD, "z", 3.0)],
        }
    )
    assert [(h.kind, h.target[0]) for h in hits] == [
        (SearchKind.RECORD, "z"),
        (SearchKind.ARTIFACT, "a"),
        (SearchKind.ARTIFACT, "b"),
    ]


def test_snippet_marks_the_words_around_the_first_match():
    words = " ".join(f"w{i}" for i in range(40))
    made = snippet(["no match here", f"{words} Zebras crossed {words}"], "zebra")
    assert "**Zebras**" in made and "crossed" in made
    assert made.startswith("…") and made.endswith("…")
    assert snippet(["x"], "!!!") == ""


def test_string_values_are_every_string_of_the_data():
    data = {"a": "one", "b": [1, "two", {"c": "three"}], "d": None, "e": True}
    assert string_values(data) == ["one", "two", "three"]


def test_declared_text_is_decoded_and_binary_is_not():
    assert wants_text("text/plain; charset=utf-8") and wants_text("application/ld+json")
    assert not wants_text("image/png")
    assert indexable_text("text/plain", "héllo".encode()[:2]) == "h"  # a cut character is dropped
    assert indexable_text("text/plain", b"a\x00b\xff") == "a b\ufffd"
    assert indexable_text("image/png", b"text") is None


def test_untyped_content_is_text_only_when_it_looks_like_text():
    assert indexable_text("application/octet-stream", b"plain words") == "plain words"
    assert indexable_text("", b"plain words") == "plain words"
    assert indexable_text("application/octet-stream", b"\x00\x01binary") is None
    assert indexable_text("application/octet-stream", b"\xff\xfe bad utf-8") is None
