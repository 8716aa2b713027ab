"""The operator rules in core/ that both adapters share, with no server: which
retention policies are valid, what a transcript's counters say against its
entries, and the blob dedup figure."""

from __future__ import annotations

from datetime import timedelta

import pytest

from strata_server.core.errors import InvalidArgument
from strata_server.core.integrity_findings import TranscriptTally, transcript_problem
from strata_server.core.models import BlobUsage
from strata_server.core.retention_rules import Target, check_policy

DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("target", "selector"),
    [
        (Target.SEALED_TRANSCRIPTS, ""),
        (Target.ARTIFACTS, ""),
        (Target.ARTIFACTS, "log"),
        (Target.ARTIFACTS, "diff-bundle_2"),
    ],
)
def test_transcript_and_artifact_policies(target, selector):
    check_policy(target, selector, DAY)


@pytest.mark.parametrize(
    ("target", "selector"),
    [
        (Target.SEALED_TRANSCRIPTS, "owner"),
        (Target.ARTIFACTS, "9log"),
        (Target.ARTIFACTS, "a b"),
        (Target.ARTIFACTS, "x" * 65),
    ],
)
def test_bad_selectors(target, selector):
    with pytest.raises(InvalidArgument):
        check_policy(target, selector, DAY)


def tally(**fields: int) -> TranscriptTally:
    values = {
        "next_seq": 4,
        "size_bytes": 30,
        "entries": 3,
        "max_seq": 3,
        "total_size": 30,
        "end_offset": 30,
    }
    return TranscriptTally(**{**values, **fields})


def test_agreeing_counters_are_no_problem():
    assert transcript_problem(tally()) is None
    assert (
        transcript_problem(
            tally(next_seq=1, size_bytes=0, entries=0, max_seq=0, total_size=0, end_offset=0)
        )
        is None
    )


@pytest.mark.parametrize(
    "fields", [{"next_seq": 9}, {"next_seq": 2}, {"size_bytes": 0}, {"size_bytes": 99}]
)
def test_counters_off_whole_entries_are_repairable(fields):
    problem, repairable = transcript_problem(tally(**fields)) or ("", False)
    assert repairable and "next_seq=4, size_bytes=30" in problem


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"entries": 2}, "gaps"),
        ({"entries": 2, "next_seq": 9}, "gaps"),
        ({"end_offset": 25}, "offsets"),
    ],
)
def test_entries_not_whole_are_left_to_an_operator(fields, words):
    problem, repairable = transcript_problem(tally(**fields)) or ("", True)
    assert not repairable and words in problem


def test_dedup_savings():
    assert BlobUsage(blobs=2, referenced=300, unique=200, stored=50).dedup_saved == 100
    assert BlobUsage().dedup_saved == 0
