"""The data lifecycle (issue 22) where an operator looks, in a real browser on both
shapes: records' owners (column and filter) and children, a transcript's tier and
its Restore, parent links, the search across kinds, and the last cleanup pass and
integrity result on the operations page."""

from __future__ import annotations

import io
import time
import uuid
from datetime import timedelta

from tests.console.conftest import ConsoleServer, Session, open_session


def test_record_owners_are_listed_and_filtered(console: Session) -> None:
    with console.api() as api:
        api.create_record("tickets", {"n": 1}, record_id="a-1", owner="ada")
        api.create_record("tickets", {"n": 2}, record_id="a-2", owner="ada")
        api.create_record("tickets", {"n": 3}, record_id="b-1", owner='bob "the" builder')
        api.create_record("tickets", {"n": 4}, record_id="none")
    page = console.page
    console.go("/records/tickets")
    assert page.locator("#count").inner_text() == "4"
    owners = page.locator("#records td.owner").all_inner_texts()
    assert sorted(owners) == ["", "ada", "ada", 'bob "the" builder']

    page.fill("input[name=owner]", 'bob "the" builder')
    page.click("button:has-text('Apply')")
    page.wait_for_url("**owner=*")
    assert page.locator("#count").inner_text() == "1"
    assert page.locator("#records td a.mono").all_inner_texts() == ["b-1"]

    console.go("/records/tickets?owner=ada&filter=data.n%20%3E%201")
    assert page.locator("#records td a.mono").all_inner_texts() == ["a-2"]
    # a bad filter beside an owner: the caret still points into what was typed
    bad = "/records/tickets?owner=ada&filter=data.n%20%3E%20AND"
    response = page.goto(f"{console.server.url}{bad}")
    assert response is not None and response.status == 400
    caret = page.locator("#parse-error").inner_text().splitlines()[1]
    assert caret.index("^") == len("data.n > ")
    console.errors.clear()  # the browser reports the 400 itself

    console.go("/records/tickets/a-1")
    assert page.locator("#record-owner").inner_text() == "ada"
    page.locator("#record-owner a").click()
    page.wait_for_url("**/records/tickets?owner=ada")
    assert page.locator("#count").inner_text() == "2"


def test_a_record_page_lists_its_children_and_a_delete_refuses_then_cascades(
    console: Session,
) -> None:
    parent = ("runs", "run-1")
    with console.api() as api:
        api.create_record("runs", {"state": "done"}, record_id="run-1")
        api.create_record("runs", {"state": "alone"}, record_id="run-2")
        api.create_transcript(transcript_id="run-1-chat", owner="ada", parent=parent)
        api.create_transcript(transcript_id="other-chat", owner="ada")
        artifact = api.upload(
            io.BytesIO(b"log line\n"), owner="ada", kind="log", name="run.log", parent=parent
        )
    page = console.page
    console.go("/records/runs/run-1")
    assert page.locator("#child-transcripts td a").all_inner_texts() == ["run-1-chat"]
    assert page.locator("#child-artifacts td a").all_inner_texts() == ["run.log"]

    page.locator("#child-transcripts td a").click()
    page.wait_for_url("**/transcripts/run-1-chat")
    assert page.locator("#transcript-parent").inner_text() == "runs/run-1"
    console.go(f"/artifacts/{artifact.id}")
    assert page.locator("#artifact-parent").inner_text() == "runs/run-1"
    page.locator("#artifact-parent a").click()
    page.wait_for_url("**/records/runs/run-1")

    page.click("#delete-record")  # without its children: refused, nothing deleted
    failure = page.locator(".failure")
    assert failure.locator(".status").inner_text() == "FAILED_PRECONDITION"
    assert failure.locator(".reason").inner_text() == "HAS_CHILDREN"
    console.errors.clear()  # the browser reports the 409 itself
    with console.api() as api:
        assert api.get_record("runs", "run-1").version == 1

    console.go("/records/runs/run-1")
    page.check("#cascade")
    page.click("#delete-record")
    page.wait_for_url("**/records/runs?done=*")
    assert page.locator("#records td a.mono").all_inner_texts() == ["run-2"]
    with console.api() as api:
        assert [t.id for t in api.list_transcripts()] == ["other-chat"]
        assert list(api.list_artifacts()) == []
    console.go("/records/runs/run-2")  # no child: no cascade box, empty lists
    assert page.locator("#cascade").count() == 0
    assert page.locator("#child-transcripts").get_by_text("no transcript").count() == 1


def test_an_archived_transcript_shows_its_tier_and_restores(console: Session) -> None:
    with console.api() as api:
        api.create_transcript(transcript_id="old-chat", owner="ada")
        api.append("old-chat", "first words", role="user")
        api.append("old-chat", "second words", role="assistant")
        api.seal_transcript("old-chat")
    page = console.page
    console.go("/transcripts/old-chat")
    assert page.locator("#transcript-tier").inner_text() == "hot"
    assert page.locator("#restore-transcript").count() == 0

    with console.api() as api:
        api.set_retention_policy("archive_transcripts", timedelta(seconds=1))
        time.sleep(1.2)
        api.run_cleanup()
        assert api.get_transcript("old-chat").archived
    console.go("/")
    assert page.locator("#transcript-tiers").inner_text() == "0 hot, 1 archived"
    assert page.get_by_text("Transcript bytes per tier").count() == 1
    owners = page.locator("table.grid tr", has=page.get_by_role("cell", name="ada", exact=True))
    assert owners.locator("td").nth(2).inner_text() == "1"  # transcripts, after records
    console.go("/transcripts")
    row = page.locator("#transcripts tr", has=page.get_by_role("link", name="old-chat"))
    assert "archived" in row.inner_text()
    console.go("/transcripts/old-chat")
    assert page.locator("#transcript-tier").inner_text() == "archived"
    assert page.locator("#entries .entry").count() == 2  # read from the archive alike
    page.click("#restore-transcript")
    page.wait_for_url("**/transcripts/old-chat?done=*")
    assert page.locator("#transcript-tier").inner_text() == "hot"
    assert page.locator("#restore-transcript").count() == 0
    assert page.locator("#entries .entry").count() == 2
    with console.api() as api:
        assert not api.get_transcript("old-chat").archived


def test_the_search_page_ranks_hits_of_every_kind_and_links_each(console: Session) -> None:
    word = f"zq{uuid.uuid4().hex[:8]}"
    with console.api() as api:
        api.create_record("notes", {"text": f"the {word} note"}, record_id="n-1", owner="ada")
        api.create_transcript(transcript_id="chat-9", owner="ada")
        api.append("chat-9", f"about {word} again", role="user")
        artifact = api.upload(
            io.BytesIO(f"a log about {word}\n".encode()),
            owner="bob",
            kind="log",
            name=f"{word}.log",
            content_type="text/plain",
        )
        deadline = time.monotonic() + 15  # the text of a text artifact is indexed after upload
        while {hit.kind for hit in api.search(word)} != {
            "record", "transcript_entry", "artifact", "artifact_text"
        }:  # fmt: skip
            assert time.monotonic() < deadline, "the text artifact was not indexed"
            time.sleep(0.1)
    page = console.page
    console.go("/")
    page.get_by_role("link", name="Search", exact=True).click()
    page.wait_for_url("**/search")
    page.fill("input[name=q]", word)
    page.click("#search-form button")
    page.wait_for_url(f"**/search?q={word}*")
    rows = page.locator("#search-hits tr.hit")
    assert rows.count() == 4
    kinds = {row.get_attribute("class") for row in rows.all()}
    assert kinds == {
        "hit hit-record", "hit hit-transcript_entry", "hit hit-artifact", "hit hit-artifact_text"
    }  # fmt: skip
    assert page.locator("#search-hits mark").first.inner_text() == word
    console.shot("search")
    anchors = page.locator("#search-hits td a").all()
    links = {a.inner_text(): a.get_attribute("href") for a in anchors}
    assert links["notes/n-1"] == "/records/notes/n-1"
    assert links["chat-9 #1"] == "/transcripts/chat-9#entry-1"
    assert links[f"{word}.log"] == f"/artifacts/{artifact.id}"

    page.check("input[name=kind][value=record]")
    page.click("#search-form button")
    page.wait_for_url("**kind=record*")
    assert page.locator("#search-hits tr.hit").count() == 1
    page.locator("#search-hits td a").click()
    page.wait_for_url("**/records/notes/n-1")

    console.go(f"/search?q={word}&owner=bob")
    assert page.locator("#search-hits tr.hit").count() == 2  # the artifact, twice over
    console.go("/search?q=nothingholdsthisword")
    assert page.locator("#search-hits").get_by_text("nothing holds every word").count() == 1
    response = page.goto(f"{console.server.url}/search?q={word}&collections=bad%20name!")
    assert response is not None and response.status == 400
    assert page.locator(".failure .status").inner_text() == "INVALID_ARGUMENT"
    console.errors.clear()  # the browser reports the 400 itself


def test_operations_show_the_last_cleanup_pass_and_integrity_result(console: Session) -> None:
    page = console.page
    console.go("/operations")
    assert "No integrity check of this namespace" in page.locator("#integrity-result").inner_text()
    with console.api() as api:
        api.create_record("things", {"a": 1})
        report = api.check_integrity()
        status = api.cleanup_status()
    assert not report.findings
    console.go("/operations")
    assert page.locator("#integrity-result").inner_text() == "no finding"
    shown = page.locator("#integrity-status dt").all_inner_texts()
    assert report.checked and all(count.check in shown for count in report.checked)
    last = page.locator("#cleanup-last").inner_text()
    if status.HasField("last"):
        assert status.last.replica in last
    else:
        assert last == "No scheduled pass has finished yet."


def test_a_reader_sees_tiers_children_and_search_but_no_restore_or_delete(
    browser: object, token_console_server: ConsoleServer
) -> None:
    server = token_console_server
    assert server.reader_token is not None
    namespace = f"uilife{uuid.uuid4().hex[:8]}"
    with server.client(namespace) as api:
        api.create_record("runs", {"note": "kept quietly"}, record_id="r-1", owner="ada")
        api.create_transcript(transcript_id="kept", parent=("runs", "r-1"))
        api.append("kept", "quietly kept words")
        api.seal_transcript("kept")
        api.set_retention_policy("archive_transcripts", timedelta(seconds=1))
        time.sleep(1.2)
        api.run_cleanup()
    reader = open_session(browser, server, server.reader_token, namespace)
    page = reader.page
    try:
        reader.go("/transcripts/kept")
        assert page.locator("#transcript-tier").inner_text() == "archived"
        assert page.locator("#restore-transcript").count() == 0
        # The post the admin's Restore button sends: the API decides (a writer's call).
        response = page.request.post(
            f"{server.url}/transcripts/kept/restore", headers={"origin": server.url}
        )
        assert response.status == 403 and "ROLE_REQUIRED" in response.text()
        reader.go("/records/runs/r-1")
        assert page.locator("#record-owner").inner_text() == "ada"
        assert page.locator("#child-transcripts td a").all_inner_texts() == ["kept"]
        assert page.locator("#delete-record").count() == 0
        reader.go("/search?q=quietly")  # Search is a reader's call
        assert page.locator("#search-hits tr.hit").count() == 2  # the record and the entry
        reader.go("/operations")
        assert page.locator("#cleanup-status").count() == 0
        assert reader.errors == []
    finally:
        page.context.close()
    with server.client(namespace) as api:
        assert api.get_transcript("kept").archived
