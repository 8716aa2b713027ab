"""core/parent_refs.py: what a parent is, and which deletes refuse or cascade."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from strata_server.core.errors import InvalidArgument
from strata_server.core.parent_refs import (
    ChildRef,
    HasChildren,
    ParentDelete,
    ParentRef,
    cascading,
    parent_ref,
)
from strata_server.core.transcript_rules import Transcript, transcript_from_json, transcript_to_json
from strata_server.core.transfer_format import BadArchive, Kind
from strata_server.core.transfer_row_decoding import decode
from strata_server.core.transfer_row_encoding import encode


def test_a_parent_is_both_halves_or_neither():
    assert parent_ref("", "") is None
    assert parent_ref("runs", "r1") == ParentRef("runs", "r1")
    with pytest.raises(InvalidArgument) as half:
        parent_ref("runs", "")
    assert half.value.violations[0].field == "parent"
    with pytest.raises(InvalidArgument) as bad:
        parent_ref("no spaces", "r1", "header.parent")
    assert bad.value.violations[0].field == "header.parent.collection"


def test_the_first_refusing_delete_of_the_commit_is_named():
    a, b, c = ParentRef("runs", "a"), ParentRef("runs", "b"), ParentRef("runs", "c")
    deletes = {a: ParentDelete(3, False), b: ParentDelete(1, False), c: ParentDelete(0, True)}
    children = [ChildRef("artifact", "x", a), ChildRef("transcript", "y", b)]
    with pytest.raises(HasChildren) as refused:
        cascading(deletes, [*children, ChildRef("artifact", "z", c)])
    assert refused.value.metadata["write_index"] == "1"
    assert refused.value.metadata["id"] == "b" and refused.value.children == (children[1],)


def test_cascading_deletes_name_their_parents_and_childless_ones_none():
    a, b = ParentRef("runs", "a"), ParentRef("runs", "b")
    deletes = {a: ParentDelete(0, True), b: ParentDelete(1, False)}
    assert cascading(deletes, [ChildRef("transcript", "t", a)]) == [a]
    assert cascading(deletes, []) == []


def test_a_refusal_lists_at_most_a_hundred_children_and_counts_all():
    a = ParentRef("runs", "a")
    children = [ChildRef("artifact", f"x{i}", a) for i in range(150)]
    with pytest.raises(HasChildren) as refused:
        cascading({a: ParentDelete(0, False)}, children)
    assert len(refused.value.children) == 100
    assert refused.value.metadata["children"] == "150"


def test_the_request_log_keeps_a_transcripts_parent_and_reads_older_results():
    now = datetime.now(UTC)
    transcript = Transcript("ns", "t1", "", "", {}, 1, 0, now, now, None, ParentRef("runs", "r"))
    assert transcript_from_json(transcript_to_json(transcript)) == transcript
    older = transcript_to_json(transcript)
    del older["parent"]  # stored before parents existed
    assert transcript_from_json(older).parent is None


def test_an_archived_row_keeps_its_parent_and_older_archives_have_none():
    now = datetime.now(UTC)
    transcript = Transcript("ns", "t1", "", "", {}, 1, 0, now, now, None, ParentRef("runs", "r"))
    row = encode(Kind.TRANSCRIPTS, transcript)
    assert row["parent"] == {"collection": "runs", "id": "r"}
    assert decode(Kind.TRANSCRIPTS, row, "ns", "transcripts:1") == transcript
    del row["parent"]  # an archive made before parents existed
    assert decode(Kind.TRANSCRIPTS, row, "other", "transcripts:1").parent is None
    with pytest.raises(BadArchive):
        decode(Kind.TRANSCRIPTS, {**row, "parent": {"collection": "runs"}}, "ns", "transcripts:1")
