"""The JSON type, and the one stored text form of a JSON document.

In a module of its own, below every other domain module: core.models, core.job_transitions,
core.transcript_rules and core.writes all use them, and none of them needs another to
do so (core.transcript_rules checks an entry's data with `serialize` as core.writes
checks a record's; core.models refers to both of their types).
"""

import json
import re
from typing import Any

from strata_server.core.errors import InvalidArgument, TooLarge

JSON = dict[str, Any]
"""A JSON object as Python values: what a record's data or a job's payload is."""

_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""`\\u0000` not itself escaped (an even run of backslashes before it)."""


def dumps(data: Any) -> str:
    """Compact JSON as stored in both dialects; NaN and infinities are refused since
    JSON (and PostgreSQL's jsonb) has no such numbers."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def serialize(data: JSON, max_bytes: int, field: str = "data", what: str = "record data") -> str:
    """The stored JSON text of a document, refusing what either shape cannot store
    (NaN, infinities, NUL) and anything over `max_bytes`."""
    try:
        text = dumps(data)
    except ValueError:
        raise InvalidArgument.field(field, "numbers must be finite (no NaN or Infinity)") from None
    # json.dumps escapes control characters, so a NUL shows as \u0000; PostgreSQL's
    # jsonb cannot hold it, and both shapes must accept the same documents.
    if _NUL_ESCAPE.search(text):
        raise InvalidArgument.field(field, "strings must not contain the NUL character")
    size = len(text.encode())
    if size > max_bytes:
        raise TooLarge(
            f"{what} is {size} bytes, over the {max_bytes}-byte limit; "
            "store large content as an artifact",
            metadata={"size": str(size), "limit": str(max_bytes)},
        )
    return text
