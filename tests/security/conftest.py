"""Servers run with `--auth token` on both shapes, shared by the security tests.

Each is bootstrapped as an operator would: started, then its first admin token
("root", every namespace) made with `strata token create` against its database.
Tests make the other tokens they need through AdminService, and isolate
themselves with namespaces no other test uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import SHAPES
from tests.security.support import AUTH_ENV, SecureServer, start_secure
from tests.support.server import StrataProcess


@pytest.fixture(scope="session", params=SHAPES)
def secure(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SecureServer]:
    """A `--auth token` server per shape: SQLite with blobs on local disk, or
    PostgreSQL with Redis and blobs in S3."""
    env = {**AUTH_ENV, "STRATA_CLEANUP_INTERVAL_SECONDS": "3600"}
    if request.param == "postgres":
        env["STRATA_REDIS_URL"] = request.getfixturevalue("redis").url
        env.update(request.getfixturevalue("s3").env(f"strata-{uuid.uuid4().hex[:12]}"))
    process = StrataProcess(
        database_url(request.param), tmp_path_factory.mktemp(f"secure-{request.param}"), **env
    )
    server = start_secure(process)
    yield server
    server.close()
    process.stop()
