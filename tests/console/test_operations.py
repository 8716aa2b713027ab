"""Operations and artifacts in the browser: cleanup dry run, integrity check,
retention, index build, export download, import with a conflict policy, and an
artifact's download and preview."""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from datetime import timedelta
from pathlib import Path

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
