"""The page_token fields of every List and Search: read into where the call resumes
(the sort key of the last row served, or a search's offset) and written back from
the page served. One function each, so every List refuses a foreign token in the
same words and every Search stops at the same depth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from strata_server.core import errors
from strata_server.core.models import Page
from strata_server.core.paging import (
    DEFAULT_PAGE_SIZE,
    MAX_OFFSET,
    PageTokens,
    page_size,
    query_digest,
)
from strata_server.core.values import frozen

K = TypeVar("K", int, str)


def resume_after_row(
    tokens: PageTokens, page_token: str, digest: str, fits: Callable[[tuple[Any, ...]], bool]
) -> tuple[Any, ...] | None:
    """The sort key after which the List of `digest` resumes (None: from its start);
    `fits` says whether a key has the columns this List orders by."""
    if not page_token:
        return None
    key, _ = tokens.decode(page_token, digest)
    if key is None or not fits(key):
        raise errors.InvalidArgument.field("page_token", "is not a token for this list")
    return key


def resume_after(tokens: PageTokens, page_token: str, digest: str, kind: type[K]) -> K | None:
    """`resume_after_row` for a List ordered by one key (an id, a name, a sequence
    number) of type `kind`."""
    key = resume_after_row(
        tokens, page_token, digest, lambda key: len(key) == 1 and type(key[0]) is kind
    )
    return None if key is None else key[0]


def next_page_token(tokens: PageTokens, digest: str, page: Page[Any]) -> str:
    """The token of the page after `page` ("" when it is the last)."""
    return tokens.encode(digest, tuple(page.last_key)) if page.last_key is not None else ""


def resume_offset(tokens: PageTokens, page_token: str, digest: str) -> int:
    """Where the Search of `digest` resumes (0: at its first hit)."""
    return tokens.decode(page_token, digest)[1] if page_token else 0


def next_offset_token(tokens: PageTokens, digest: str, page: Page[Any], offset: int) -> str:
    """The token of the Search page at `offset` ("" when `page` was the last, or
    `offset` is deeper than searches go)."""
    more = page.last_key is not None and offset <= MAX_OFFSET
    return tokens.encode(digest, offset=offset) if more else ""


class PagedRequest(Protocol):
    """What every List and Search request has (AIP-158)."""

    @property
    def page_size(self) -> int: ...
    @property
    def page_token(self) -> str: ...


@frozen
class Paging:
    """One List or Search call's paging, read from its request by `paging`: the
    page size, and the digest its tokens are bound to, named once per RPC instead
    of threading (tokens, page_token, digest) through each of the functions above."""

    tokens: PageTokens
    digest: str
    limit: int
    page_token: str

    def after(self, kind: type[K]) -> K | None:
        """`resume_after` for this call."""
        return resume_after(self.tokens, self.page_token, self.digest, kind)

    def after_row(self, fits: Callable[[tuple[Any, ...]], bool]) -> tuple[Any, ...] | None:
        """`resume_after_row` for this call."""
        return resume_after_row(self.tokens, self.page_token, self.digest, fits)

    def next_token(self, page: Page[Any]) -> str:
        """`next_page_token` for this call."""
        return next_page_token(self.tokens, self.digest, page)

    def offset(self) -> int:
        """`resume_offset` for this call."""
        return resume_offset(self.tokens, self.page_token, self.digest)

    def next_offset(self, page: Page[Any], offset: int) -> str:
        """`next_offset_token` of the Search page after the one served from `offset`."""
        return next_offset_token(self.tokens, self.digest, page, offset + self.limit)


def paging(
    tokens: PageTokens, request: PagedRequest, *digest_parts: str, default: int = DEFAULT_PAGE_SIZE
) -> Paging:
    """The paging of a List or Search `request` whose rows and order `digest_parts`
    define; the page size is checked here (before any token is read)."""
    limit = page_size(request.page_size, default)
    return Paging(tokens, query_digest(*digest_parts), limit, request.page_token)
