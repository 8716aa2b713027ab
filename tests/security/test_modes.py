"""`--auth none` only on loopback: a non-loopback listen address without
authentication stops `strata serve` with status 2 and one line, before anything is
bound or opened, unless `--allow-insecure` says otherwise. Plus the rules tokens
are made by (core/token_rules.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from strata_server.config import insecure_listen, is_loopback, load_settings
from strata_server.core.access_rules import ALL_NAMESPACES, Role
from strata_server.core.errors import InvalidArgument
from strata_server.core.token_rules import (
    check_new_token,
    new_secret,
    parse_ttl,
    secret_hash,
    well_formed,
)
from tests.security.support import strata


@pytest.mark.parametrize(
    "listen", ["0.0.0.0:0", "[::]:0", "10.1.2.3:50051", "strata.example.com:50051"]
)
def test_serving_a_non_loopback_address_without_auth_exits_2_with_one_line(tmp_path, listen):
    done = strata("serve", "--listen", listen, database_url=f"sqlite:///{tmp_path / 's.db'}")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "--allow-insecure" in lines[0] and "--auth token" in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "s.db").exists(), "a refused start must not open the database"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("[::1]", True),
        ("::1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("[::]", False),
        ("192.168.1.10", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def test_only_auth_or_an_explicit_override_allows_a_non_loopback_address():
    assert insecure_listen(load_settings(listen="0.0.0.0:1")) is not None
    assert insecure_listen(load_settings(listen="0.0.0.0:1", auth="token")) is None
    assert insecure_listen(load_settings(listen="0.0.0.0:1", allow_insecure=True)) is None
    assert insecure_listen(load_settings(listen="127.0.0.1:1")) is None
    assert insecure_listen(load_settings(listen="[::1]:1")) is None


def test_serve_help_shows_the_auth_options():
    done = strata("serve", "--help", database_url="sqlite:///unused.db")
    assert "--auth" in done.stdout and "--allow-insecure" in done.stdout


def test_secrets_are_256_random_bits_with_a_prefix_and_stored_as_sha256():
    first, second = new_secret(), new_secret()
    assert first != second and first.startswith("st_") and len(first) == 3 + 43
    assert well_formed(first)
    for bad in ("", "st_", first[:-1], first + "x", "xx" + first[2:], first.replace("_", "*", 2)):
        assert not well_formed(bad), bad
    assert len(secret_hash(first)) == 64 and secret_hash(first) != secret_hash(second)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000), ("2w", 1209600),
     ("1d12h", 129600), (" 30D ", 2592000)],
)  # fmt: skip
def test_ttls_as_operators_write_them(text, seconds):
    assert parse_ttl(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "30", "d", "1y", "-5m", "1.5h", "12h ago"])
def test_malformed_ttls_are_refused(text):
    with pytest.raises(InvalidArgument) as raised:
        parse_ttl(text)
    assert raised.value.violations[0].field == "ttl"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"role": None}, "role"),
        ({"namespaces": []}, "namespaces"),
        ({"namespaces": ["Upper"]}, "namespaces"),
        ({"namespaces": [""]}, "namespaces"),
        ({"namespaces": ["a", "*"]}, "namespaces"),
        ({"ttl": timedelta(0)}, "ttl"),
        ({"ttl": timedelta(days=36526)}, "ttl"),
        ({"rate_limit": -1.0}, "rate_limit"),
        ({"rate_limit": float("nan")}, "rate_limit"),
        ({"burst": -1}, "burst"),
    ],
)
def test_a_bad_new_token_names_the_field(fields, field):
    values = {"name": "svc", "role": Role.READER, "namespaces": ["a"], **fields}
    with pytest.raises(InvalidArgument) as raised:
        check_new_token(**values)
    assert raised.value.violations[0].field == field


def test_a_good_new_token():
    token = check_new_token("ci.bot-1", Role.WRITER, ["b", "a", "a"], timedelta(days=1), 5.0, 10)
    assert token.namespaces == frozenset({"a", "b"})
    assert check_new_token("root", Role.ADMIN, ["*"]).namespaces == frozenset({ALL_NAMESPACES})
