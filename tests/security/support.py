"""What the security tests share: servers started with `--auth token` and their
first admin token made by `strata token create` (as an operator bootstraps one),
channels that send a bearer token with every call, and a generic call of any
method from its descriptor."""

from __future__ import annotations

import collections
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import duration_pb2, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from strata.v1 import access_pb2, admin_pb2_grpc
from tests.support.cli import run_strata
from tests.support.server import StrataProcess

AUTH_ENV = {
    "STRATA_AUTH": "token",
    # Too long to matter: a revocation (through AdminService or `strata token
    # revoke`) must reach the servers by its event, or on a SQLite file by the
    # sub-second re-check that stands in for events there.
    "STRATA_TOKEN_RECHECK_SECONDS": "3600",
}


def strata(
    *args: str, database_url: str, cwd: Any = None, **settings: str
) -> subprocess.CompletedProcess[str]:
    """Run `strata <args>` (a process of its own) against `database_url` (and any
    other STRATA_* `settings`), as an operator would."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("STRATA_")}
    env.update(settings)
    env["STRATA_DATABASE_URL"] = database_url
    return run_strata(list(args), env=env, cwd=cwd, timeout=60)


def cli_token(database_url: str, name: str, role: str, *namespaces: str, **options: str) -> str:
    """`strata token create`: the secret, taken from the last line of its output."""
    args = ["token", "create", "--name", name, "--role", role]
    for namespace in namespaces:
        args += ["--namespace", namespace]
    for option, value in options.items():
        args += [f"--{option.replace('_', '-')}", value]
    done = strata(*args, database_url=database_url)
    assert done.returncode == 0, f"strata token create failed:\n{done.stdout}{done.stderr}"
    return done.stdout.strip().splitlines()[-1]


class _Details(
    collections.namedtuple(
        "_Details",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


class Bearer(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds `authorization: Bearer <token>` (and any other metadata) to every call."""

    def __init__(self, token: str | None, extra: tuple[tuple[str, str], ...] = ()) -> None:
        self._metadata = (*((("authorization", f"Bearer {token}"),) if token else ()), *extra)

    def _details(self, details: Any) -> _Details:
        return _Details(
            details.method,
            details.timeout,
            (*(details.metadata or ()), *self._metadata),
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


@dataclass
class SecureServer:
    """A server run with `--auth token`, and the secret of its first admin token
    (name "root", role admin, every namespace), made with the CLI."""

    process: StrataProcess
    root: str
    channels: list[grpc.Channel]

    @property
    def database_url(self) -> str:
        return self.process.database_url

    @property
    def events_env(self) -> dict[str, str]:
        """The settings `strata token revoke` must share with this server for its
        revocation to be sent where the server listens: Redis, when it uses Redis
        (else the database, PostgreSQL NOTIFY, is shared already)."""
        return {k: v for k, v in self.process.env.items() if k == "STRATA_REDIS_URL"}

    def channel(self, token: str | None, *extra: tuple[str, str]) -> grpc.Channel:
        """A channel sending `token` (None: no token) with every call; closed at the end."""
        channel = grpc.intercept_channel(self.process.channel(), Bearer(token, extra))
        self.channels.append(channel)
        return channel

    def admin(self) -> admin_pb2_grpc.AdminServiceStub:
        """AdminService as root."""
        return admin_pb2_grpc.AdminServiceStub(self.channel(self.root))

    def token(self, role: str, *namespaces: str, ttl: float | None = None, name: str = "") -> str:
        """A new token's secret, made by root through AdminService.CreateToken."""
        request = access_pb2.CreateTokenRequest(
            name=name or f"t-{uuid.uuid4().hex[:12]}",
            role=ROLES[role],
            namespaces=list(namespaces),
        )
        if ttl is not None:
            request.ttl.CopyFrom(duration_pb2.Duration(seconds=int(ttl)))
        return str(self.admin().CreateToken(request, timeout=30).secret)

    def revoke(self, name: str) -> access_pb2.Token:
        """RevokeToken as root."""
        return self.admin().RevokeToken(access_pb2.RevokeTokenRequest(name=name), timeout=30)

    def close(self) -> None:
        for channel in self.channels:
            channel.close()
        self.channels.clear()


ROLES = {
    "reader": access_pb2.ROLE_READER,
    "writer": access_pb2.ROLE_WRITER,
    "admin": access_pb2.ROLE_ADMIN,
}


def start_secure(process: StrataProcess) -> SecureServer:
    """Start `process` (set up with AUTH_ENV), then bootstrap its root token with the
    CLI against its database, as the first operator would."""
    process.start()
    root = cli_token(process.database_url, "root", "admin", "*")
    return SecureServer(process, root, [])


def message_class(descriptor: Any) -> type[Message]:
    """The generated class of a message descriptor."""
    return message_factory.GetMessageClass(descriptor)


def invoke(
    channel: grpc.Channel,
    method: MethodDescriptor,
    requests: list[Message],
    timeout: float = 10.0,
) -> Any:
    """Call `method` with `requests` (one for a unary request) and return its
    response, or a stream's first response (None if it ended without one); raises
    grpc.RpcError as the call fails."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    serialize = message_class(method.input_type).SerializeToString
    deserialize = message_class(method.output_type).FromString
    kinds: dict[tuple[bool, bool], Callable[..., Any]] = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }
    shape = (method.client_streaming, method.server_streaming)
    callable_ = kinds[shape](path, request_serializer=serialize, response_deserializer=deserialize)
    argument = iter(requests) if method.client_streaming else requests[0]
    if not method.server_streaming:
        return callable_(argument, timeout=timeout)
    call = callable_(argument, timeout=timeout)
    try:
        return next(call, None)
    finally:
        call.cancel()


def wait_until(deadline: datetime) -> None:
    """Sleep until `deadline` has passed (a token's expiry)."""
    while (left := (deadline - datetime.now(UTC)).total_seconds()) > -0.05:
        time.sleep(max(left, 0) + 0.1)


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def refusal(call: Callable[[], Any]) -> grpc.RpcError | None:
    """The error `call` raises, or None when it succeeds."""
    try:
        call()
    except grpc.RpcError as error:
        return error
    return None


def responses(stream: Iterator[Any]) -> list[Any]:
    """Every message of a finite stream."""
    return list(stream)


def refused_within(
    calls: Callable[[], list[grpc.StatusCode]],
    began: float,
    accepted: grpc.StatusCode = grpc.StatusCode.NOT_FOUND,
) -> float:
    """Seconds from `began` until every one of `calls()` is UNAUTHENTICATED, each
    polled again while it still answers `accepted` (what the call answers while its
    token is honoured); fails on any other code, and after ten seconds."""
    while True:
        codes = calls()
        if all(code == grpc.StatusCode.UNAUTHENTICATED for code in codes):
            return time.monotonic() - began
        assert set(codes) <= {accepted, grpc.StatusCode.UNAUTHENTICATED}, codes
        assert time.monotonic() - began < 10.0, f"still accepted: {codes}"
        time.sleep(0.02)
