"""The Node client's own suite (clients/typescript/test, Node's built-in runner),
run by pytest so that `make test` and CI cover it.

The suite runs against the session's real `strata serve` of each shape (SQLite +
disk, PostgreSQL + Redis + S3), and starts servers of its own (from the same
command, on a fresh database of the shape) for what needs a restart. Its unit
tests (error decoding, retries, metadata, TLS against a stand-in http2 server)
need no Strata server and run once. On failure the assertion shows Node's report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.server import ROOT, StrataProcess

NODE_DIR = ROOT / "clients" / "typescript"
BUILT = NODE_DIR / "build" / "test"
UNIT = "unit.test.js"


@pytest.fixture(scope="session")
def node_suite() -> Path:
    """The compiled package and tests (`make ts-build`: npm ci, then tsc, when stale)."""
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


def test_node_client(
    node_suite: Path,
    server: StrataProcess,
    shape: str,
    database_url: Callable[[str], str],
) -> None:
    """Every client method, error reason, follow/watch resume across a restart, a
    killed worker, a 100 MB round trip and the README example, on this shape."""
    files = sorted(path for path in node_suite.glob("*.test.js") if path.name != UNIT)
    assert len(files) >= 10, f"compiled tests missing from {node_suite}"
    run_node(
        files,
        {
            "STRATA_TARGET": server.target,
            "STRATA_SHAPE": shape,
            "STRATA_OWN_DATABASE_URL": database_url(shape),
            "STRATA_SERVER_COMMAND": json.dumps([sys.executable, "-m", "strata_server", "serve"]),
        },
    )
