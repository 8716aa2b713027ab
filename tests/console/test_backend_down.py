"""The overview's banner when a backend is down, as the API reports it, under a
production server: Redis stopped (the record cache unavailable), or the S3
endpoint stopped (FindMissingBlobs on the oldest artifact UNAVAILABLE)."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import strata
from tests.console.conftest import ConsoleServer, _wait_for, open_session
from tests.support.ports import free_port
from tests.support.redis import RedisServer
from tests.support.s3 import S3Server
from tests.support.server import StrataProcess

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)


def test_a_stopped_redis_gets_a_banner_and_the_rest_still_shows(
    browser: object, database_url: Callable[[str], str], tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    port = free_port()
    process = StrataProcess(
        database_url("postgres"),
        tmp_path / "strata",
        STRATA_REDIS_URL=redis.url,
        STRATA_CONSOLE_LISTEN=f"127.0.0.1:{port}",
        STRATA_REDIS_TIMEOUT_SECONDS="0.2",
        STRATA_REDIS_CONNECT_TIMEOUT_SECONDS="0.2",
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    server = ConsoleServer(process, url, "postgres", None, None)
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
    port = free_port()
    process = StrataProcess(
        database_url("postgres"),
        tmp_path / "strata",
        STRATA_CONSOLE_LISTEN=f"127.0.0.1:{port}",
        **s3.env("console-outage"),
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    server = ConsoleServer(process, url, "postgres", None, None)
    session = open_session(browser, server, None, "default")
    try:
        _wait_for(url)
        with strata.Client(process.target) as api:
            api.upload(io.BytesIO(b"a log line\n" * 10), owner="ci", kind="log", name="b.log")
            api.create_record("tickets", {"n": 1}, record_id="t-1")
        session.go("/")
        assert session.page.locator(".banner.down").count() == 0
        assert session.page.locator(".health li.up").get_by_text("Blob store").count() == 1
        s3.stop()
        session.go("/")
        banner = session.page.locator(".banner.down")
        assert banner.count() == 1
        assert banner.inner_text().startswith("Blob store (s3) is down")
        assert session.page.locator(".health li.up").get_by_text("Database").count() == 1
        session.go("/records/tickets/t-1")  # records still show
        assert '"n": 1' in session.page.locator("#record-json").inner_text()
    finally:
        session.page.context.close()
        process.stop()
        s3.stop()
    assert session.errors == []
