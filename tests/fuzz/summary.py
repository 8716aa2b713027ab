"""The fuzz suite's closing summary (`make fuzz` prints it; so does `make test`).

A plugin of the root conftest rather than of tests/fuzz/conftest.py: under
pytest-xdist the summary is printed by the controller, which collects nothing and
so never loads the fuzz folder's conftest. Each worker hands its shapes' tallies
to the controller through `workeroutput` when it finishes.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fuzz.sender import FORBIDDEN, Tally

TALLIES = pytest.StashKey[dict[str, tuple[Tally, float]]]()
"""Each shape's tally and duration, as the fuzz test leaves them."""

_WORKER_KEY = "strata_fuzz_tallies"


def _plain(tally: Tally) -> dict[str, Any]:
    """What the summary reads of a tally, in types execnet can carry."""
    return {
        "codes": dict(tally.codes),
        "by_method": {path: dict(counts) for path, counts in tally.by_method.items()},
        "origins": dict(tally.origins),
        "seconds": dict(tally.seconds),
        "cpu": list(tally.cpu),
        "rss_growth_mb": tally.rss_growth_mb,
    }


def _tally(plain: dict[str, Any]) -> Tally:
    tally = Tally()
    tally.codes.update(plain["codes"])
    for path, counts in plain["by_method"].items():
        tally.by_method[path].update(counts)
    tally.origins.update(plain["origins"])
    tally.seconds.update(plain["seconds"])
    tally.cpu = (plain["cpu"][0], plain["cpu"][1])
    tally.rss_growth_mb = plain["rss_growth_mb"]
    return tally


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker: hand this worker's tallies to the controller."""
    output = getattr(session.config, "workeroutput", None)
    runs = session.config.stash.get(TALLIES, {})
    if output is not None and runs:
        output[_WORKER_KEY] = {
            shape: (_plain(tally), seconds) for shape, (tally, seconds) in runs.items()
        }


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the xdist controller: keep what a finished worker's fuzz runs tallied."""
    runs = getattr(node, "workeroutput", {}).get(_WORKER_KEY, {})
    stash = node.config.stash.setdefault(TALLIES, {})
    for shape, (plain, seconds) in runs.items():
        stash[shape] = (_tally(plain), seconds)


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
