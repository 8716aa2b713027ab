"""The page_token fields of Lists whose rows are ordered by one key (an id, a name,
a sequence number): read into the key to resume after, and written back from the
last row served. One function each, so every such List refuses a foreign token in
the same words."""

from __future__ import annotations

from typing import Any, TypeVar

from strata_server.core import errors
from strata_server.core.models import Page
from strata_server.core.paging import PageTokens

K = TypeVar("K", int, str)


def resume_after(tokens: PageTokens, page_token: str, digest: str, kind: type[K]) -> K | None:
    """The key after which the List of `digest` resumes (None: from its start)."""
    if not page_token:
        return None
    key, _ = tokens.decode(page_token, digest)
    if key is None or len(key) != 1 or type(key[0]) is not kind:
        raise errors.InvalidArgument.field("page_token", "is not a token for this list")
    return key[0]


def next_page_token(tokens: PageTokens, digest: str, page: Page[Any]) -> str:
    """The token of the page after `page` ("" when it is the last)."""
    return tokens.encode(digest, tuple(page.last_key)) if page.last_key is not None else ""
