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

    def serve() -> None:
        responses = stream()
        assert next(responses) == caller
        contextvars.Context().run(responses.close)  # raised ValueError before
        assert access_rules.current() == caller  # this context keeps what it set

    # In a copy of the test's context: the binding the stream leaves behind must
    # not leak into the tests that run after this one in the same thread.
    contextvars.copy_context().run(serve)
    assert access_rules.current() == access_rules.ANONYMOUS


def test_a_binding_restores_the_outer_principal_however_its_block_ends() -> None:
    outer = Principal("outer", Role.ADMIN, frozenset({"*"}))
    inner = Principal("inner", Role.READER, frozenset({"a"}))
    before = access_rules.current()
    with access_rules.bind(outer) as bound:
        assert bound == outer
        try:
            with access_rules.bind(inner):
                assert access_rules.current() == inner
                raise KeyError("the call failed")
        except KeyError:
            pass
        assert access_rules.current() == outer
    assert access_rules.current() == before


def test_the_audit_actor_keeps_a_claim_beside_the_name_never_in_its_place() -> None:
    token = Principal("ci-bot", Role.WRITER, frozenset({"a"}))
    assert token.actor_claiming("") == "ci-bot"
    assert token.actor_claiming("alice") == "ci-bot (claims: alice)"
    assert access_rules.ANONYMOUS.actor_claiming("alice") == "alice"
    assert access_rules.ANONYMOUS.actor_claiming("") == "anonymous"
