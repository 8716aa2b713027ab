"""Rules for names, ids and sizes that every request is checked against.

Checked before any storage call, so a bad request never reaches a transaction.
"""

from __future__ import annotations

import re
import secrets
import threading
import time

from strata_server.core.errors import InvalidArgument

DEFAULT_NAMESPACE = "default"

NAMESPACE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_NAMESPACE_RULE = "must be 1-63 of a-z, 0-9, '_' or '-', starting with a letter or digit"
COLLECTION_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_COLLECTION_RULE = "must be a letter followed by up to 63 letters, digits, '_' or '-'"
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~:@+=-]{0,255}")
_ID_RULE = "must be 1-256 of letters, digits and '._~:@+=-', starting with a letter or digit"
REQUEST_ID_MAX = 256

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def namespace(value: str) -> str:
    """An empty namespace means "default"; otherwise lowercase letters, digits, _ and -."""
    return _name(value, NAMESPACE_RE, "namespace", _NAMESPACE_RULE) if value else DEFAULT_NAMESPACE


def collection(value: str, field: str = "collection") -> str:
    """A collection name: a letter, then up to 63 letters, digits, '_' or '-'."""
    return _name(value, COLLECTION_RE, field, _COLLECTION_RULE)


def entity_id(value: str, field: str = "id") -> str:
    """An id: 1-256 of letters, digits and ._~:@+=-, starting with a letter or digit."""
    return _name(value, ID_RE, field, _ID_RULE)


def _name(value: str, pattern: re.Pattern[str], field: str, rule: str) -> str:
    """`value` if present and whole-matching `pattern`, else InvalidArgument naming
    `field` ("is required", or `rule`)."""
    if not value:
        raise InvalidArgument.field(field, "is required")
    if not pattern.fullmatch(value):
        raise InvalidArgument.field(field, rule)
    return value


class _Ids:
    """Monotonic ULID-style ids: within one millisecond the random part counts up, so
    ids made in a row (the jobs of one batch) sort in the order they were made."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
            if value <= self._last:
                value = self._last + 1
            self._last = value
        return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


_IDS = _Ids()


def new_id() -> str:
    """A server-chosen id: 26 characters, time-ordered like a ULID, so ids sort by
    creation (strictly, for ids made by this process)."""
    return _IDS.next()


def request_id(value: str) -> str | None:
    """An optional idempotency key; empty means none."""
    if not value:
        return None
    if len(value) > REQUEST_ID_MAX or not value.isprintable():
        raise InvalidArgument.field(
            "request_id", f"must be at most {REQUEST_ID_MAX} printable characters"
        )
    return value


MAX_QUERY_LENGTH = 1024


def search_query(value: str, field: str = "query") -> str:
    """Free text to search for, stripped: 1 to MAX_QUERY_LENGTH characters, without
    NUL. Checked here, before storage, so both backends answer alike: PostgreSQL
    cannot take a NUL in text at all, and SQLite's FTS5 cuts a query at one."""
    text = value.strip()
    if not text:
        raise InvalidArgument.field(field, "is required")
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidArgument.field(field, f"longer than {MAX_QUERY_LENGTH} characters")
    if "\x00" in text:
        raise InvalidArgument.field(field, "must not contain the NUL character (U+0000)")
    return text


CACHE_KEY_MAX_BYTES = 512
MAX_CACHE_TTL_SECONDS = 30 * 24 * 3600.0
"""Longest TTL a CacheService Set may ask for: 30 days."""


def cache_key(value: str, field: str = "key") -> str:
    """A CacheService key: 1-512 bytes of UTF-8, printable (no control characters)."""
    if not value:
        raise InvalidArgument.field(field, "is required")
    if len(value.encode()) > CACHE_KEY_MAX_BYTES:
        raise InvalidArgument.field(field, f"must be at most {CACHE_KEY_MAX_BYTES} bytes of UTF-8")
    if not value.isprintable():
        raise InvalidArgument.field(field, "must not contain control characters")
    return value


def cache_ttl(seconds: float | None, default: float, field: str = "ttl") -> float:
    """A CacheService TTL in seconds: `default` when unset (None), else positive and
    at most MAX_CACHE_TTL_SECONDS."""
    if seconds is None:
        return default
    if seconds <= 0:
        raise InvalidArgument.field(field, "must be positive (leave it unset for the default)")
    if seconds > MAX_CACHE_TTL_SECONDS:
        raise InvalidArgument.field(field, "must be at most 30 days")
    return seconds


MAX_OWNER = 256


def owner(value: str, field: str = "owner") -> str:
    """An owner as records, transcripts and artifacts store it: at most MAX_OWNER
    printable characters (no control characters: it is shown in tables and logs);
    empty means none."""
    if len(value) > MAX_OWNER or not value.isprintable():
        raise InvalidArgument.field(field, f"must be at most {MAX_OWNER} printable characters")
    return value


def owner_filter(value: str) -> str | None:
    """An owner to filter by (transcripts' and artifacts' owners are at most
    MAX_OWNER printable characters); None for an empty one."""
    return owner(value) or None
