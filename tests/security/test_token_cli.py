"""`strata token create | list | revoke` against the configured database, as an
operator runs them (subprocesses): the secret is alone on the last line, works
against a running server, is stored only as a hash, and a revocation made here
reaches the running server within a second (sent on its events channel, or on a
SQLite file found by its re-check)."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time

import grpc
import psycopg

from strata.v1 import records_pb2, records_pb2_grpc
from tests.contract.helpers import to_struct
from tests.security.support import cli_token, refused_within, strata, unique

SECRET = re.compile(r"st_[A-Za-z0-9_-]{43}")
ONE_SECOND = 1.0


def create_record(secure, token: str, namespace: str) -> grpc.StatusCode:
    stub = records_pb2_grpc.RecordServiceStub(secure.channel(token))
    try:
        stub.CreateRecord(
            records_pb2.CreateRecordRequest(
                namespace=namespace, collection="c", record_id=unique("r"), data=to_struct({})
            ),
            timeout=30,
        )
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def stored_rows(database_url: str) -> list[tuple[object, ...]]:
    """Every row of the tokens table, read directly (what a dump would hold)."""
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            return list(db.execute("SELECT * FROM tokens"))
    with psycopg.connect(database_url) as db:
        return list(db.execute("SELECT * FROM tokens"))


def test_the_created_token_is_the_last_line_and_works_against_the_server(secure):
    namespace = unique("cli")
    name = unique("deploy")
    done = strata(
        "token", "create", "--name", name, "--role", "writer",
        "--namespace", namespace, "--namespace", unique("other"), "--ttl", "30d",
        database_url=secure.database_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert SECRET.fullmatch(lines[-1]), lines
    assert len(lines) > 1 and name in lines[0]
    secret = lines[-1]

    assert create_record(secure, secret, namespace) == grpc.StatusCode.OK
    assert create_record(secure, secret, unique("elsewhere")) == grpc.StatusCode.PERMISSION_DENIED

    listed = strata("token", "list", database_url=secure.database_url)
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith(name + " "))
    assert "role=writer" in line and namespace in line and "active" in line
    assert secret not in listed.stdout
    assert not SECRET.search(listed.stdout)

    rows = stored_rows(secure.database_url)
    assert rows and not any(secret in str(row) for row in rows)
    assert any(hashlib.sha256(secret.encode()).hexdigest() in row for row in rows)


def test_a_revocation_from_the_cli_reaches_the_running_server_within_a_second(secure):
    namespace = unique("cli")
    name = unique("leaked")
    secret = cli_token(secure.database_url, name, "writer", namespace)
    assert create_record(secure, secret, namespace) == grpc.StatusCode.OK  # cached now

    done = strata("token", "revoke", name, database_url=secure.database_url, **secure.events_env)
    began = time.monotonic()
    assert done.returncode == 0, done.stderr
    assert "revoked" in done.stdout

    # The server re-checks the tokens table only hourly (AUTH_ENV): within a second
    # it is the event (PostgreSQL with Redis), or the SQLite file's own re-check.
    took = refused_within(
        lambda: [create_record(secure, secret, namespace)], began, grpc.StatusCode.OK
    )
    assert took <= ONE_SECOND, f"the server refused it only after {took:.2f} s"

    listed = strata("token", "list", database_url=secure.database_url)
    assert name not in listed.stdout
    everything = strata("token", "list", "--all", database_url=secure.database_url)
    assert any(
        line.startswith(name + " ") and line.endswith("revoked")
        for line in everything.stdout.splitlines()
    )


def test_bad_input_ends_with_one_line_and_status_2(tmp_path):
    url = f"sqlite:///{tmp_path / 'tokens.db'}"
    taken = unique("taken")
    cli_token(url, taken, "reader", "*")
    for args in (
        ["token", "create", "--name", taken, "--role", "reader", "--namespace", "*"],
        ["token", "create", "--name", unique("x"), "--role", "boss", "--namespace", "a"],
        ["token", "create", "--name", unique("x"), "--role", "reader", "--namespace", "A B"],
        ["token", "create", "--name", unique("x"), "--role", "reader", "--namespace", "a",
         "--namespace", "*"],
        ["token", "create", "--name", unique("x"), "--role", "reader", "--namespace", "a",
         "--ttl", "soon"],
        ["token", "revoke", unique("nobody")],
    ):  # fmt: skip
        done = strata(*args, database_url=url)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
        assert done.stderr.startswith("strata: "), done.stderr
        assert "Traceback" not in done.stderr


def test_the_first_token_is_made_without_any_server(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    secret = cli_token(url, "first-admin", "admin", "*")
    assert SECRET.fullmatch(secret)
    listed = strata("token", "list", database_url=url)
    assert listed.stdout.startswith("first-admin ")
