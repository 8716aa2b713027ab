"""Long runs show their progress while they go: the run's page draws each
progress message the API streams (server-sent events) before the result.

That can only be seen while a run is still going when its page opens, so each
run here is made long by what it has to do, not by waiting: export, import and
cleanup by what they move (a namespace of a few thousand records), an integrity
check with verify_blobs by the bytes it reads (a large blob of zeros, which is
stored compressed to almost nothing). An index build of any size is quick, so
it is held by what it must wait for, taken from outside the server (the
database's writer on SQLite, a lock on the records table on PostgreSQL, which
CREATE INDEX CONCURRENTLY waits for), and let go once the page has shown it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from strata import writes
from tests.console.conftest import ConsoleServer, Session, open_session
from tests.console.test_operations import finished

RECORDS = 20000
"""Records of the bulk namespace: each becomes two rows of an export (the
record and its audit entry). Enough that each run outlasts the page's start:
the page draws only what comes after it connects, and with 5,000 an export on a
quiet worker finished before its page did (a fresh-clone CI saw only its last
progress message)."""
RECORD_TEXT = "x" * 1000
ZEROS = 256 * 1024 * 1024
"""Bytes of the blob an integrity check verifies (stored as a few kilobytes)."""

WATCH = """
window.__sse = [];
document.addEventListener("htmx:sseMessage", (event) => {
  const progress = document.querySelector("#progress");
  window.__sse.push({
    type: event.detail.type,
    progress: progress ? progress.innerText.trim() : "",
    result: document.querySelector("#result") !== null,
  });
});
"""
"""Records each server-sent event a page receives: its type, the progress shown
once it is drawn, and whether the result was there yet."""


@dataclass
class Bulk:
    """A namespace of RECORDS records in collection "items"."""

    server: ConsoleServer
    namespace: str


@pytest.fixture(scope="module")
def bulk(console_server: ConsoleServer) -> Bulk:
    namespace = f"bulk{uuid.uuid4().hex[:10]}"
    with console_server.client(namespace) as api:
        for start in range(0, RECORDS, 500):
            api.commit(
                [writes.create("items", {"n": n, "text": RECORD_TEXT})
                 for n in range(start, start + 500)]
            )  # fmt: skip
    return Bulk(console_server, namespace)


OpenSession = Callable[[ConsoleServer, str], Session]


@pytest.fixture
def session_in(browser: object) -> Iterator[OpenSession]:
    """Opens watched sessions (admin, or no auth) in a namespace; closes them after."""
    opened: list[Session] = []

    def open_in(server: ConsoleServer, namespace: str) -> Session:
        session = open_session(browser, server, server.admin_token, namespace)
        session.page.add_init_script(WATCH)
        opened.append(session)
        return session

    yield open_in
    for session in opened:
        session.page.context.close()
    assert all(session.errors == [] for session in opened), [s.errors for s in opened]


def drawn_live(session: Session) -> list[str]:
    """Once the run's result is on its page: the progress its live stream drew
    before the result."""
    assert finished(session) == "done", session.page.locator("#result").inner_text()
    # The page was drawn as a live view: the run was still going when it opened.
    assert session.page.locator("[sse-connect]").count() == 1
    events = session.page.evaluate("window.__sse")
    return [event["progress"] for event in events if event["type"] == "progress"
            and not event["result"] and event["progress"] != "starting…"]  # fmt: skip


def test_export_import_and_cleanup_show_their_progress_live(
    bulk: Bulk, session_in: OpenSession, tmp_path: Path
) -> None:
    source = session_in(bulk.server, bulk.namespace)
    source.go("/operations")
    page = source.page
    page.click("#export")
    shown = drawn_live(source)
    assert len(set(shown)) >= 2, shown  # the page drew the run's progress as it went
    assert all(text.startswith(("rows", "blobs")) for text in shown), shown
    with page.expect_download() as download:
        page.click("#archive")
    archive = tmp_path / "bulk.tar"
    download.value.save_as(archive)

    copy = f"copy{uuid.uuid4().hex[:10]}"
    source.go("/operations")
    page.set_input_files("input[name=archive]", str(archive))
    page.fill("input[name=into]", copy)
    page.click("#import")
    shown = drawn_live(source)
    assert len(set(shown)) >= 2, shown
    assert any(text.startswith("rows") for text in shown), shown
    with bulk.server.client(copy) as api:
        assert api.count_records("items") == RECORDS
        api.set_retention_policy("records", timedelta(seconds=1), "items")

    cleaner = session_in(bulk.server, copy)
    cleaner.go("/operations")
    cleaner.page.wait_for_timeout(1100)  # the copies grow older than the policy
    cleaner.page.click("#cleanup-now")
    shown = drawn_live(cleaner)
    assert len(set(shown)) >= 2, shown
    assert cleaner.page.locator("#cleanup-total").inner_text() == str(RECORDS)
    with bulk.server.client(copy) as api:
        assert api.count_records("items") == 0
    with bulk.server.client(bulk.namespace) as api:
        assert api.count_records("items") == RECORDS  # the source is untouched


def test_an_integrity_check_shows_its_progress_live(
    console_server: ConsoleServer, session_in: OpenSession
) -> None:
    namespace = f"zeros{uuid.uuid4().hex[:10]}"
    chunk = bytes(1024 * 1024)
    with console_server.client(namespace) as api:
        api.upload(_Zeros(ZEROS, chunk), owner="ci", kind="dump", name="zeros.bin")
    session = session_in(console_server, namespace)
    session.go("/operations")
    session.page.check("input[name=verify_blobs]")
    session.page.click("#integrity-check")
    shown = drawn_live(session)
    assert shown and shown[-1].startswith("blobs"), shown  # the last phase reads the blobs
    assert session.page.locator("#findings-count").inner_text() == "0"


class _Zeros:
    """A file of `size` zero bytes, read without holding them."""

    def __init__(self, size: int, chunk: bytes) -> None:
        self.left, self.chunk = size, chunk

    def read(self, size: int = -1) -> bytes:
        take = min(self.left, len(self.chunk) if size < 0 else min(size, len(self.chunk)))
        self.left -= take
        return self.chunk[:take]


@contextlib.contextmanager
def index_builds_held(server: ConsoleServer) -> Iterator[None]:
    """Take what an index build must wait for, from outside the server, until the
    block ends: on SQLite the write lock (a build holds the writer; the server
    waits for it up to its busy timeout, 5 s), on PostgreSQL a SHARE UPDATE
    EXCLUSIVE lock on records (what CREATE INDEX CONCURRENTLY takes)."""
    url = server.process.database_url
    if server.shape == "sqlite":
        held = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            held.execute("BEGIN IMMEDIATE")
            yield
        finally:
            held.close()  # rolls back: nothing was written
        return
    with psycopg.connect(url) as conn:
        conn.execute("LOCK TABLE records IN SHARE UPDATE EXCLUSIVE MODE")
        yield
        conn.rollback()


def test_an_index_build_shows_its_progress_while_it_waits(
    console_server: ConsoleServer, session_in: OpenSession
) -> None:
    namespace = f"index{uuid.uuid4().hex[:10]}"
    # A field no other test indexed: PostgreSQL's index on a field serves every
    # namespace, and declaring one already built returns at once.
    name = f"s{uuid.uuid4().hex[:10]}"
    with console_server.client(namespace) as api:
        api.create_record("orders", {name: "open"})
    session = session_in(console_server, namespace)
    page = session.page
    session.go("/operations")
    page.fill("form[action='/operations/indexes'] input[name=collection]", "orders")
    page.fill("form[action='/operations/indexes'] input[name=field]", f"data.{name}")
    with index_builds_held(console_server):
        page.click("button:has-text('Build index')")
        page.wait_for_function(
            "window.__sse.some((event) => event.type === 'progress')", timeout=4000
        )
        assert page.locator("#progress").inner_text().startswith("building index")
        assert page.locator("#result").count() == 0  # still going: it waits for the lock
    assert finished(session) == "done"
    assert page.locator("#result h2").inner_text() == f"Index on orders.data.{name} ready"
    with console_server.client(namespace) as api:
        assert [index.ready for index in api.list_indexes("orders")] == [True]
