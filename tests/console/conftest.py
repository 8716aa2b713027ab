"""Browser tests of the console: Debian's chromium driven by Playwright, against a
real `strata serve` that serves the console beside gRPC, on both shapes.

`console_server` is the embedded shape without authentication (as `make run`
does) and the production shape (PostgreSQL, Redis, S3) with token auth, whose
pages are seen after signing in, as an admin or as a reader.
`token_console_server` has token auth on both shapes (the embedded one is a
second SQLite server), for what only token auth shows: a reader's pages. One
browser serves every test here; each gets its own context (cookies) in a
namespace of its own. The browser and the servers stop once these tests are
done, not at the end of the suite.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import strata
from tests.support.cli import run_strata
from tests.support.ports import free_port
from tests.support.server import StrataProcess

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "console"
"""Where `STRATA_CONSOLE_SCREENSHOTS=1` has the tests write the docs' screenshots."""


@dataclass
class ConsoleServer:
    """A strata server with its console, and how to reach both."""

    process: StrataProcess
    url: str
    shape: str
    admin_token: str | None
    """None when the server runs without authentication."""
    reader_token: str | None

    def client(self, namespace: str, token: str | None = None) -> strata.Client:
        """An API client (admin unless `token` says otherwise) in `namespace`."""
        return strata.Client(
            self.process.target, namespace=namespace, token=token or self.admin_token
        )


def _create_admin(database_url: str, workdir: Path) -> str:
    done = run_strata(
        ["token", "create", "--name", "console-admin",
         "--role", "admin", "--namespace", "*", "--database-url", database_url],
        env=dict(os.environ), cwd=workdir,
    )  # fmt: skip
    done.check_returncode()
    return done.stdout.strip().splitlines()[-1]


def _wait_for(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/static/console.css", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def _serving(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
    shape: str,
    *,
    tokens: bool,
) -> Iterator[ConsoleServer]:
    """`strata serve` with its console on a free port, on SQLite or on PostgreSQL +
    Redis + S3; with `tokens`, under token auth with an admin and a reader token."""
    port = free_port()
    env = {
        "STRATA_CONSOLE_LISTEN": f"127.0.0.1:{port}",
        "STRATA_CLEANUP_INTERVAL_SECONDS": "3600",
        "STRATA_TRANSCRIPT_HEARTBEAT_SECONDS": "2",
    }
    url = database_url(shape)
    workdir = tmp_path_factory.mktemp(f"console-{shape}")
    if shape == "postgres":
        env["STRATA_REDIS_URL"] = request.getfixturevalue("redis").url
        env.update(request.getfixturevalue("s3").env(f"console-{uuid.uuid4().hex[:12]}"))
    if tokens:
        env["STRATA_AUTH"] = "token"
    process = StrataProcess(url, workdir, **env)
    process.start()
    admin = reader = None
    if tokens:
        admin = _create_admin(url, workdir)
        with strata.Client(process.target, token=admin) as client:
            _, reader = client.create_token("console-reader", "reader", ["*"])
    base = f"http://127.0.0.1:{port}"
    _wait_for(base)
    yield ConsoleServer(process, base, shape, admin, reader)
    # Live views may still be open: the server stops cleanly anyway.
    assert process.stop() == 0, process.log()
    assert "Traceback" not in process.log(), process.log()


@pytest.fixture(scope="package")
def embedded_console(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ConsoleServer]:
    """The embedded shape without authentication, as `make run` serves it."""
    with _serving(request, database_url, tmp_path_factory, "sqlite", tokens=False) as server:
        yield server


@pytest.fixture(scope="package")
def embedded_console_with_tokens(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ConsoleServer]:
    """The embedded shape under `--auth token`."""
    with _serving(request, database_url, tmp_path_factory, "sqlite", tokens=True) as server:
        yield server


@pytest.fixture(scope="package")
def production_console(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ConsoleServer]:
    """The production shape (PostgreSQL, Redis, S3) under `--auth token`."""
    with _serving(request, database_url, tmp_path_factory, "postgres", tokens=True) as server:
        yield server


@pytest.fixture(scope="package", params=["sqlite", "postgres"])
def console_server(request: pytest.FixtureRequest) -> ConsoleServer:
    """Each shape as it is usually run: embedded without auth, production with
    token auth."""
    name = "embedded_console" if request.param == "sqlite" else "production_console"
    server: ConsoleServer = request.getfixturevalue(name)
    return server


@pytest.fixture(scope="package", params=["sqlite", "postgres"])
def token_console_server(request: pytest.FixtureRequest) -> ConsoleServer:
    """Each shape under token auth, with an admin and a reader token."""
    name = "embedded_console_with_tokens" if request.param == "sqlite" else "production_console"
    server: ConsoleServer = request.getfixturevalue(name)
    return server


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    """One headless chromium (Debian's) for these tests, closed after them."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (make system-deps)")
    with playwright_sync.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@dataclass
class Session:
    """A browser context signed in to one console, in one namespace."""

    page: playwright_sync.Page
    server: ConsoleServer
    namespace: str
    errors: list[str]

    def go(self, path: str) -> playwright_sync.Response | None:
        """Open a console page; fails the test on an HTTP error status."""
        response = self.page.goto(f"{self.server.url}{path}")
        assert response is not None and response.ok, (path, response and response.status)
        return response

    def api(self, token: str | None = None) -> strata.Client:
        """An API client in this session's namespace."""
        return self.server.client(self.namespace, token)

    def shot(self, name: str) -> None:
        """A screenshot for the docs, when STRATA_CONSOLE_SCREENSHOTS=1 (embedded shape)."""
        if os.environ.get("STRATA_CONSOLE_SCREENSHOTS") == "1" and self.server.shape == "sqlite":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def open_session(
    browser: object, server: ConsoleServer, token: str | None, namespace: str
) -> Session:
    """A new context in `namespace`, signed in with `token` through the form."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    context.add_cookies([{"name": "strata_namespace", "value": namespace, "url": server.url}])
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    session = Session(page, server, namespace, errors)
    if token is not None:
        page.goto(f"{server.url}/")
        assert "/sign-in" in page.url
        page.fill("input[name=token]", token)
        page.click("button:has-text('Sign in')")
        page.wait_for_url(f"{server.url}/")
    return session


@pytest.fixture
def console(browser: object, console_server: ConsoleServer) -> Iterator[Session]:
    """A signed-in (admin, or no auth) browser session in a fresh namespace."""
    namespace = f"ui{uuid.uuid4().hex[:10]}"
    session = open_session(browser, console_server, console_server.admin_token, namespace)
    yield session
    session.page.context.close()
    assert session.errors == [], session.errors
