"""Opaque page tokens and page-size rules shared by every List and Search call.

A list token carries the sort values of the last row served (keyset pagination, so
concurrent inserts never shift or repeat rows) plus a digest of the query it
belongs to, so a token replayed against another filter or order is refused rather
than silently returning the wrong rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from strata_server.core.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_TOKEN_VERSION = 1
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


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and "$t" in value:
        return datetime.fromisoformat(value["$t"]).astimezone(UTC)
    if isinstance(value, dict) and "$v" in value:
        return value["$v"]
    raise ValueError("bad value")


def encode_token(digest: str, key: tuple[Any, ...] | None = None, offset: int = 0) -> str:
    """Make the opaque token that resumes after `key` (keyset) or at `offset`."""
    body: dict[str, Any] = {"v": _TOKEN_VERSION, "q": digest}
    if key is not None:
        body["k"] = [_encode_value(value) for value in key]
    if offset:
        body["o"] = offset
    raw = json.dumps(body, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, digest: str) -> tuple[tuple[Any, ...] | None, int]:
    """Read a token made by `encode_token` for the same query; returns (key, offset).

    Raises InvalidArgument for a token that is malformed or belongs to another query.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        if not isinstance(body, dict) or body.get("v") != _TOKEN_VERSION:
            raise ValueError("unknown token version")
        key = body.get("k")
        decoded = tuple(_decode_value(value) for value in key) if key is not None else None
        offset = body.get("o", 0)
        if type(offset) is not int:
            raise ValueError("offset must be an integer")
        token_digest = body.get("q")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument.field("page_token", "is not a token this server issued") from None
    if token_digest != digest:
        raise InvalidArgument.field(
            "page_token", "belongs to a different query (filter, order_by or collection changed)"
        )
    if offset < 0 or offset > MAX_OFFSET:
        raise InvalidArgument.field("page_token", "is not a token this server issued")
    return decoded, offset
