"""Every console page loads in a real browser, with no console error, on both
shapes, showing what the API holds."""

from __future__ import annotations

import io

import strata
from tests.console.conftest import Session


def seed(console: Session) -> dict[str, str]:
    """Something of every kind in the session's namespace; returns their ids."""
    with console.api() as api:
        api.create_record("tickets", {"title": "Printer on fire", "size": 3}, record_id="t-1")
        api.update_record("tickets", "t-1", {"title": "Printer on fire", "size": 4})
        api.create_record("tickets", {"title": "Coffee machine", "size": 1}, record_id="t-2")
        job = api.enqueue("emails", {"to": "a@example.com"})
        api.create_transcript(transcript_id="chat-1", owner="alice", title="Support chat")
        api.append("chat-1", "Hello, my printer is on fire", role="user")
        api.append("chat-1", "Have you tried turning it off?", role="assistant")
        artifact = api.upload(
            io.BytesIO(b"line one\nline two\n" * 40),
            owner="alice",
            kind="log",
            name="build.log",
            content_type="text/plain",
        )
    return {"job": job.id, "artifact": artifact.id}


def test_every_page_loads(console: Session) -> None:
    ids = seed(console)
    page = console.page

    console.go("/")
    assert page.locator("h1").inner_text() == "Overview"
    assert page.locator("#shape").inner_text() == (
        "embedded" if console.server.shape == "sqlite" else "production"
    )
    assert page.locator(".health li.down").count() == 0
    assert page.locator("figure.chart svg").count() >= 4
    assert page.get_by_text("Records per collection").count() >= 1
    console.shot("overview")

    console.go("/records")
    assert page.locator("#collections").get_by_text("tickets").count() == 1
    console.go("/records/tickets")
    assert page.locator("#count").inner_text() == "2"
    console.shot("records")
    console.go("/records/tickets/t-1")
    assert '"size": 4' in page.locator("#record-json").inner_text()
    assert page.locator("#history tr").count() == 3  # header, create, update
    console.shot("record")

    console.go("/queues")  # listed by ListQueues, never opened in this browser before
    row = page.locator("#queues tr", has=page.get_by_role("link", name="emails", exact=True))
    assert row.count() == 1
    assert row.locator("td.num").first.inner_text() == "1"  # available
    console.shot("queues")
    row.get_by_role("link", name="emails", exact=True).click()
    page.wait_for_url("**/queues/emails")
    assert page.locator("#jobs").get_by_text(ids["job"]).count() == 1
    console.go(f"/queues/emails/jobs/{ids['job']}")
    assert "a@example.com" in page.locator("#payload").inner_text()

    console.go("/transcripts")
    assert page.locator("#transcripts").get_by_text("chat-1").count() == 1
    console.go("/transcripts/chat-1")
    assert page.locator("#entries .entry").count() == 2
    console.shot("transcript")
    console.go("/transcripts?q=printer")
    assert page.locator("#hits mark").count() >= 1

    console.go("/artifacts")
    assert page.locator("#artifacts").get_by_text("build.log").count() == 1
    console.go(f"/artifacts/{ids['artifact']}")
    assert page.locator("#preview-text").inner_text().startswith("line one")
    console.shot("artifact")

    console.go("/operations")
    console.shot("operations")
    console.go("/operations/audit?entity=record")
    assert page.locator("#audit tr").count() == 4  # header, two creates, one update


def test_an_unknown_record_shows_the_status_not_a_traceback(console: Session) -> None:
    response = console.page.goto(f"{console.server.url}/records/tickets/nothing-here")
    assert response is not None and response.status == 404
    failure = console.page.locator(".failure")
    assert failure.locator(".status").inner_text() == "NOT_FOUND"
    assert "Traceback" not in console.page.content()
    console.errors.clear()  # the browser reports the 404 itself


def test_the_api_client_is_what_the_console_uses(console: Session) -> None:
    """A record written through the API is on the page at once (no cache of the
    console's own between them)."""
    with console.api() as api:
        api.create_record("notes", {"text": "first"}, record_id="n-1")
    console.go("/records/notes/n-1")
    assert '"first"' in console.page.locator("#record-json").inner_text()
    with console.api() as api:
        api.update_record("notes", "n-1", {"text": "second"})
    console.go("/records/notes/n-1")
    assert '"second"' in console.page.locator("#record-json").inner_text()
    assert isinstance(console.api(), strata.Client)


def test_a_long_transcript_loads_in_chunks_as_you_scroll(console: Session) -> None:
    with console.api() as api:
        api.create_transcript(transcript_id="long-1", owner="carol")
        for start in range(0, 120, 40):
            api.append_entries("long-1", [f"entry {n}" for n in range(start, start + 40)])
    page = console.page
    console.go("/transcripts/long-1")
    entries = page.locator("#entries .entry")
    assert entries.count() == 50
    page.locator("#entries .loader").scroll_into_view_if_needed()
    page.locator("#entry-100").wait_for()
    page.locator("#entries .loader").scroll_into_view_if_needed()
    page.locator("#entry-120").wait_for()
    assert entries.count() == 120
    assert page.locator("#entries .loader").count() == 0
    seqs = [int(seq) for seq in entries.evaluate_all("(all) => all.map((e) => e.dataset.seq)")]
    assert seqs == list(range(1, 121))


def listed_by_owner(console: Session, path: str, table: str, **fields: str) -> list[str]:
    """The first column of `table` once the list form of `path` is sent with
    `fields` (owner, kind)."""
    page = console.page
    console.go(path)
    form = page.locator(f"form[action='{path}']", has=page.locator("input[name=owner]"))
    for name, value in fields.items():
        form.locator(f"input[name={name}]").fill(value)
    with page.expect_navigation():
        form.get_by_role("button", name="List").click()
    assert form.locator("input[name=owner]").input_value() == fields.get("owner", "")
    return page.locator(f"#{table} tr td:first-child a").all_inner_texts()


def test_transcripts_and_artifacts_list_by_owner(console: Session) -> None:
    with console.api() as api:
        for id, owner in (("a-1", "alice"), ("b-1", "bob"), ("a-2", "alice")):
            api.create_transcript(transcript_id=id, owner=owner)
        for name, owner, kind in (("a.log", "alice", "log"), ("b.log", "bob", "log"),
                                  ("b.png", "bob", "image")):  # fmt: skip
            api.upload(io.BytesIO(name.encode()), owner=owner, kind=kind, name=name)
    assert sorted(listed_by_owner(console, "/transcripts", "transcripts")) == ["a-1", "a-2", "b-1"]
    assert sorted(listed_by_owner(console, "/transcripts", "transcripts", owner="alice")) == [
        "a-1",
        "a-2",
    ]
    console.page.locator("#transcripts").get_by_role("link", name="alice").first.click()
    console.page.wait_for_url("**/transcripts?owner=alice")
    assert console.page.locator("#transcripts tr").count() == 3  # header and alice's two
    assert listed_by_owner(console, "/transcripts", "transcripts", owner="bob") == ["b-1"]
    assert listed_by_owner(console, "/transcripts", "transcripts", owner="carol") == []

    assert sorted(listed_by_owner(console, "/artifacts", "artifacts", owner="bob")) == [
        "b.log",
        "b.png",
    ]
    assert listed_by_owner(console, "/artifacts", "artifacts", owner="bob", kind="log") == ["b.log"]
    assert listed_by_owner(console, "/artifacts", "artifacts", owner="alice") == ["a.log"]
    console.page.locator("#artifacts").get_by_role("link", name="alice").click()
    console.page.wait_for_url("**/artifacts?owner=alice")
    assert console.page.locator("#artifacts tr td:first-child a").all_inner_texts() == ["a.log"]
