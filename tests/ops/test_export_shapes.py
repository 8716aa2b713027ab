"""Archives move between the shapes: SQLite with blobs on disk to PostgreSQL with
Redis and S3, and back, exactly; and the import size limit. These tests start their
own pair of servers (on the session's PostgreSQL, Redis and S3) so that both shapes
are up at once and the limit can be small."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import grpc
import pytest

from strata.v1 import admin_pb2, admin_pb2_grpc
from tests.contract.archive_support import (
    export,
    fill,
    import_,
    import_requests,
    members,
    namespace,
)
from tests.contract.helpers import expect_error
from tests.contract.test_export import assert_same_content, entries_of
from tests.support.redis import RedisServer
from tests.support.s3 import S3Server
from tests.support.server import StrataProcess

LIMIT = 8 << 20


@pytest.fixture(scope="module")
def pair(
    database_url: Callable[[str], str],
    redis: RedisServer,
    s3: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[StrataProcess, StrataProcess]]:
    """(SQLite + disk, PostgreSQL + Redis + S3), both with an 8 MiB import limit."""
    common = {"STRATA_MAX_IMPORT_BYTES": str(LIMIT), "STRATA_CLEANUP_INTERVAL_SECONDS": "3600"}
    embedded = StrataProcess(database_url("sqlite"), tmp_path_factory.mktemp("xsqlite"), **common)
    production = StrataProcess(
        database_url("postgres"),
        tmp_path_factory.mktemp("xpostgres"),
        STRATA_REDIS_URL=redis.url,
        **s3.env(f"strata-{uuid.uuid4().hex[:12]}"),
        **common,
    )
    embedded.start()
    try:
        production.start()
        try:
            yield embedded, production
        finally:
            production.stop()
    finally:
        embedded.stop()


def test_sqlite_to_postgres_and_back_is_exact(pair: tuple[StrataProcess, StrataProcess]) -> None:
    embedded, production = pair
    ns = namespace()
    with embedded.channel() as lite, production.channel() as pg:
        fill(lite, ns)
        first = export(lite, ns)
        assert dict(first.summary.counts)["entries"] == 4
        imported = import_(pg, first.data)  # into the namespace it came from
        assert imported.result.namespace == ns
        assert imported.counts["blobs"].imported == 2  # S3 held neither
        assert imported.result.new_blob_bytes == sum(len(c) for c in _blobs(first.data).values())
        second = export(pg, ns)
        assert_same_content(first.data, second.data)
        assert entries_of(pg, ns, "chat-1") == entries_of(lite, ns, "chat-1")

        back = namespace()
        import_(lite, second.data, back)
        third = export(lite, back)
        assert_same_content(second.data, third.data)
        assert_same_content(first.data, third.data, imports=2)


def _blobs(data: bytes) -> dict[str, bytes]:
    return {name: content for name, content in members(data).items() if name.startswith("blobs/")}


@pytest.mark.parametrize("which", ["sqlite", "postgres"])
def test_an_archive_over_the_limit_is_resource_exhausted(
    pair: tuple[StrataProcess, StrataProcess], which: str
) -> None:
    server = pair[0] if which == "sqlite" else pair[1]
    with server.channel() as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        requests = import_requests(bytes(LIMIT + 1), namespace())
        first = next(requests)
        first.header.size = 0  # undeclared: the limit is counted as bytes arrive

        def undeclared() -> Iterator[admin_pb2.ImportNamespaceRequest]:
            yield first
            yield from requests

        expect_error(
            lambda: list(stub.ImportNamespace(undeclared())),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "TOO_LARGE",
        )
        declared = admin_pb2.ImportNamespaceRequest(
            header=admin_pb2.ImportHeader(namespace=namespace(), size=LIMIT + 1)
        )
        expect_error(
            lambda: list(stub.ImportNamespace(iter([declared]))),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "TOO_LARGE",
            limit=str(LIMIT),
        )
