"""PostgreSQL going away and coming back: UNAVAILABLE while it is down, service again
after it returns (same server process), and a clear refusal to start without it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from strata.v1 import admin_pb2, records_pb2
from tests.contract.helpers import (
    CALLER_FAULT_CODES,
    commit,
    count,
    create,
    create_write,
    expect_error,
    get,
    list_page,
    stubs_over,
)
from tests.support.pg import PgServer
from tests.support.ports import free_port
from tests.support.server import StrataProcess

RECOVERY_SECONDS = 15.0
DOWN_DEADLINE = 20.0
"""Client deadline while the database is down: the server must answer UNAVAILABLE
well before it, not hang until DEADLINE_EXCEEDED."""


@pytest.fixture
def own_pg(tmp_path: Path) -> Iterator[PgServer]:
    """A PostgreSQL server of this test's own, so stopping it disturbs no other test."""
    with PgServer(tmp_path / "pg") as server:  # started; stopped and deleted after
        yield server


@pytest.fixture
def strata_on_own_pg(own_pg: PgServer, tmp_path: Path) -> Iterator[StrataProcess]:
    process = StrataProcess(own_pg.create_database("strata_down"), tmp_path / "strata")
    process.start()
    yield process
    process.kill()


def test_requests_fail_unavailable_while_the_database_is_down_then_recover(
    own_pg, strata_on_own_pg
):
    process = strata_on_own_pg
    pid = process.process.pid
    with process.channel() as channel:
        stubs = stubs_over(channel)
        create(stubs, "down", "before", {"n": 1})

        own_pg.stop()
        # all at once: each may wait for a pooled connection before giving up
        started = time.monotonic()
        pending = {
            "GetRecord": stubs.records.GetRecord.future(
                records_pb2.GetRecordRequest(collection="down", id="before"), timeout=DOWN_DEADLINE
            ),
            "CreateRecord": stubs.records.CreateRecord.future(
                records_pb2.CreateRecordRequest(collection="down", record_id="during"),
                timeout=DOWN_DEADLINE,
            ),
            "ListRecords": stubs.records.ListRecords.future(
                records_pb2.ListRecordsRequest(collection="down"), timeout=DOWN_DEADLINE
            ),
            "GetServerInfo": stubs.admin.GetServerInfo.future(
                admin_pb2.GetServerInfoRequest(), timeout=DOWN_DEADLINE
            ),
        }
        for name, future in pending.items():
            info, _ = expect_error(future.result, grpc.StatusCode.UNAVAILABLE)
            assert info.reason, name
        assert time.monotonic() - started < DOWN_DEADLINE

        own_pg.start()
        deadline = time.monotonic() + RECOVERY_SECONDS
        while True:
            try:
                record = get(stubs, "down", "before")
                break
            except grpc.RpcError as error:
                assert error.code() not in CALLER_FAULT_CODES - {grpc.StatusCode.UNAVAILABLE}
                assert time.monotonic() < deadline, f"no recovery: {error.code()} {error.details()}"
                time.sleep(0.2)
        assert record.version == 1
        assert process.process.pid == pid and process.process.poll() is None
        create(stubs, "down", "after", {"n": 2})
        commit(stubs, [create_write("down", "after2")])
        assert count(stubs, "down") == 3
        assert [r.id for r in list_page(stubs, "down").records] == ["after", "after2", "before"]


def test_serve_against_an_unreachable_database_exits_with_one_clear_line(tmp_path):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/strata"
    env = {key: value for key, value in os.environ.items() if not key.startswith("STRATA_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "strata_server",
            "serve",
            "--database-url",
            url,
            "--listen",
            "127.0.0.1:0",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert "database" in lines[0].lower(), lines[0]
