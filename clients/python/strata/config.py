"""Settings of a Client or AsyncClient: where to connect, defaults for every call,
and how transient failures are retried."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

__all__ = ["ClientConfig", "RetryPolicy"]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a call is retried after a transient failure.

    A call is retried after `UNAVAILABLE` when it is safe to send twice: reads
    always, writes only when they carry a `request_id` (the server then applies
    them once). After `ABORTED` with reason `CONCURRENT_MODIFICATION` every call is
    retried, because the server wrote nothing. Other errors are raised at once.
    """

    max_attempts: int = 4
    """Attempts in all, the first one included; 1 turns retries off."""
    initial_backoff: float = 0.05
    """Seconds to wait before the first retry."""
    max_backoff: float = 2.0
    """Upper bound, in seconds, of the wait before any one retry."""
    multiplier: float = 2.0
    """Factor by which the wait grows from one retry to the next."""
    jitter: float = 0.2
    """Fraction of each wait, from 0 to 1, taken off at random, so that clients
    which failed together do not all retry at the same moment."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 < self.initial_backoff <= self.max_backoff:
            raise ValueError("need 0 < initial_backoff <= max_backoff")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where a client connects and the defaults it applies to every call."""

    target: str = "127.0.0.1:50051"
    """The server's address as gRPC takes it: "host:port", "dns:///host:port", ..."""
    namespace: str = "default"
    """Tenant or workspace of every call that does not name one with `namespace=`."""
    timeout: float = 10.0
    """Deadline of each attempt of a call, in seconds."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """How transient failures are retried."""
    actor: str | None = None
    """Who is acting, sent as `x-strata-actor` metadata and written to the audit log."""
    credentials: grpc.ChannelCredentials | None = None
    """TLS credentials (`grpc.ssl_channel_credentials()`); None for a plaintext channel."""
    max_send_message_bytes: int = 16 * MiB
    """Largest request message the client sends."""
    max_receive_message_bytes: int = 16 * MiB
    """Largest response message the client accepts."""
    channel_options: tuple[tuple[str, str | int], ...] = ()
    """Further gRPC channel arguments, e.g. (("grpc.keepalive_time_ms", 30000),)."""

    def __post_init__(self) -> None:
        if not self.target:
            raise ValueError("target must not be empty")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")

    def grpc_options(self) -> list[tuple[str, str | int]]:
        """The channel arguments: message size limits, then `channel_options`."""
        return [
            ("grpc.max_send_message_length", self.max_send_message_bytes),
            ("grpc.max_receive_message_length", self.max_receive_message_bytes),
            *self.channel_options,
        ]

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata sent with every call."""
        return (("x-strata-actor", self.actor),) if self.actor else ()
