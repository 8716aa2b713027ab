"""`strata console --target`: the console alone, as a client of any replica; when
the API cannot be reached, the overview says so in a banner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.console.conftest import ConsoleServer, _wait_for, open_session
from tests.support.ports import free_port
from tests.support.proxy import TcpProxy


def test_standalone_console_serves_a_replica_and_shows_when_it_is_down(
    browser: object, console_server: ConsoleServer, tmp_path: Path
) -> None:
    if console_server.shape != "postgres":
        pytest.skip("one shape shows it: the standalone console is the same on both")
    proxy = TcpProxy(console_server.process.port)  # the way to the API, to cut later
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "console.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "strata_server", "console", "--listen",
             f"127.0.0.1:{port}", "--target", f"127.0.0.1:{proxy.port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    standalone = ConsoleServer(
        console_server.process, url, "postgres", console_server.admin_token, None
    )
    try:
        _wait_for(url)
        session = open_session(browser, standalone, console_server.admin_token, "default")
        session.go("/")
        assert session.page.locator(".health li.up").count() >= 3
        assert session.page.locator(".banner.down").count() == 0
        assert session.page.locator("#shape").inner_text() == "production"

        proxy.close()
        session.go("/")
        banner = session.page.locator(".banner.down")
        assert banner.first.inner_text().startswith("API is down")
        assert "Traceback" not in session.page.content()
        session.page.context.close()
        assert session.errors == []
    finally:
        proxy.close()
        process.terminate()
        assert process.wait(10) == 0, (tmp_path / "console.log").read_text()
