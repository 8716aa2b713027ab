"""TLS and mTLS on the gRPC port: server credentials whose certificates can be
replaced without a restart, and the principal a client certificate names.

Why dynamic credentials: gRPC asks `ServerCertificates._fetch` for a new
certificate configuration before each new connection's handshake. `reload`
(SIGHUP) reads and checks the files and leaves the result for the next fetch, so
new connections get the new certificate while established ones, whose handshake
is done, go on undisturbed. Files that fail the checks are logged and the
current certificates kept: a botched renewal never takes a serving port down.
"""

from __future__ import annotations

import functools
import ssl
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

import grpc
import grpc.aio
import structlog

from strata_server.core import subjects
from strata_server.core.access_rules import Principal
from strata_server.core.values import frozen

log = structlog.get_logger("strata.tls")

CertificateAuthenticator = Callable[[grpc.aio.ServicerContext[object, object]], Principal | None]
"""Reads a call's verified client certificate: the principal it names, or None."""


class TlsError(Exception):
    """A certificate, key or authority file cannot be used; the message says which
    and why."""


@frozen
class TlsFiles:
    """Where the server's TLS material lives (PEM files)."""

    cert: Path
    """The server's certificate chain, its own certificate first."""
    key: Path
    """The private key of `cert`."""
    client_ca: Path | None = None
    """Authorities whose client certificates are accepted; set, one is required."""


def read_configuration(files: TlsFiles) -> grpc.ServerCertificateConfiguration:
    """The files as a gRPC certificate configuration, after checking that each
    parses and that the key belongs to the certificate (gRPC itself would only
    fail the handshakes); TlsError otherwise."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as error:
        raise TlsError(
            f"cannot use the certificate {files.cert} with the key {files.key}: {_reason(error)}"
        ) from None
    client_ca = None
    if files.client_ca is not None:
        try:
            context.load_verify_locations(cafile=files.client_ca)
        except (OSError, ssl.SSLError) as error:
            raise TlsError(
                f"cannot use the client authorities in {files.client_ca}: {_reason(error)}"
            ) from None
        client_ca = _read(files.client_ca)
    return grpc.ssl_server_certificate_configuration(
        [(_read(files.key), _read(files.cert))], root_certificates=client_ca
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise TlsError(f"cannot read {path}: {_reason(error)}") from None


_SSL_REASONS = {
    "KEY_VALUES_MISMATCH": "the key does not belong to the certificate",
    "PEM lib": "not PEM (a certificate or key between -----BEGIN and -----END lines)",
    "NO_START_LINE": "not PEM (a certificate or key between -----BEGIN and -----END lines)",
    "NO_CERTIFICATE_OR_CRL_FOUND": "no PEM certificate found",
}
"""OpenSSL's reasons, as an operator would put them."""


def _reason(error: OSError | ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLError):
        reason = error.reason or ("PEM lib" if "PEM lib" in str(error) else "")
        return _SSL_REASONS.get(reason, reason or str(error))
    return error.strerror or str(error)


class ServerCertificates:
    """The gRPC port's certificates: read at start, re-read by `reload`."""

    def __init__(self, files: TlsFiles) -> None:
        """Reads the files now; TlsError when they cannot be used."""
        self.files = files
        self._initial = read_configuration(files)
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._lock = threading.Lock()  # _fetch runs on gRPC's threads

    @property
    def mutual(self) -> bool:
        """Whether clients must present a certificate (mTLS)."""
        return self.files.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        """Credentials for `server.add_secure_port`, served from these certificates."""
        # The fetcher may return None (keep the current configuration), which
        # the grpc stubs leave out of its type.
        fetch = cast(Callable[[], grpc.ServerCertificateConfiguration], self._fetch)
        return grpc.dynamic_ssl_server_credentials(
            self._initial, fetch, require_client_authentication=self.mutual
        )

    def reload(self) -> bool:
        """Re-read the files for the connections made from now on; whether they
        could be used (if not, the error is logged and the current ones stay)."""
        try:
            configuration = read_configuration(self.files)
        except TlsError as error:
            log.error(
                "tls certificates not reloaded; still serving the previous ones", error=str(error)
            )
            return False
        with self._lock:
            self._pending = configuration
        log.info("tls certificates reloaded", cert=str(self.files.cert))
        return True

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's question before each handshake: a new configuration, once after
        a reload, else None (keep the current one)."""
        with self._lock:
            configuration, self._pending = self._pending, None
        return configuration


def certificate_principal(principals: Iterable[Principal]) -> CertificateAuthenticator:
    """The function that tells the principal of a call from its verified client
    certificate: the one whose name is the certificate's subject (as the
    configuration writes it, in either order; see core.subjects), or None for a
    call without a certificate or with a subject no principal names.

    Only certificates gRPC verified against the client authorities reach the
    auth context, so the subject can be trusted as the authority issued it."""
    by_subject: dict[subjects.Subject, Principal] = {}
    for principal in principals:
        for key in subjects.keys(principal.name):
            by_subject.setdefault(key, principal)

    @functools.lru_cache(maxsize=1024)
    def lookup(subject: str) -> Principal | None:
        try:
            return by_subject.get(subjects.parse(subject))
        except ValueError:
            return None

    def authenticate(context: grpc.aio.ServicerContext[object, object]) -> Principal | None:
        auth = context.auth_context()
        subject = next(iter(auth.get("x509_subject", ())), None)
        if subject:
            return lookup(subject.decode(errors="replace"))
        common_name = next(iter(auth.get("x509_common_name", ())), None)
        if common_name:
            name = common_name.decode(errors="replace")
            return lookup("CN=" + name.replace("\\", "\\\\").replace(",", "\\,"))
        return None

    return authenticate
