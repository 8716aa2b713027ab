"""Settings of a Client or AsyncClient: where to connect, with which credentials,
defaults for every call, and how transient failures are retried."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc

__all__ = ["ClientConfig", "RetryPolicy", "TLSConfig", "environment_tls"]

TOKEN_ENV = "STRATA_TOKEN"
"""The environment variable a client reads its bearer token from when given none."""
TLS_CA_ENV = "STRATA_TLS_CA"
"""The environment variable naming a PEM file of the authorities a client trusts
(turning TLS on) when given no TLS settings."""
CLIENT_CERT_ENV = "STRATA_CLIENT_CERT"
"""The environment variable naming the PEM certificate a client shows under mTLS
when given no TLS settings (with STRATA_CLIENT_KEY)."""
CLIENT_KEY_ENV = "STRATA_CLIENT_KEY"
"""The environment variable naming the PEM private key of STRATA_CLIENT_CERT."""

PEM = bytes | str | os.PathLike[str]
"""PEM material: the bytes themselves, or the path of a file holding them."""

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
class TLSConfig:
    """How a client speaks TLS to the server, and (for mTLS) which certificate it
    shows. Each PEM field takes the bytes themselves or a file's path; files are
    read when the client opens its channel.

        strata.Client("strata.internal:50051", tls=strata.TLSConfig("ca.pem"))
    """

    root_certificates: PEM | None = None
    """The authorities the server's certificate must chain to; None: the system's."""
    client_certificate: PEM | None = None
    """The client's certificate chain, for servers that require one (mTLS)."""
    client_key: PEM | None = field(default=None, repr=False)
    """The private key of `client_certificate`."""
    server_name: str | None = None
    """The name the server's certificate must carry, when it differs from the
    target's host (e.g. dialling an IP address)."""

    def __post_init__(self) -> None:
        if (self.client_certificate is None) != (self.client_key is None):
            raise ValueError("client_certificate and client_key go together")

    def credentials(self) -> grpc.ChannelCredentials:
        """The channel credentials; OSError when a file cannot be read."""
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.root_certificates),
            private_key=_pem(self.client_key),
            certificate_chain=_pem(self.client_certificate),
        )

    def channel_options(self) -> tuple[tuple[str, str], ...]:
        """Channel arguments that go with these credentials."""
        if self.server_name is None:
            return ()
        return (("grpc.ssl_target_name_override", self.server_name),)


def environment_tls(root_certificates: PEM | None = None) -> TLSConfig | None:
    """TLS settings from the environment, for a client given none: the
    authorities of `root_certificates` or $STRATA_TLS_CA, and the client
    certificate of $STRATA_CLIENT_CERT and $STRATA_CLIENT_KEY; None (plaintext)
    when none of them is set."""
    ca = root_certificates or os.environ.get(TLS_CA_ENV) or None
    cert = os.environ.get(CLIENT_CERT_ENV) or None
    key = os.environ.get(CLIENT_KEY_ENV) or None
    if ca is None and cert is None and key is None:
        return None
    if (cert is None) != (key is None):
        raise ValueError(f"${CLIENT_CERT_ENV} and ${CLIENT_KEY_ENV} go together")
    return TLSConfig(ca, cert, key)


def _pem(value: PEM | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


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
    token: str | None = field(default=None, repr=False)
    """Bearer token sent as `authorization: Bearer <token>` metadata on every call;
    None: $STRATA_TOKEN when set, else no token."""
    tls: TLSConfig | None = None
    """TLS settings; None: those of the environment (`environment_tls`) when set,
    else a plaintext channel (unless `credentials` is given)."""
    credentials: grpc.ChannelCredentials | None = None
    """Ready-made channel credentials (`grpc.ssl_channel_credentials()`), used
    instead of `tls`; None for a plaintext channel when `tls` is None too."""
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
        if self.token is not None and not (self.token.isascii() and self.token.isprintable()):
            raise ValueError("token must be printable ASCII (as gRPC metadata carries it)")

    def grpc_options(self) -> list[tuple[str, str | int]]:
        """The channel arguments: message size limits, TLS's, then `channel_options`."""
        return [
            ("grpc.max_send_message_length", self.max_send_message_bytes),
            ("grpc.max_receive_message_length", self.max_receive_message_bytes),
            *(self.tls.channel_options() if self.tls is not None else ()),
            *self.channel_options,
        ]

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """The channel's credentials: `credentials`, else those of `tls`, else None
        (plaintext)."""
        if self.credentials is not None:
            return self.credentials
        return self.tls.credentials() if self.tls is not None else None

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata sent with every call: the bearer token and the actor."""
        metadata: list[tuple[str, str]] = []
        if self.token:
            metadata.append(("authorization", f"Bearer {self.token}"))
        if self.actor:
            metadata.append(("x-strata-actor", self.actor))
        return tuple(metadata)

    def with_environment(self) -> ClientConfig:
        """This configuration with what it leaves unset taken from the environment:
        the token from $STRATA_TOKEN, TLS from $STRATA_TLS_CA (and a client
        certificate from $STRATA_CLIENT_CERT / $STRATA_CLIENT_KEY)."""
        token = self.token or os.environ.get(TOKEN_ENV, "").strip() or None
        tls = self.tls
        if tls is None and self.credentials is None:
            tls = environment_tls()
        if token == self.token and tls is self.tls:
            return self
        return replace(self, token=token, tls=tls)
