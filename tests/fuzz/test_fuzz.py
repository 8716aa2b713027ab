"""Hostile requests to every RPC of every service, on both shapes, over a real channel.

What must hold, whatever a caller sends:
- no answer is UNKNOWN or INTERNAL (each offender is listed with its status,
  details and the request as a literal for `test_regressions.py`);
- the server is still up and serving afterwards (health check), and its peak RSS
  grew by at most STRATA_FUZZ_RSS_GROWTH_MB while it was fuzzed;
- a namespace nobody named (SENTINEL_NAMESPACE) reads back exactly as before.

STRATA_FUZZ_REQUESTS (default 10,000) is the number of requests over both shapes;
`make fuzz` runs 100,000. The run is reproducible: Hypothesis starts each RPC from
a seed made of STRATA_FUZZ_SEED (default 0) and the RPC's path. Answers are
collected rather than asserted one by one, so Hypothesis never shrinks and the time
goes into requests.
"""

from __future__ import annotations

import collections
import json
import os
import re
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.conftest import SHAPES
from tests.fuzz import catalogue, seeding
from tests.fuzz.calls import Method, calls
from tests.fuzz.conftest import SENTINEL_NAMESPACE, Target
from tests.fuzz.fields import Pools
from tests.fuzz.sender import FORBIDDEN, Sender, Tally, failure_classes

pytestmark = pytest.mark.fuzz

REQUESTS = int(os.environ.get("STRATA_FUZZ_REQUESTS", "10000"))
SEED = os.environ.get("STRATA_FUZZ_SEED", "0")
"""Each RPC's examples come from the seed "<SEED>:<RPC path>": the same requests on
both shapes and on every run, until the seed or the generator changes."""
CALLS_PER_EXAMPLE = 4
"""Calls drawn per Hypothesis example: the engine's own cost per example is paid once
for several requests."""
RSS_GROWTH_MB = int(os.environ.get("STRATA_FUZZ_RSS_GROWTH_MB", "256"))
"""Peak RSS growth allowed while fuzzing: the largest legal message is 16 MiB, and a
few are in flight at once, each parsed, converted and written."""


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def _cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _reset_peak(pid: int) -> None:
    """Start VmHWM over from the current RSS (Linux clear_refs, value 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _logged_errors(log: str) -> dict[str, str]:
    """What the server logged with a traceback, by request id: the innermost frame
    and the exception (JSON log lines; console lines carry no request id)."""
    found: dict[str, str] = {}
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or not event.get("exception"):
            continue
        trace = [text.strip() for text in str(event["exception"]).strip().splitlines()]
        frames = [text for text in trace if text.startswith("File ")]
        where = (
            re.sub(r'^File ".*?/(strata_server/|site-packages/)', r"\1", frames[-1])
            if frames
            else ""
        )
        method = event.get("method", "?")
        found[str(event.get("request_id", ""))] = f"{trace[-1][:300]} ({where}) [{method}]"
    return found


def _report(tally: Tally, logged: dict[str, str]) -> str:
    """The offences by failure class: code, what the server logged, the RPCs it
    happened on, and a request or two as regression case literals."""
    for offence in tally.offences:
        offence.logged = logged.get(offence.request_id, "")
    classes = sorted(failure_classes(tally.offences).items(), key=lambda kv: -len(kv[1]))
    lines = [
        f"{len(tally.offences)} of {tally.requests} requests answered UNKNOWN/INTERNAL, "
        f"in {len(classes)} classes:"
    ]
    for (code, _shape), offences in classes:
        first = offences[0]
        methods = collections.Counter(o.path.rsplit("/", 1)[-1] for o in offences)
        lines.append(f"- {len(offences)}x {code}: {first.logged or first.details[:300]}")
        lines.append("    on " + ", ".join(f"{m} {n}" for m, n in methods.most_common()))
        for example in offences[:2]:
            lines.append(f"    e.g. {example.shown}")
            literal = example.literal
            if len(literal) > 2000:
                literal = f"{literal[:200]}... (too long to list)"
            lines.append(f"    case {literal}")
    unmatched = set(logged) - {offence.request_id for offence in tally.offences}
    if unmatched:
        lines.append(f"server log: {len(unmatched)} more tracebacks, of calls that got no")
        lines.append("UNKNOWN/INTERNAL (e.g. a cancelled stream):")
        lines += [f"    {text}" for text in sorted({logged[rid] for rid in unmatched})]
    return "\n".join(lines)


def _healthy(server_target: str) -> bool:
    with grpc.insecure_channel(server_target) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def _fuzz(method: Method, pools: Pools, sender: Sender, examples: int) -> None:
    """`examples` Hypothesis examples of CALLS_PER_EXAMPLE calls to one RPC. One run
    per RPC gives each the same share (within one run Hypothesis favours its first
    choices); answers are collected by `sender`, not asserted here, so Hypothesis
    never shrinks."""

    @seed(f"{SEED}:{method.path}")
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        for _ in range(CALLS_PER_EXAMPLE):
            sender.submit(data.draw(calls(method, pools), label=method.path))

    fuzz()


def test_every_rpc_is_covered(fuzz_target: Target) -> None:
    """Reflection lists every service the contract names, with every method this
    checkout's stubs know: an RPC the server serves but does not list would escape
    the fuzzer."""
    listed = {method.path for method in fuzz_target.methods}
    assert {path.split("/")[1] for path in listed} >= catalogue.SERVICES_EXPECTED
    assert listed >= catalogue.local_paths()


def test_hostile_requests(fuzz_target: Target, tallies: dict[str, tuple[Tally, float]]) -> None:
    """At least REQUESTS / 2 hostile calls to this shape, an even share to every RPC
    the server lists; see the module docstring for what must hold."""
    server = fuzz_target.server
    assert server.process is not None
    pid = server.process.pid
    pools = Pools(fuzz_target.known)
    per_shape = REQUESTS // len(SHAPES)
    methods = fuzz_target.methods

    with server.channel() as channel:
        before = seeding.snapshot(channel, SENTINEL_NAMESPACE)
    log_start = len(server.log())
    _reset_peak(pid)
    baseline = _status(pid)["VmRSS"]
    sender = Sender(server.target)
    started = time.monotonic()
    cpu = (time.process_time(), _cpu_seconds(pid))

    # One example more than the share: Hypothesis may end a run a few examples short.
    examples = per_shape // (len(methods) * CALLS_PER_EXAMPLE) + 1
    try:
        for method in methods:
            _fuzz(method, pools, sender, examples)
    finally:
        sender.close()
    tally = sender.tally
    shape = "sqlite" if server.database_url.startswith("sqlite") else "postgres"
    tally.cpu = (time.process_time() - cpu[0], _cpu_seconds(pid) - cpu[1])
    tallies[shape] = (tally, time.monotonic() - started)

    assert not tally.crashes, "the sender failed (a bug in the suite):\n" + "\n".join(
        tally.crashes[:20]
    )
    assert server.process.poll() is None, f"the server died:\n{server.log()[-5000:]}"
    assert _healthy(server.target)
    problems = []
    logged = _logged_errors(server.log()[log_start:])
    if any(tally.codes[code] for code in FORBIDDEN):
        problems.append(_report(tally, logged))
    growth_mb = tally.rss_growth_mb = (_status(pid)["VmHWM"] - baseline) / 1024
    if growth_mb > RSS_GROWTH_MB:
        problems.append(f"peak RSS grew {growth_mb:.0f} MiB while fuzzing (> {RSS_GROWTH_MB})")
    with server.channel() as channel:
        after = seeding.snapshot(channel, SENTINEL_NAMESPACE)
    for name in before:
        if before[name] != after[name]:
            problems.append(
                f"{SENTINEL_NAMESPACE} changed ({name}):\n"
                f"before: {text_format.MessageToString(before[name])}\n"
                f"after: {text_format.MessageToString(after[name])}"
            )
    if tally.requests < per_shape:
        problems.append(f"only {tally.requests} of {per_shape} requests were sent")
    assert not problems, "\n\n".join(problems)
