"""The console's small rules, without a browser: how values read, what a form
may say, where sign-in may send the browser, what is previewed inline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from strata import Artifact, InvalidArgument
from strata_server.console.artifact_pages import previewable
from strata_server.console.formats import marked, size, span, when
from strata_server.console.gateway import Failure
from strata_server.console.operation_pages import parse_age
from strata_server.console.record_pages import _position, owned
from strata_server.console.serving import upstream_of
from strata_server.console.view import local_path


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 1024**3, "5.0 GiB")],
)
def test_sizes_read_in_binary_units(value: int, text: str) -> None:
    assert size(value) == text


def test_durations_and_times_read_for_people() -> None:
    assert span(timedelta(seconds=3.25)) == "3.2s"
    assert span(timedelta(minutes=12, seconds=5)) == "12m 5s"
    assert span(timedelta(days=3, hours=4, minutes=1)) == "3d 4h"
    assert when(datetime(2025, 1, 31, 12, 0, 1, tzinfo=UTC)) == "2025-01-31 12:00:01 UTC"
    assert when(None) == ""


@pytest.mark.parametrize(
    ("text", "age"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("90", timedelta(seconds=90)),
     ("1.5w", timedelta(days=10.5))],
)  # fmt: skip
def test_retention_ages_take_a_unit(text: str, age: timedelta) -> None:
    assert parse_age(text) == age


def test_a_retention_age_without_a_number_is_refused_as_bad_input() -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_age("a month")
    assert raised.value.violations == [("max_age", "e.g. 30d, 12h or 90m")]


@pytest.mark.parametrize(
    ("value", "kept"),
    [("/queues/q", "/queues/q"), ("//evil.example/x", "/"), ("https://evil.example", "/"),
     ("/\\evil.example", "/"), ("", "/")],
)  # fmt: skip
def test_sign_in_only_sends_the_browser_to_console_pages(value: str, kept: str) -> None:
    assert local_path(value) == kept


def test_search_snippets_are_escaped_and_only_matches_marked() -> None:
    assert marked("a **<b>** c") == "a <mark>&lt;b&gt;</mark> c"


def test_the_console_in_serve_dials_loopback_when_listening_everywhere() -> None:
    assert upstream_of("0.0.0.0:50051", 50051) == "127.0.0.1:50051"
    assert upstream_of("[::]:0", 4242) == "[::1]:4242"
    assert upstream_of("10.1.2.3:50051", 50051) == "10.1.2.3:50051"


def _artifact(content_type: str) -> Artifact:
    now = datetime.now(UTC)
    return Artifact("ns", "id", "me", "kind", "name", content_type, "0" * 64, 1, 1, "none", {}, now)


@pytest.mark.parametrize(
    ("content_type", "preview"),
    [("image/png", "image"), ("image/svg+xml", ""), ("text/html", "text"),
     ("text/plain; charset=utf-8", "text"), ("application/json", "text"),
     ("application/octet-stream", "")],
)  # fmt: skip
def test_only_images_that_run_nothing_are_shown_inline(content_type: str, preview: str) -> None:
    assert previewable(_artifact(content_type)) == preview


def test_an_owner_is_quoted_into_the_filter_and_a_bad_filter_keeps_its_position() -> None:
    assert owned("", "data.n > 1") == ("data.n > 1", 0)
    sent, shift = owned('b "x" \\', "data.n > 1")
    assert sent == 'owner = "b \\"x\\" \\\\" AND (data.n > 1)'
    assert sent[shift:] == "data.n > 1)"

    def bad(field: str, position: int) -> Failure:
        return Failure("INVALID_ARGUMENT", "", "", {"position": str(position)}, [(field, "")])

    assert _position(bad("filter", shift + 9), shift) == 9
    assert _position(bad("filter", 3), shift) is None  # in the owner's condition
    assert _position(bad("order_by", 4), shift) == 4  # the order is sent as typed
    assert _position(None, shift) is None
