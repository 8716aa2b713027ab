"""The overview's banner when a backend is down, as the API reports it, under a
production server: PostgreSQL stopped (the usage query UNAVAILABLE, the API
itself still up), Redis stopped (the record cache unavailable), or the S3
endpoint stopped (FindMissingBlobs on an artifact's blob UNAVAILABLE, seen from
a namespace without artifacts too)."""

from __future__ import annotations

import io
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

import strata
from tests.console.conftest import ConsoleServer, _wait_for, open_session
from tests.support.pg import PgServer
from tests.support.ports import free_port
from tests.support.redis import RedisServer
from tests.support.s3 import S3Server
from tests.support.server import StrataProcess

POOL_WAIT = 30_000
"""Milliseconds a page may take while PostgreSQL is down: the server waits for a
connection (5 s by default) before it answers UNAVAILABLE."""

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)


def _console_on(database: str, workdir: Path, **env: str) -> ConsoleServer:
    """A production server of this test's own (its backends are the ones the test
    stops), serving the console on a free port; started, its console not yet up."""
    port = free_port()
    process = StrataProcess(database, workdir, STRATA_CONSOLE_LISTEN=f"127.0.0.1:{port}", **env)
    process.start()
    return ConsoleServer(process, f"http://127.0.0.1:{port}", "postgres", None, None)


def test_a_stopped_redis_gets_a_banner_and_the_rest_still_shows(
    browser: object, database_url: Callable[[str], str], tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    server = _console_on(
        database_url("postgres"),
        tmp_path / "strata",
        STRATA_REDIS_URL=redis.url,
        STRATA_REDIS_TIMEOUT_SECONDS="0.2",
        STRATA_REDIS_CONNECT_TIMEOUT_SECONDS="0.2",
    )
    process, url = server.process, server.url
    session = open_session(browser, server, None, "default")
    try:
        _wait_for(url)
        with strata.Client(process.target) as api:
            api.create_record("tickets", {"n": 1}, record_id="t-1")
            session.go("/")
            assert session.page.locator(".banner.down").count() == 0
            redis.stop()
            api.get_record("tickets", "t-1")  # served from the database; the cache is down
        session.go("/")
        banner = session.page.locator(".banner.down")
        assert banner.count() == 1
        assert banner.inner_text().startswith("Cache (redis) is down")
        assert session.page.locator("#shape").inner_text() == "production"
        assert session.page.locator(".health li.up").get_by_text("Database").count() == 1
    finally:
        session.page.context.close()
        process.stop()
        redis.kill()
    assert session.errors == []


def test_a_stopped_s3_gets_a_banner_and_the_rest_still_shows(
    browser: object, database_url: Callable[[str], str], tmp_path: Path
) -> None:
    s3 = S3Server(tmp_path / "s3")
    s3.start()
    server = _console_on(database_url("postgres"), tmp_path / "strata", **s3.env("console-outage"))
    process, url = server.process, server.url
    session = open_session(browser, server, None, "default")
    empty = open_session(browser, server, None, "nothing-stored")
    try:
        _wait_for(url)
        with strata.Client(process.target) as api:
            api.upload(io.BytesIO(b"a log line\n" * 10), owner="ci", kind="log", name="b.log")
            api.create_record("tickets", {"n": 1}, record_id="t-1")
        session.go("/")
        assert session.page.locator(".banner.down").count() == 0
        assert session.page.locator(".health li.up").get_by_text("Blob store").count() == 1
        empty.go("/")  # no artifact here: the probe asks for the blob of one elsewhere
        assert empty.page.locator(".health li.up").get_by_text("Blob store").count() == 1
        s3.stop()
        for seen in (session, empty):
            seen.go("/")
            banner = seen.page.locator(".banner.down")
            assert banner.count() == 1
            assert banner.inner_text().startswith("Blob store (s3) is down")
            assert seen.page.locator(".health li.up").get_by_text("Database").count() == 1
        session.go("/records/tickets/t-1")  # records still show
        assert '"n": 1' in session.page.locator("#record-json").inner_text()
    finally:
        session.page.context.close()
        empty.page.context.close()
        process.stop()
        s3.stop()
    assert session.errors == [] and empty.errors == []


def test_a_stopped_postgresql_gets_a_banner_and_the_api_still_answers(
    browser: object, redis: RedisServer, s3: S3Server, tmp_path: Path
) -> None:
    pg = PgServer(tmp_path / "pg")  # of its own: stopping it disturbs no other test
    pg.start()
    server = _console_on(
        pg.create_database("console_down"),
        tmp_path / "strata",
        STRATA_REDIS_URL=redis.url,
        **s3.env(f"console-pg-{uuid.uuid4().hex[:12]}"),
    )
    process, url = server.process, server.url
    session = open_session(browser, server, None, "default")
    later = open_session(browser, server, None, "first-seen-while-down")
    try:
        _wait_for(url)
        with strata.Client(process.target) as api:
            api.create_record("tickets", {"n": 1}, record_id="t-1")
        session.go("/")
        assert session.page.locator(".banner.down").count() == 0
        assert session.page.locator(".health li.up").get_by_text("Database").count() == 1
        pg.stop()
        # The same view again, and one whose role the console has yet to learn
        # (the API answers that probe UNAVAILABLE too: the API is up, not down).
        for seen in (session, later):  # each waits once for the server's database pool
            response = seen.page.goto(f"{url}/", timeout=POOL_WAIT)
            assert response is not None and response.status == 200
            banner = seen.page.locator(".banner.down")
            assert banner.count() == 1, banner.all_inner_texts()
            assert banner.inner_text().startswith("Database is down")
            assert "PostgreSQL" in banner.inner_text()
            health = seen.page.locator(".health")
            assert health.locator("li.up").get_by_text("API").count() == 1
            assert health.locator("li.down").get_by_text("Database").count() == 1
            assert health.locator("li.unknown").get_by_text("Blob store").count() == 1
            failure = seen.page.locator(".failure").last
            assert failure.locator(".status").inner_text() == "UNAVAILABLE"
            assert failure.locator(".reason").inner_text() == "BACKEND_UNAVAILABLE"
        response = session.page.goto(f"{url}/records/tickets/t-1", timeout=POOL_WAIT)
        assert response is not None and response.status == 503
        assert session.page.locator(".failure .status").inner_text() == "UNAVAILABLE"
        assert "Traceback" not in session.page.content()
        session.errors.clear()  # the browser reports the 503 itself
    finally:
        session.page.context.close()
        later.page.context.close()
        process.stop()
        pg.cleanup()
    assert session.errors == [] and later.errors == []
