"""The console's actions, end to end in the browser: each goes through the API and
the page shows the new state (or the API's refusal)."""

from __future__ import annotations

import time

from tests.console.conftest import ConsoleServer, Session, open_session


def dead_job(console: Session, queue: str) -> str:
    """A job of `queue` that failed its only attempt."""
    with console.api() as api:
        job = api.enqueue(queue, {"n": 1}, max_attempts=1)
        (leased,) = api.lease_jobs(queue)
        api.fail_job(leased, "boom: the printer is still on fire")
    return job.id


def test_pause_and_resume_a_queue(console: Session) -> None:
    with console.api() as api:
        api.enqueue("reports", {"month": "2025-01"})
    page = console.page
    console.go("/queues/reports")
    assert page.locator("#queue-state").inner_text() == "running"
    page.click("button:has-text('Pause')")
    page.wait_for_url("**/queues/reports?done=*")
    assert page.locator("#queue-state").inner_text() == "paused"
    with console.api() as api:
        assert api.queue_stats("reports").paused
    page.click("button:has-text('Resume')")
    page.wait_for_url("**/queues/reports?done=*")
    assert page.locator("#queue-state").inner_text() == "running"
    with console.api() as api:
        assert not api.queue_stats("reports").paused


def test_retry_a_dead_job_and_cancel_one(console: Session) -> None:
    id = dead_job(console, "mail")
    page = console.page
    console.go("/queues/mail?state=dead")
    page.click(f"a:has-text('{id}')")
    assert page.locator("#job-state").inner_text() == "dead"
    assert "printer is still on fire" in page.locator("#last-error").inner_text()
    page.click("button:has-text('Retry')")
    page.wait_for_url("**?done=*")
    assert page.locator("#job-state").inner_text() == "available"
    with console.api() as api:
        assert api.get_job(id).state == "available"
    page.click("button:has-text('Cancel')")
    page.wait_for_url("**?done=*")
    assert page.locator("#job-state").inner_text() == "cancelled"
    with console.api() as api:
        assert api.get_job(id).state == "cancelled"


def test_the_throughput_chart_counts_the_jobs_acked_in_the_last_hour(console: Session) -> None:
    with console.api() as api:
        api.batch_enqueue("reports", [{"n": n} for n in range(6)])
        api.batch_enqueue("mail", [{"n": n} for n in range(3)])
        api.ack_jobs(api.lease_jobs("reports", 4))  # four acked in one call
        (one,) = api.lease_jobs("mail")
        api.ack_job(one)  # and one alone
        (failed,) = api.lease_jobs("mail")
        api.fail_job(failed, "not an ack")
    page = console.page
    console.go("/queues")
    chart = page.locator("figure.chart", has_text="Jobs acked per 5 minutes")
    labels = chart.locator("text.bar-label").all_text_contents()
    values = chart.locator("text.bar-value").all_text_contents()
    assert len(labels) == len(values) == 12
    assert labels[0] == "5-0 min ago" and labels[-1] == "60-55 min ago"
    assert values == ["5"] + ["0"] * 11


def test_a_bad_filter_shows_the_error_at_its_position(console: Session) -> None:
    with console.api() as api:
        for index in range(30):
            api.create_record("items", {"rank": index, "kind": "odd" if index % 2 else "even"})
    page = console.page
    console.go("/records/items")
    page.fill("input[name=filter]", 'data.kind = "odd" AND AND')
    page.click("button:has-text('Apply')")
    page.locator(".failure").wait_for()
    assert page.locator(".failure .status").inner_text() == "INVALID_ARGUMENT"
    caret = page.locator("#parse-error").inner_text().splitlines()[1]
    assert caret.index("^") == len('data.kind = "odd" AND ')
    console.errors.clear()  # the browser reports the 400 of the htmx request

    page.fill("input[name=filter]", 'data.kind = "odd"')
    page.fill("input[name=order_by]", "data.rank desc")
    page.click("button:has-text('Apply')")
    page.locator("#count").wait_for()
    assert page.locator("#count").inner_text() == "15"
    first_page = page.locator("#records td:nth-child(4)").all_inner_texts()
    assert len(first_page) == 15 and '"rank": 29' in first_page[0]
    with console.api() as api:
        for index in range(30, 60):
            api.create_record("items", {"rank": index, "kind": "odd"})
    console.go("/records/items?filter=data.kind%20%3D%20%22odd%22&order_by=data.rank")
    assert page.locator("#records tr").count() == 26  # header + a page of 25
    page.click("#next-page")
    page.wait_for_url("**page=*")
    ranks = page.locator("#records td:nth-child(4)").all_inner_texts()
    assert '"rank": 40' in ranks[0], ranks[0]  # 15 odd ones below 30, then 30..39


def test_deleting_a_record_that_changed_shows_the_version_conflict(console: Session) -> None:
    with console.api() as api:
        api.create_record("docs", {"v": 1}, record_id="d-1")
    page = console.page
    console.go("/records/docs/d-1")
    with console.api() as api:
        api.update_record("docs", "d-1", {"v": 2})  # someone else writes meanwhile
    page.click("#delete-record")
    failure = page.locator(".failure")
    assert failure.locator(".status").inner_text() == "ABORTED"
    assert failure.locator(".reason").inner_text() == "VERSION_CONFLICT"
    assert "current_version" in failure.locator("dl.meta").inner_text()
    assert "2" in failure.locator("dl.meta dd").all_inner_texts()
    console.errors.clear()  # the browser reports the 409 itself
    with console.api() as api:
        assert api.get_record("docs", "d-1").version == 2
    console.go("/records/docs/d-1")
    page.click("#delete-record")
    page.wait_for_url("**/records/docs?done=*")
    assert page.locator("#count").inner_text() == "0"


def test_a_live_transcript_shows_an_appended_entry_within_a_second(console: Session) -> None:
    with console.api() as api:
        api.create_transcript(transcript_id="live-1", owner="bob")
        api.append("live-1", "first words", role="user")
    page = console.page
    console.go("/transcripts/live-1")
    assert page.locator("#entries .entry").count() == 1
    time.sleep(0.3)  # the event stream connects
    with console.api() as api:
        api.append("live-1", "appended while watching", role="assistant")
        appended = time.monotonic()
    page.locator("#live .entry").get_by_text("appended while watching").wait_for(timeout=1000)
    assert time.monotonic() - appended < 1.0
    with console.api() as api:
        api.seal_transcript("live-1")
    page.get_by_text("sealed: no more entries").wait_for()


def test_a_reader_sees_no_write_controls_and_a_forged_post_is_refused(
    browser: object, token_console_server: ConsoleServer
) -> None:
    console_server = token_console_server
    assert console_server.reader_token is not None
    namespace = "uireader"
    with console_server.client(namespace) as api:
        api.enqueue("audits", {"n": 1})
        job = api.enqueue("audits", {"n": 2})
    reader = open_session(browser, console_server, console_server.reader_token, namespace)
    page = reader.page
    try:
        for path in ("/", "/records", "/records/tickets", "/transcripts", "/artifacts"):
            reader.go(path)  # every page loads for a reader, showing what it may see
        assert page.locator(".role").inner_text() == "reader"
        reader.go("/queues")  # ListQueues is a read: a reader sees every queue
        assert page.locator("#queues").get_by_role("link", name="audits", exact=True).count() == 1
        reader.go("/queues/audits")
        assert page.locator(".role").inner_text() == "reader"
        assert page.locator("button:has-text('Pause')").count() == 0
        reader.go(f"/queues/audits/jobs/{job.id}")
        assert page.locator("button:has-text('Cancel')").count() == 0
        reader.go("/operations")
        assert page.locator("form[action='/operations/cleanup']").count() == 0
        # The same post a writer's Cancel button sends, forged from the page: the
        # console sends it with the reader's token and the API refuses it.
        response = page.request.post(
            f"{console_server.url}/queues/audits/jobs/{job.id}/cancel",
            headers={"origin": console_server.url},
        )
        assert response.status == 403
        assert "PERMISSION_DENIED" in response.text()
        assert "ROLE_REQUIRED" in response.text()
        with console_server.client(namespace) as api:
            assert api.get_job(job.id).state == "available"
        # A post from another site is refused before any call.
        response = page.request.post(
            f"{console_server.url}/queues/audits/pause",
            headers={"origin": "http://evil.example"},
        )
        assert response.status == 403
        assert reader.errors == []
    finally:
        page.context.close()
