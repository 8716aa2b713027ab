"""Fixtures of the fuzz suite: a seeded namespace to attack and one to guard, per shape.

The suite runs on the session's `server` (both shapes). Requests name the
namespace FUZZ_NAMESPACE, or a hostile or random one, never "default" (the other
tests' namespace) or SENTINEL_NAMESPACE, which holds the same seed data and must
read back unchanged after the run. Each shape's tally is kept for the terminal
summary (`make fuzz` prints it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fuzz import catalogue, seeding
from tests.fuzz.calls import Known, Method
from tests.fuzz.sender import FORBIDDEN, Tally
from tests.support.server import StrataProcess

FUZZ_NAMESPACE = "fuzz"
SENTINEL_NAMESPACE = "fuzz-sentinel"
FORBIDDEN_NAMESPACES = frozenset({"", "default", SENTINEL_NAMESPACE})

TALLIES = pytest.StashKey[dict[str, tuple[Tally, float]]]()


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    runs = terminalreporter.config.stash.get(TALLIES, {})
    if not runs:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fuzz summary")
    total = Tally()
    for shape, (tally, seconds) in sorted(runs.items()):
        total.merge(tally)
        write(
            f"{shape}: {tally.requests} requests in {seconds:.1f} s "
            f"(CPU: fuzzer {tally.cpu[0]:.1f} s, server {tally.cpu[1]:.1f} s; "
            f"server peak RSS +{tally.rss_growth_mb:.0f} MiB)"
        )
    write(f"requests sent: {total.requests}")
    write("by origin: " + ", ".join(f"{k} {v}" for k, v in sorted(total.origins.items())))
    write("status codes: " + ", ".join(f"{k} {v}" for k, v in total.codes.most_common()))
    forbidden = sum(total.codes[code] for code in FORBIDDEN)
    write(f"UNKNOWN/INTERNAL: {forbidden}")
    slowest = ", ".join(
        f"{path.rsplit('/', 1)[-1]} {seconds:.0f} s"
        for path, seconds in total.seconds.most_common(8)
    )
    write(f"waiting on answers, most: {slowest}")
    write("by method (OK / requests, then the other codes):")
    for path, counts in sorted(total.by_method.items()):
        others = ", ".join(f"{k} {v}" for k, v in counts.most_common() if k != "OK")
        write(f"  {path}: {counts['OK']} / {sum(counts.values())}; {others}")
