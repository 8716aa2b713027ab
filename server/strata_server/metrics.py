"""Prometheus metrics of one server process, served over HTTP on their own port.

What is measured: every RPC by method and status code (a count and a latency
histogram), the server streams open now, and whatever gauges the running server
registers with `gauge_source` (database pool use, queue depth and age). The
`unary`/`streaming` wrappers of `api.status_codes` (every servicer method runs in one)
record the RPCs, so there is no interceptor layer in the hot path.

The registry is this module's own (not prometheus_client's global default), so
tests can start servers in one process without metrics colliding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # RSS, CPU, open files of this process

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)

RPCS = Counter(
    "strata_rpcs", "RPCs finished, by method and status code", ["method", "code"], registry=REGISTRY
)
RPC_SECONDS = Histogram(
    "strata_rpc_duration_seconds",
    "Time from the start of an RPC's handler to its end, by method and status code",
    ["method", "code"],
    buckets=_BUCKETS,
    registry=REGISTRY,
)
ACTIVE_STREAMS = Gauge(
    "strata_active_streams", "Server streams open now, by method", ["method"], registry=REGISTRY
)

RPCS_SHED = Counter(
    "strata_rpcs_shed",
    "RPCs refused with RESOURCE_EXHAUSTED because the server ran its most RPCs at once, "
    "by the limit reached (total or connection); also counted in strata_rpcs_total",
    ["limit"],
    registry=REGISTRY,
)

# Resolving labels takes a lock and a dict lookup in prometheus_client; a finished
# RPC looks its (method, code) pair up here first.
_children: dict[tuple[str, str], tuple[Any, Any]] = {}


def rpc_finished(method: str, code: str, seconds: float) -> None:
    """Count one finished RPC and its duration."""
    key = (method, code)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (
            RPCS.labels(method, code),
            RPC_SECONDS.labels(method, code),
        )
    children[0].inc()
    children[1].observe(seconds)


def rpc_shed(limit: str) -> None:
    """Count one RPC shed by admission (`limit`: "total" or "connection")."""
    RPCS_SHED.labels(limit).inc()


def stream_gauge(method: str) -> Any:
    """The open-streams gauge of one method (inc on open, dec on close)."""
    return ACTIVE_STREAMS.labels(method)


GaugeSamples = Iterable[tuple[Mapping[str, str], float]]


class _Source(Collector):
    """A gauge family whose samples `read` returns at scrape time."""

    def __init__(
        self, name: str, documentation: str, labels: list[str], read: Callable[[], GaugeSamples]
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labels = labels
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(self._name, self._documentation, labels=self._labels)
        for labels, value in self._read():
            family.add_metric([labels[name] for name in self._labels], value)
        yield family

    def describe(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(self._name, self._documentation, labels=self._labels)


_sources: dict[str, _Source] = {}


def gauge_source(
    name: str, documentation: str, labels: list[str], read: Callable[[], GaugeSamples]
) -> None:
    """Publish gauge `name`, read at every scrape by `read` (which must not block:
    it returns figures kept up to date elsewhere). Publishing a name again replaces
    its reader (a server started anew in the same process)."""
    if name in _sources:
        _sources[name]._read = read
        return
    source = _sources[name] = _Source(name, documentation, labels, read)
    REGISTRY.register(source)


def serve(host: str, port: int) -> int:
    """Serve /metrics on host:port from a daemon thread; returns the bound port."""
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return int(server.server_port)


CLEANUP_RUNS = Counter(
    "strata_cleanup_runs",
    "Cleanup runs this process made, by trigger (scheduler or rpc), dry run and result",
    ["trigger", "dry_run", "result"],
    registry=REGISTRY,
)
CLEANUP_REMOVED = Counter(
    "strata_cleanup_removed",
    "Items cleanup runs of this process removed (idle_transcripts: sealed), by target",
    ["target"],
    registry=REGISTRY,
)
CLEANUP_LAST_SUCCESS = Gauge(
    "strata_cleanup_last_success_timestamp_seconds",
    "When a cleanup run (not a dry run) of this process last finished without error",
    registry=REGISTRY,
)
CLEANUP_LEADER = Gauge(
    "strata_cleanup_leader",
    "1 while this process holds the cleanup lock, so runs the scheduled cleanup passes",
    registry=REGISTRY,
)
CLEANUP_IN_PROGRESS = Gauge(
    "strata_cleanup_in_progress",
    "1 while a scheduled cleanup pass runs on this process",
    registry=REGISTRY,
)
CLEANUP_LAST_DURATION = Gauge(
    "strata_cleanup_last_duration_seconds",
    "How long the last scheduled cleanup pass of this process took",
    registry=REGISTRY,
)
INTEGRITY_PROBLEMS = Gauge(
    "strata_integrity_problems",
    "Problems the last integrity check of this process left unrepaired, by check",
    ["check"],
    registry=REGISTRY,
)
INTEGRITY_LAST_RUN = Gauge(
    "strata_integrity_last_run_timestamp_seconds",
    "When an integrity check of this process last finished",
    registry=REGISTRY,
)
INTEGRITY_UNREFERENCED_BYTES = Gauge(
    "strata_integrity_unreferenced_blob_bytes",
    "Stored bytes of blobs no artifact references, as the last integrity check of every "
    "namespace by this process found them",
    registry=REGISTRY,
)
BACKUP_LAST_SUCCESS = Gauge(
    "strata_backup_last_success_timestamp_seconds",
    "When a scheduled backup of this process last finished",
    registry=REGISTRY,
)
