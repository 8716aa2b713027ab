"""AdminService CreateToken / ListTokens / RevokeToken on both shapes: what is
stored and shown (never a secret), paging, inactive tokens, and bad input."""

from __future__ import annotations

from datetime import UTC

import grpc
import pytest
from google.protobuf import duration_pb2

from strata.v1 import access_pb2
from tests.contract.helpers import expect_error
from tests.security.support import SecureServer, unique, wait_until


def every_token(secure: SecureServer, inactive: bool) -> list[bytes]:
    """Every page of ListTokens, two tokens a page, serialized."""
    pages: list[bytes] = []
    request = access_pb2.ListTokensRequest(page_size=2, show_inactive=inactive)
    while True:
        page = secure.admin().ListTokens(request, timeout=30)
        assert len(page.tokens) <= 2
        pages.append(page.SerializeToString())
        if not page.next_page_token:
            return pages
        request.page_token = page.next_page_token


def names(secure: SecureServer, inactive: bool) -> list[str]:
    found: list[str] = []
    request = access_pb2.ListTokensRequest(page_size=2, show_inactive=inactive)
    while True:
        page = secure.admin().ListTokens(request, timeout=30)
        found.extend(token.name for token in page.tokens)
        if not page.next_page_token:
            return found
        request.page_token = page.next_page_token


def test_tokens_are_listed_by_name_without_secrets_and_inactive_ones_on_request(secure):
    prefix = unique("list")
    created = secure.admin().CreateToken(
        access_pb2.CreateTokenRequest(
            name=f"{prefix}-a",
            role=access_pb2.ROLE_WRITER,
            namespaces=["b-ns", "a-ns"],
            ttl=duration_pb2.Duration(seconds=3600),
            rate_limit=2.5,
            burst=7,
        ),
        timeout=30,
    )
    token = created.token
    assert (token.name, token.role, list(token.namespaces)) == (
        f"{prefix}-a",
        access_pb2.ROLE_WRITER,
        ["a-ns", "b-ns"],
    )
    assert (token.rate_limit, token.burst, token.created_by) == (2.5, 7, "root")
    lifetime = token.expire_time.ToDatetime() - token.create_time.ToDatetime()
    assert lifetime.total_seconds() == pytest.approx(3600, abs=1)
    assert not token.HasField("revoke_time")
    secrets = [created.secret]
    secrets.append(secure.token("reader", "*", name=f"{prefix}-b"))
    secrets.append(secure.token("reader", "*", name=f"{prefix}-c", ttl=1))
    secrets.append(secure.token("reader", "*", name=f"{prefix}-d"))
    secure.revoke(f"{prefix}-b")
    wait_until(
        next(
            t.expire_time.ToDatetime().replace(tzinfo=UTC)
            for t in secure.admin()
            .ListTokens(access_pb2.ListTokensRequest(page_size=1000), timeout=30)
            .tokens
            if t.name == f"{prefix}-c"
        )
    )

    active = [name for name in names(secure, inactive=False) if name.startswith(prefix)]
    everything = [name for name in names(secure, inactive=True) if name.startswith(prefix)]
    assert active == [f"{prefix}-a", f"{prefix}-d"]
    assert everything == [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c", f"{prefix}-d"]
    listed = b"".join(every_token(secure, inactive=True))
    for secret in secrets:
        assert secret.encode() not in listed
    assert b"st_" not in listed


def test_bad_token_requests_name_the_field(secure):
    admin = secure.admin()
    taken = unique("taken")
    secure.token("reader", "*", name=taken)

    def create(**fields):
        values = {"name": unique("x"), "role": access_pb2.ROLE_READER, "namespaces": ["a"]}
        values.update(fields)
        return lambda: admin.CreateToken(access_pb2.CreateTokenRequest(**values), timeout=30)

    bad = grpc.StatusCode.INVALID_ARGUMENT
    expect_error(create(name=""), bad, field="name")
    expect_error(create(name="a b"), bad, field="name")
    expect_error(create(role=access_pb2.ROLE_UNSPECIFIED), bad, field="role")
    expect_error(create(namespaces=[]), bad, field="namespaces")
    expect_error(create(namespaces=["a", "*"]), bad, field="namespaces")
    expect_error(create(namespaces=["Not Valid"]), bad, field="namespaces")
    expect_error(create(ttl=duration_pb2.Duration(seconds=0)), bad, field="ttl")
    expect_error(create(ttl=duration_pb2.Duration(seconds=-5)), bad, field="ttl")
    expect_error(create(burst=-1), bad, field="burst")
    expect_error(create(name=taken), grpc.StatusCode.ALREADY_EXISTS)
    expect_error(
        lambda: admin.ListTokens(access_pb2.ListTokensRequest(page_token="junk"), timeout=30),
        bad,
        field="page_token",
    )
    expect_error(
        lambda: admin.ListTokens(access_pb2.ListTokensRequest(page_size=-1), timeout=30),
        bad,
        field="page_size",
    )
    expect_error(
        lambda: admin.RevokeToken(access_pb2.RevokeTokenRequest(name=""), timeout=30),
        bad,
        field="name",
    )
