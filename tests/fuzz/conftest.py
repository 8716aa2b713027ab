"""Fixtures of the fuzz suite: a seeded namespace to attack and one to guard, per shape.

The suite runs on the session's `server` (both shapes). Requests name the
namespace FUZZ_NAMESPACE, or a hostile or random one, never "default" (the other
tests' namespace) or SENTINEL_NAMESPACE, which holds the same seed data and must
read back unchanged after the run. Each shape's tally is kept for the terminal
summary (tests/fuzz/summary.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fuzz import catalogue, seeding
from tests.fuzz.calls import Known, Method
from tests.fuzz.sender import Tally
from tests.fuzz.summary import TALLIES
from tests.support.server import StrataProcess

FUZZ_NAMESPACE = "fuzz"
SENTINEL_NAMESPACE = "fuzz-sentinel"
FORBIDDEN_NAMESPACES = frozenset({"", "default", SENTINEL_NAMESPACE})


@dataclass
class Target:
    """A server ready to be fuzzed: its RPCs and what the fuzzer knows of its namespace."""

    server: StrataProcess
    methods: list[Method]
    known: Known


@pytest.fixture(scope="session")
def fuzz_target(server: StrataProcess) -> Iterator[Target]:
    """The server's RPCs (from reflection), with both namespaces seeded."""
    channel = server.channel()
    try:
        methods = catalogue.methods(channel)
        seeding.seed(channel, SENTINEL_NAMESPACE)
        values = seeding.seed(channel, FUZZ_NAMESPACE)
        known = seeding.harvest(channel, methods, FUZZ_NAMESPACE, values)
        known.forbidden_namespaces = FORBIDDEN_NAMESPACES
        yield Target(server, methods, known)
    finally:
        channel.close()


@pytest.fixture
def tallies(request: pytest.FixtureRequest) -> dict[str, tuple[Tally, float]]:
    """Where each shape's run leaves its tally and duration for the summary."""
    return request.config.stash.setdefault(TALLIES, {})
