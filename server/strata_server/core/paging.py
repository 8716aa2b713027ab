"""Opaque page tokens and page-size rules shared by every List and Search call.

A list token carries the sort values of the last row served (keyset pagination, so
concurrent inserts never shift or repeat rows) plus a digest of the query it
belongs to, so a token replayed against another filter or order is refused rather
than silently returning the wrong rows. Tokens are signed (`PageTokens`), so what a
List or Search reads back from one is only ever what this server put in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from datetime import UTC, datetime
from typing import Any

from strata_server.core.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_TOKEN_VERSION = 2
"""2: signed (version 1 tokens were not, and are refused)."""
MAX_OFFSET = 100_000
"""Offset-paged results (search) stop here, like most search engines: refine the query."""


def page_size(requested: int, default: int = DEFAULT_PAGE_SIZE) -> int:
    """AIP-158: 0 means the default, above the maximum is clamped, negative is an error."""
    if requested < 0:
        raise InvalidArgument.field("page_size", "must not be negative")
    if requested == 0:
        return default
    return min(requested, MAX_PAGE_SIZE)


def query_digest(*parts: str) -> str:
    """A short digest of everything that defines a query's rows and order."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$t": value.isoformat()}
    return {"$v": value}


_INT64 = 2**63


def _plain(value: Any) -> Any:
    """`value` (parsed JSON) if every part of it is something a row could have
    given: int64 integers, finite floats, strings that encode as UTF-8 (no lone
    surrogates), and lists and objects of those. Raises ValueError otherwise."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ValueError("integer out of range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("number not finite")
        return value
    if isinstance(value, str):
        value.encode()
        return value
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    raise ValueError("not a JSON value")


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        if "$t" in value and isinstance(value["$t"], str):
            moment = datetime.fromisoformat(value["$t"])
            if moment.tzinfo is None:
                raise ValueError("time without a zone")
            return moment.astimezone(UTC)
        if "$v" in value:
            return _plain(value["$v"])
    raise ValueError("bad value")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    """Inverse of _b64, for its output only: padding or stray bits are refused, so
    each token has one spelling."""
    raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    if _b64(raw) != text:
        raise ValueError("not the canonical spelling")
    return raw


def _bad_token() -> InvalidArgument:
    return InvalidArgument.field("page_token", "is not a token this server issued")


class PageTokens:
    """Makes and reads the opaque page tokens of every List and Search call.

    A token is `<body>.<mac>`, both base64url: the body is JSON (version, query
    digest, the keyset values or the offset to resume at), the mac the first
    MAC_BYTES of HMAC-SHA256 of the body under a key every replica shares
    (STRATA_PAGE_TOKEN_KEY, else one the database keeps). A token whose mac does not
    match, because it was forged, altered or made under another key, is refused
    before its body is read. Reading the body is total all the same: whatever it
    holds, the answer is a value the adapters accept or INVALID_ARGUMENT.
    """

    MAC_BYTES = 16
    MIN_KEY_BYTES = 16

    def __init__(self, key: bytes) -> None:
        if len(key) < self.MIN_KEY_BYTES:
            raise ValueError(f"a page token key needs at least {self.MIN_KEY_BYTES} bytes")
        self._key = key

    def _mac(self, body: bytes) -> bytes:
        return hmac.digest(self._key, body, "sha256")[: self.MAC_BYTES]

    def encode(self, digest: str, key: tuple[Any, ...] | None = None, offset: int = 0) -> str:
        """The token that resumes the query of `digest` after `key` (keyset) or at
        `offset`."""
        body: dict[str, Any] = {"v": _TOKEN_VERSION, "q": digest}
        if key is not None:
            body["k"] = [_encode_value(value) for value in key]
        if offset:
            body["o"] = offset
        raw = json.dumps(body, separators=(",", ":"), default=str).encode()
        return f"{_b64(raw)}.{_b64(self._mac(raw))}"

    def decode(self, token: str, digest: str) -> tuple[tuple[Any, ...] | None, int]:
        """Read a token made by `encode` for the same query; returns (key, offset).

        Raises InvalidArgument (naming page_token) for anything else: a token not
        signed with this key, or one made for another query.
        """
        body_text, dot, mac_text = token.partition(".")
        try:
            raw, mac = _unb64(body_text), _unb64(mac_text)
        except ValueError:  # binascii.Error is one; so is a non-ASCII str
            raise _bad_token() from None
        if not dot or not hmac.compare_digest(mac, self._mac(raw)):
            raise _bad_token()
        try:
            key, offset, token_digest = _read_body(raw)
        except Exception:  # whatever the body holds, it is a bad token
            raise _bad_token() from None
        if token_digest != digest:
            raise InvalidArgument.field(
                "page_token",
                "belongs to a different query (filter, order_by or collection changed)",
            )
        return key, offset


def _read_body(raw: bytes) -> tuple[tuple[Any, ...] | None, int, str]:
    body = json.loads(raw)
    if not isinstance(body, dict) or body.get("v") != _TOKEN_VERSION:
        raise ValueError("unknown token version")
    token_digest = body.get("q")
    if not isinstance(token_digest, str):
        raise ValueError("no query digest")
    key = body.get("k")
    if key is not None and not isinstance(key, list):
        raise ValueError("key must be a list")
    decoded = tuple(_decode_value(value) for value in key) if key is not None else None
    offset = body.get("o", 0)
    if type(offset) is not int or not 0 <= offset <= MAX_OFFSET:
        raise ValueError("offset out of range")
    return decoded, offset, token_digest
