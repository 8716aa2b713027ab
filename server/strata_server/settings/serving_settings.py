"""How a server process serves: its addresses (gRPC, metrics, console), worker
processes and shutdown, how many calls it runs at once, HTTP/2 keepalive, how its
streams re-check and heartbeat, and its logs.

A group of `config.Settings` (see the package docstring).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator


class ServingSettings(BaseModel):
    """The settings of serving calls."""

    listen: str = Field(
        "127.0.0.1:50051", description="host:port to serve gRPC on; port 0 picks one"
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="server processes sharing the port (SO_REUSEPORT) under one supervisor "
        "(cli/worker_processes.py); more than one needs a fixed port and a database every "
        "process reaches",
    )
    grace_seconds: float = Field(5.0, ge=0, description="shutdown grace for in-flight RPCs")
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", description="uvloop served GetRecord 10-25% faster here than asyncio's loop"
    )
    max_streams: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="most RPCs this process runs at once (each holds an HTTP/2 stream: unary "
        "calls and long polls as much as server streams); one more is answered "
        "RESOURCE_EXHAUSTED (reason OVERLOADED) with a RetryInfo delay, counted and logged",
    )
    max_streams_per_connection: int = Field(
        2_000,
        ge=1,
        le=1_000_000,
        description="most RPCs one client connection runs at once; one more is answered "
        "RESOURCE_EXHAUSTED (reason OVERLOADED) with a RetryInfo delay. The server "
        "advertises twice this as HTTP/2 MAX_CONCURRENT_STREAMS: a gRPC client waits for a "
        "free stream beyond that, and one that ignores the setting is refused by the "
        "transport, so one connection can never hold more",
    )
    keepalive_time_seconds: float = Field(
        60.0,
        gt=0,
        le=7 * 24 * 3600,
        description="HTTP/2 keepalive: how long a connection stays silent before the server "
        "pings it; a client that does not answer within keepalive_timeout_seconds is "
        "disconnected and its RPCs end (streams of vanished clients do not stay open)",
    )
    keepalive_timeout_seconds: float = Field(
        20.0, gt=0, le=3600, description="HTTP/2 keepalive: how long a ping may go unanswered"
    )
    keepalive_permit_without_calls: bool = Field(
        False,
        description="HTTP/2 keepalive: ping (and accept clients' pings on) connections with "
        "no RPC in progress too",
    )
    overload_retry_seconds: float = Field(
        1.0,
        gt=0,
        le=300,
        description="the RetryInfo delay an RPC shed by max_streams or "
        "max_streams_per_connection carries",
    )
    stream_recheck_seconds: float = Field(
        300.0,
        ge=0,
        le=3600,
        description="how often a topic that streams wait on (a followed transcript, a "
        "watched collection) is re-checked in the database while wakeups flow, one query "
        "per topic however many streams share it: a safety net only, since writes wake "
        "their streams (0: never). While the events channel between replicas is down, "
        "topics are re-checked every second; so are queues holding jobs (for jobs coming "
        "due) and, on PostgreSQL, collections with changes waiting to settle",
    )
    transcript_heartbeat_seconds: float = Field(
        15.0,
        gt=0,
        le=3600,
        description="how long a following ReadTranscript stream stays silent before it "
        "sends a heartbeat",
    )
    metrics_listen: str | None = Field(
        None,
        description="port or host:port to serve Prometheus metrics on (/metrics); unset: off. "
        "A port alone binds loopback (127.0.0.1); any other interface must be named. "
        "With --workers N, worker i takes port + i",
    )
    console_listen: str | None = Field(
        "127.0.0.1:8080",
        description="host:port to serve the web console on over HTTP (docs/console.md), "
        "beside the gRPC port; off: not served. Port 0 picks one. When the address "
        "cannot be had, the server logs a warning and serves gRPC without the console",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    port_file: Path | None = Field(None, description="write the bound port here once serving")

    @field_validator("metrics_listen", mode="before")
    @classmethod
    def _metrics_on_loopback(cls, value: object) -> object:
        # A port alone (9464 or ":9464") means loopback: exposing the metrics on
        # another interface takes writing its address.
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.lstrip(":").isdigit():
            return f"127.0.0.1:{value.lstrip(':')}"
        return value

    @field_validator("console_listen", mode="before")
    @classmethod
    def _console_off(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none"):
            return None
        return value

    @field_validator("listen", "metrics_listen", "console_listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError("must be host:port, e.g. 127.0.0.1:50051")
        return value
