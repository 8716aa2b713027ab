"""The principal bound for a call: a streaming call's generator may be closed in
another context than the one it bound in (the loop's finalizer, when the server
stops with the stream open), and that must not raise."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator

from strata_server.core import access_rules
from strata_server.core.access_rules import Principal, Role


def test_a_binding_closed_in_another_context_does_not_raise() -> None:
    caller = Principal("svc", Role.WRITER, frozenset({"a"}))

    def stream() -> Iterator[Principal]:
        with access_rules.bind(caller):
            yield access_rules.current()

    responses = stream()
    assert next(responses) == caller
    contextvars.Context().run(responses.close)  # raised ValueError before
    assert access_rules.current() == caller  # this context keeps what it set
