"""The Node client's own suite (clients/typescript/test, Node's built-in runner),
run by pytest so that `make test` and CI cover it.

The suite runs against the session's real `strata serve` of each shape (SQLite +
disk, PostgreSQL + Redis + S3), and starts servers of its own (from the same
command, on a fresh database of the shape, blobs on the session's S3 endpoint when
asked) for what needs a restart, settings of their own or a disturbed backend: a
Redis of the test's own stopped, a lock held by another process, a blob damaged.
Its TLS and token tests run against servers started here with `--tls-cert`/
`--tls-key` and `--auth token`, or `--tls-client-ca`, with certificates from test
authorities (trustme). Its unit tests (what a real server cannot show: statuses it
never sends, the headers the client sends, against a stand-in http2 server) need
no Strata server and run once. On failure the assertion shows Node's report.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import SHAPES
from tests.security.support import AUTH_ENV, cli_token
from tests.support.server import ROOT, StrataProcess
from tests.support.tls import Authority, shape_server_factory

NODE_DIR = ROOT / "clients" / "typescript"
BUILT = NODE_DIR / "build" / "test"
UNIT = "unit.test.js"
SECURED = ("tls.test.js", "access.test.js")
"""The files that need the secured servers (`secured_servers`) instead of `server`."""


@pytest.fixture(scope="session")
def node_suite() -> Path:
    """The compiled package and tests (`make ts-build`: npm ci, then tsc, when stale).
    One pytest-xdist worker at a time: two builds at once would delete each other's
    output."""
    name = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    with (Path(tempfile.gettempdir()) / f"strata-ts-build-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["make", "-s", "ts-build"], cwd=ROOT, check=True, timeout=600)
    return BUILT


def run_node(files: list[Path], env: dict[str, str]) -> None:
    """`node --test` over `files`; fails with the runner's report unless all pass.

    --expose-gc lets the 100 MB round trip sample memory after a collection;
    one file at a time, as the box has two cores shared with the server."""
    command = [
        "node",
        "--expose-gc",
        "--test",
        "--test-reporter=spec",
        "--test-concurrency=1",
        "--test-timeout=180000",
        *(str(path) for path in files),
    ]
    result = subprocess.run(
        command,
        cwd=NODE_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"node --test exited {result.returncode}:\n{report[-30000:]}"


def test_node_unit(node_suite: Path) -> None:
    """Error details, retries, metadata, deadlines and TLS, against a stand-in server."""
    run_node([node_suite / UNIT], {})


HALVES = 2
"""The shape's files are run as this many pytest items (every other file in name
order), so that pytest-xdist's two workers can share one shape's minute of Node."""


@pytest.mark.parametrize("half", range(HALVES))
def test_node_client(
    node_suite: Path,
    server: StrataProcess,
    shape: str,
    database_url: Callable[[str], str],
    request: pytest.FixtureRequest,
    half: int,
) -> None:
    """Every client method, error reason (faults.test.ts provokes the ones only a
    disturbed server shows), follow/watch resume across a restart, a killed
    worker, a 100 MB round trip and the README example, on this shape."""
    every = sorted(
        path for path in node_suite.glob("*.test.js") if path.name not in (UNIT, *SECURED)
    )
    assert len(every) >= 10, f"compiled tests missing from {node_suite}"
    files = every[half::HALVES]
    env = {
        "STRATA_TARGET": server.target,
        "STRATA_SHAPE": shape,
        "STRATA_OWN_DATABASE_URL": database_url(shape),
        "STRATA_SERVER_COMMAND": json.dumps([sys.executable, "-m", "strata_server", "serve"]),
    }
    if shape == "postgres":
        # The tests' own servers of this shape keep blobs on this S3 endpoint, each in
        # a bucket of its own (clients/typescript/test/support/server.ts).
        s3 = request.getfixturevalue("s3").env("unused")
        env["STRATA_OWN_S3"] = json.dumps({k: v for k, v in s3.items() if k != "STRATA_S3_BUCKET"})
    run_node(files, env)


@pytest.fixture(scope="module", params=SHAPES)
def secured_servers(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    """Two servers of one shape and what the Node tests need to reach them, as env
    (clients/typescript/test/support/secure.ts): one with TLS and `--auth token`
    whose first admin token is made with `strata token create`, as an operator
    bootstraps one; one that requires a client certificate (mTLS). A second
    authority signs a client certificate neither server trusts."""
    workdir = tmp_path_factory.mktemp("node-secured")
    trusted, other = Authority(workdir / "pki", "trusted"), Authority(workdir / "pki", "other")
    server, client = trusted.server(), trusted.client("node", "strata", "tests")
    forged = other.client("node", "strata", "tests")
    make = shape_server_factory(request, database_url, workdir)
    tls = {"STRATA_TLS_CERT": str(server.cert), "STRATA_TLS_KEY": str(server.key)}
    token_server = make("tls", **AUTH_ENV, **tls)
    mtls_server = make("mtls", STRATA_TLS_CLIENT_CA=str(trusted.ca_file), **tls)
    started: list[StrataProcess] = []
    try:
        for process in (token_server, mtls_server):
            process.start()
            started.append(process)
        root = cli_token(token_server.database_url, "root", "admin", "*")
        yield {
            "STRATA_SHAPE": request.param,
            "STRATA_TLS_TARGET": token_server.target,
            "STRATA_MTLS_TARGET": mtls_server.target,
            "STRATA_ROOT_TOKEN": root,
            "STRATA_TLS_CA": str(trusted.ca_file),
            "STRATA_TLS_OTHER_CA": str(other.ca_file),
            "STRATA_TLS_CLIENT_CERT": str(client.cert),
            "STRATA_TLS_CLIENT_KEY": str(client.key),
            "STRATA_TLS_FORGED_CERT": str(forged.cert),
            "STRATA_TLS_FORGED_KEY": str(forged.key),
        }
    finally:
        for process in started:
            process.stop()


def test_node_client_secured(node_suite: Path, secured_servers: dict[str, str]) -> None:
    """TLS with a private CA, mTLS, and token auth over TLS, on this shape: who gets
    in, and the error a client that does not match the server sees; the token and
    quota calls of AdminService."""
    run_node([node_suite / name for name in SECURED], secured_servers)
