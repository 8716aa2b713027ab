"""`strata console --target`: the console alone, as a client of any replica; when
the API cannot be reached, the overview says so in a banner."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.console.conftest import ConsoleServer, _wait_for, open_session
from tests.support.ports import free_port


@contextmanager
def standalone(target: str, workdir: Path) -> Iterator[str]:
    """`strata console --target target` on a free port; yields its URL."""
    port = free_port()
    log = (workdir / "console.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "strata_server", "console", "--target", target,
         "--listen", f"127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for(url)
        yield url
    finally:
        process.terminate()
        assert process.wait(10) == 0
        log.close()


def test_standalone_console_serves_a_replica_and_shows_when_it_is_down(
    browser: object, console_server: ConsoleServer, tmp_path: Path
) -> None:
    if console_server.shape != "postgres":
        pytest.skip("one shape shows it: the standalone console is the same on both")
    with standalone(console_server.process.target, tmp_path) as url:
        session = open_session(
            browser,
            ConsoleServer(console_server.process, url, console_server.shape,
                          console_server.admin_token, None),
            console_server.admin_token,
            "default",
        )  # fmt: skip
        try:
            session.go("/")
            assert session.page.locator(".health li.up").count() >= 2
            assert session.page.locator(".banner.down").count() == 0
        finally:
            session.page.context.close()
        assert session.errors == []

    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens there
    with standalone(nowhere, tmp_path) as url:
        down = ConsoleServer(console_server.process, url, console_server.shape, None, None)
        session = open_session(browser, down, None, "default")
        try:
            session.go("/")
            banner = session.page.locator(".banner.down")
            assert banner.first.inner_text().startswith("API is down")
            assert "Traceback" not in session.page.content()
        finally:
            session.page.context.close()
