"""Operations and artifacts in the browser: cleanup (dry run, then the real run),
integrity check, retention (set and remove), index build, export download,
import with a conflict policy, the audit log's filters, and an artifact's
download and preview."""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from strata import NotFound
from strata.v1 import admin_pb2
from tests.console.conftest import Session


def finished(console: Session) -> str:
    """Wait for the run on the page to end; its result's state ("done" or "failed")."""
    result = console.page.locator("#result")
    result.wait_for(timeout=20_000)
    return result.get_attribute("data-state") or ""


def test_cleanup_dry_run_shows_the_numbers_the_api_returns(console: Session) -> None:
    with console.api() as api:
        for _ in range(3):
            job = api.enqueue("done", {"n": 1})
            (leased,) = api.lease_jobs("done")
            api.ack_job(leased)
        api.set_retention_policy("completed_jobs", timedelta(seconds=1), "done")
    page = console.page
    console.go("/operations")
    assert page.locator("#policies").get_by_text("completed_jobs").count() == 1
    page.wait_for_timeout(1100)  # the jobs grow older than the policy
    page.click("#cleanup-dry-run")
    assert finished(console) == "done"
    with console.api() as api:
        expected = api.run_cleanup(dry_run=True)
    assert expected.total >= 3
    assert page.locator("#cleanup-total").inner_text() == str(expected.total)
    rows = page.locator("#cleanup-steps tr").count() - 1
    assert rows == len(expected.steps)
    with console.api() as api:
        assert api.get_job(job.id).state == "completed"  # a dry run removes nothing
    console.shot("cleanup")


def test_a_real_cleanup_removes_what_its_dry_run_showed(console: Session) -> None:
    with console.api() as api:
        removed = []
        for _ in range(3):
            api.enqueue("done", {"n": 1})
            (leased,) = api.lease_jobs("done")
            removed.append(api.ack_job(leased).id)
        waiting = api.enqueue("done", {"n": 2})  # not completed: no policy takes it
        api.set_retention_policy("completed_jobs", timedelta(seconds=1), "done")
    page = console.page
    console.go("/operations")
    page.wait_for_timeout(1100)  # the jobs grow older than the policy
    page.click("#cleanup-dry-run")
    assert finished(console) == "done"
    assert page.locator("#cleanup-total").inner_text() == "3"
    with console.api() as api:
        assert all(api.get_job(id).state == "completed" for id in removed)
    with page.expect_navigation():  # from the dry run's result to the real run's page
        page.click("#cleanup-now")
    assert finished(console) == "done"
    assert page.locator("#result h2").inner_text() == "Removed 3"
    assert page.locator("#cleanup-steps td.num").first.inner_text() == "3"
    with console.api() as api:
        for id in removed:
            with pytest.raises(NotFound):
                api.get_job(id)
        assert api.get_job(waiting.id).state == "available"
        assert api.run_cleanup(dry_run=True).total == 0


def test_removing_a_retention_policy(console: Session) -> None:
    with console.api() as api:
        api.set_retention_policy("records", timedelta(days=30), "orders")
        api.set_retention_policy("dead_jobs", timedelta(days=7), "mail")
    page = console.page
    console.go("/operations")
    assert page.locator("#policies tr").count() == 3  # header and two policies
    page.locator("#policies tr", has_text="orders").get_by_role("button", name="Remove").click()
    page.wait_for_url("**/operations?done=*")
    assert page.locator(".notice").inner_text() == "retention policy for records removed"
    assert page.locator("#policies tr").count() == 2
    assert page.locator("#policies").get_by_text("orders").count() == 0
    assert page.locator("#policies").get_by_text("mail").count() == 1
    with console.api() as api:
        left = [(policy.target, policy.selector) for policy in api.list_retention_policies()]
    assert left == [(admin_pb2.RETENTION_TARGET_DEAD_JOBS, "mail")]


def audit_filtered(console: Session, **fields: str) -> list[int]:
    """The seq of each audit entry the page lists once its form is filled with
    `fields` and sent."""
    page = console.page
    console.go("/operations/audit")
    form = page.locator("form[action='/operations/audit']")
    for name, value in fields.items():
        form.locator(f"input[name={name}]").fill(value)
    with page.expect_navigation():
        form.get_by_role("button", name="Filter").click()
    for name, value in fields.items():  # the form shows the filters it applied
        assert form.locator(f"input[name={name}]").input_value() == value
    cells = page.locator("#audit td:nth-child(1)").all_inner_texts()
    return [int(text) for text in cells if text.isdigit()]


def test_the_audit_log_filters_by_entity_id_actor_action_and_time(console: Session) -> None:
    with console.api() as api:
        api.create_record("tickets", {"n": 1}, record_id="t-1")
        api.update_record("tickets", "t-1", {"n": 2})
        api.create_record("tickets", {"n": 3}, record_id="t-2")
        api.enqueue("mail", {"n": 1})
    page = console.page
    console.go("/queues/mail")
    page.click("button:has-text('Pause')")  # a change the console makes, as its own actor
    page.wait_for_url("**/queues/mail?done=*")
    with console.api() as api:
        entries = list(api.list_audit_entries())
        (paused,) = [entry for entry in entries if entry.action == "pause"]

        def expected(**filters: object) -> list[int]:
            return [entry.seq for entry in api.list_audit_entries(**filters)]

        everything = [entry.seq for entry in entries]
        assert audit_filtered(console) == everything
        by_id = audit_filtered(console, entity_id="tickets/t-1")
        assert by_id == expected(entity_id="tickets/t-1") and len(by_id) == 2
        assert paused.actor != entries[-1].actor  # the API's writes have an actor of their own
        by_actor = audit_filtered(console, actor=paused.actor)
        assert by_actor == expected(actor=paused.actor) == [paused.seq]
        by_action = audit_filtered(console, action="update")
        assert by_action == expected(action="update") and len(by_action) == 1
        oldest, newest = entries[-1].time.ToDatetime(UTC), entries[0].time.ToDatetime(UTC)
        since = entries[-2].time.ToDatetime(UTC)  # from the second entry on
        in_range = audit_filtered(console, since=since.isoformat(), until=newest.isoformat())
        assert in_range == expected(since=since, until=newest)
        assert 0 < len(in_range) < len(everything)
        assert entries[-1].seq not in in_range and oldest < since
        later = datetime.now(UTC).replace(tzinfo=None)  # no zone: the console takes UTC
        assert audit_filtered(console, since=later.isoformat()) == []


def test_retention_policy_and_index_build_from_the_forms(console: Session) -> None:
    with console.api() as api:
        api.create_record("orders", {"status": "open"})
    page = console.page
    console.go("/operations")
    form = page.locator("#set-policy")
    form.locator("select[name=target]").select_option("records")
    form.locator("input[name=selector]").fill("orders")
    form.locator("input[name=max_age]").fill("30d")
    form.locator("button").click()
    page.wait_for_url("**/operations?done=*")
    with console.api() as api:
        (policy,) = api.list_retention_policies()
    assert policy.selector == "orders" and policy.max_age.ToTimedelta() == timedelta(days=30)
    page.fill("form[action='/operations/indexes'] input[name=collection]", "orders")
    page.fill("form[action='/operations/indexes'] input[name=field]", "data.status")
    page.click("button:has-text('Build index')")
    assert finished(console) == "done"
    with console.api() as api:
        assert [index.field for index in api.list_indexes("orders")] == ["data.status"]
    console.go("/operations")
    page.click("#integrity-check")
    assert finished(console) == "done"
    assert page.locator("#findings-count").inner_text() == "0"


def test_export_downloads_an_archive_and_import_with_fail_is_refused(
    console: Session, tmp_path: Path
) -> None:
    with console.api() as api:
        api.create_record("notes", {"text": "keep me"}, record_id="n-1")
    page = console.page
    console.go("/operations")
    page.click("#export")
    assert finished(console) == "done"
    with page.expect_download() as download:
        page.click("#archive")
    archive = tmp_path / "archive.tar"
    download.value.save_as(archive)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "manifest.json" in names, names

    # The namespace still holds n-1: importing the archive back under "fail" is
    # refused whole with ALREADY_EXISTS.
    console.go("/operations")
    page.set_input_files("input[name=archive]", str(archive))
    page.select_option("select[name=on_conflict]", "fail")
    page.click("#import")
    assert finished(console) == "failed"
    assert page.locator("#result .status").inner_text() == "ALREADY_EXISTS"

    console.go("/operations")
    page.set_input_files("input[name=archive]", str(archive))
    page.select_option("select[name=on_conflict]", "skip")
    page.click("#import")
    assert finished(console) == "done"
    assert page.locator("#import-counts").get_by_text("records").count() == 1


def png(width: int, height: int) -> bytes:
    """A small valid PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x2f\x5b\xd3" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_artifact_download_and_previews(console: Session, tmp_path: Path) -> None:
    text = b"".join(b"log line %d\n" % index for index in range(2000))
    with console.api() as api:
        log = api.upload(io.BytesIO(text), owner="ci", kind="log", name="run.log",
                         content_type="text/plain")  # fmt: skip
        image = api.upload(io.BytesIO(png(40, 20)), owner="ci", kind="image", name="dot.png",
                           content_type="image/png")  # fmt: skip
        page_html = api.upload(io.BytesIO(b"<script>alert(1)</script>"), owner="ci",
                               kind="page", name="x.html", content_type="text/html")  # fmt: skip
    page = console.page
    console.go(f"/artifacts/{log.id}")
    assert page.locator("#artifact-facts").get_by_text(log.sha256).count() == 1
    assert page.locator("#preview-text").inner_text().startswith("log line 0\nlog line 1")
    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / "run.log"
    download.value.save_as(saved)
    assert saved.read_bytes() == text

    console.go(f"/artifacts/{image.id}")
    page.wait_for_function("document.querySelector('#preview-image').naturalWidth === 40")

    console.go(f"/artifacts/{page_html.id}")
    assert page.locator("#preview-text").count() == 1  # shown as text, escaped
    response = page.request.get(f"{console.server.url}/artifacts/{page_html.id}/content?inline=1")
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["content-type"] == "application/octet-stream"
    console.go("/artifacts?kind=image")
    assert page.locator("#artifacts tr").count() == 2
