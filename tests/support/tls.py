"""Real certificates for TLS tests, from throwaway authorities (trustme), written to
PEM files as an operator would hold them; and TLS servers of either shape."""

from __future__ import annotations

import socket
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.support.server import StrataProcess


@dataclass(frozen=True)
class KeyPair:
    """A certificate chain and its private key, as PEM files."""

    cert: Path
    key: Path


class Authority:
    """A certificate authority whose certificates are written under `directory`."""

    def __init__(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.name = name
        self._ca = trustme.CA(organization_name=f"Strata tests {name}")
        self.ca_file = directory / f"{name}-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_file))

    def server(self, file_name: str = "server") -> KeyPair:
        """A server certificate for 127.0.0.1 and localhost."""
        return self._write(file_name, self._ca.issue_cert("127.0.0.1", "localhost"))

    def client(self, common_name: str, organization: str, unit: str) -> KeyPair:
        """A client certificate whose subject is CN=<common_name>,OU=<unit>,O=<organization>
        (RFC 4514 order)."""
        issued = self._ca.issue_cert(
            f"{common_name}.clients.test",
            common_name=common_name,
            organization_name=organization,
            organization_unit_name=unit,
        )
        return self._write(f"client-{common_name}", issued)

    def _write(self, file_name: str, issued: trustme.LeafCert) -> KeyPair:
        pair = KeyPair(
            self.directory / f"{self.name}-{file_name}.pem",
            self.directory / f"{self.name}-{file_name}.key",
        )
        pair.cert.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
        pair.key.write_bytes(issued.private_key_pem.bytes())
        return pair


def served_certificate(port: int, ca_file: Path | None = None) -> bytes:
    """The DER certificate a new TLS connection to 127.0.0.1:`port` is shown; with
    `ca_file`, the handshake checks it against that authority (ssl.SSLError if it
    does not vouch for it), else it is only read."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if ca_file is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as connection,
    ):
        served = connection.getpeercert(binary_form=True)
    assert served is not None
    return served


def der(pair: KeyPair) -> bytes:
    """The DER form of `pair`'s own (first) certificate."""
    first = pair.cert.read_text().split("-----END CERTIFICATE-----")[0]
    return ssl.PEM_cert_to_DER_cert(first + "-----END CERTIFICATE-----\n")


def shape_server_factory(
    request: pytest.FixtureRequest, database_url: Callable[[str], str], workdir: Path
) -> Callable[..., StrataProcess]:
    """Makes (unstarted) servers of the shape `request.param` ("sqlite" or
    "postgres", as the session `server` fixture builds them) with extra settings."""

    def make(name: str, **env: str) -> StrataProcess:
        shape = request.param
        settings = {"STRATA_CLEANUP_INTERVAL_SECONDS": "3600", **env}
        if shape == "postgres":
            settings["STRATA_REDIS_URL"] = request.getfixturevalue("redis").url
            settings.update(request.getfixturevalue("s3").env(f"strata-{uuid.uuid4().hex[:12]}"))
        return StrataProcess(database_url(shape), workdir / name, **settings)

    return make
