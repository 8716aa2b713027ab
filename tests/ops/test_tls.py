"""TLS and mTLS on the gRPC port, on both shapes, with real certificates from test
authorities: who gets in, what a client certificate's subject is allowed to be,
and certificate reload on SIGHUP without dropping connections."""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

import strata
from strata.v1 import admin_pb2, admin_pb2_grpc, records_pb2, records_pb2_grpc
from tests.conftest import SHAPES
from tests.contract.helpers import details_of, to_struct
from tests.ops.test_migrations import strata as strata_cli
from tests.security.support import Bearer, cli_token
from tests.support.server import StrataProcess
from tests.support.tls import (
    Authority,
    KeyPair,
    der,
    served_certificate,
    shape_server_factory,
)

ROOT = Path(__file__).resolve().parents[2]
ONCE = strata.RetryPolicy(max_attempts=1)

BILLING = "CN=billing,OU=payments,O=acme"
DEPLOYER = "O = acme, OU = ops, CN = deployer"  # as `openssl x509 -noout -subject` prints it


@dataclass(frozen=True)
class Pki:
    trusted: Authority
    other: Authority
    server: KeyPair
    billing: KeyPair  # a principal, written in RFC 4514 order in the config
    deployer: KeyPair  # a principal, written in openssl's order
    stranger: KeyPair  # trusted, but no principal names it
    forged: KeyPair  # billing's subject, from an authority the server does not trust


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    trusted, other = Authority(root, "trusted"), Authority(root, "other")
    return Pki(
        trusted,
        other,
        server=trusted.server(),
        billing=trusted.client("billing", "acme", "payments"),
        deployer=trusted.client("deployer", "acme", "ops"),
        stranger=trusted.client("stranger", "acme", "nowhere"),
        forged=other.client("billing", "acme", "payments"),
    )


@pytest.fixture(scope="module", params=SHAPES)
def make_server(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., StrataProcess]:
    return shape_server_factory(request, database_url, tmp_path_factory.mktemp("tls"))


def _tls_env(pki: Pki, *, mutual: bool = False) -> dict[str, str]:
    env = {"STRATA_TLS_CERT": str(pki.server.cert), "STRATA_TLS_KEY": str(pki.server.key)}
    if mutual:
        env["STRATA_TLS_CLIENT_CA"] = str(pki.trusted.ca_file)
    return env


@pytest.fixture(scope="module")
def tls_server(make_server: Callable[..., StrataProcess], pki: Pki) -> Iterator[StrataProcess]:
    """A server on TLS only (no client certificates asked)."""
    process = make_server("tls", **_tls_env(pki))
    process.start()
    yield process
    process.stop()


def _principals_config(directory: Path) -> Path:
    """A configuration file naming two principals: billing, a writer of "billing";
    deployer, an admin of every namespace."""
    config = directory / "strata.toml"
    config.write_text(
        f'[principals."{BILLING}"]\nrole = "writer"\nnamespaces = ["billing"]\n\n'
        f'[principals."{DEPLOYER}"]\nrole = "admin"\nnamespaces = ["*"]\n'
    )
    return config


@pytest.fixture(scope="module")
def mtls_server(
    make_server: Callable[..., StrataProcess], pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StrataProcess]:
    """A server that requires client certificates, with two principals configured
    (under `--auth none`)."""
    config = _principals_config(tmp_path_factory.mktemp("mtls-config"))
    process = make_server("mtls", STRATA_CONFIG=str(config), **_tls_env(pki, mutual=True))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def mtls_token_server(
    make_server: Callable[..., StrataProcess], pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StrataProcess]:
    """The same under `--auth token`: a principal's certificate or a bearer token."""
    config = _principals_config(tmp_path_factory.mktemp("mtls-token-config"))
    process = make_server(
        "mtls-token", STRATA_CONFIG=str(config), STRATA_AUTH="token", **_tls_env(pki, mutual=True)
    )
    process.start()
    yield process
    process.stop()


def _tls(pki: Pki, client: KeyPair | None = None, ca: Path | None = None) -> strata.TLSConfig:
    return strata.TLSConfig(
        root_certificates=ca or pki.trusted.ca_file,
        client_certificate=client.cert if client else None,
        client_key=client.key if client else None,
    )


# --- TLS -------------------------------------------------------------------------


def test_a_client_trusting_the_ca_gets_in_and_a_plaintext_one_does_not(
    tls_server: StrataProcess, pki: Pki
) -> None:
    with strata.Client(tls_server.target, tls=_tls(pki)) as client:
        created = client.create_record("tls", {"over": "tls"})
        assert client.get_record("tls", created.id).data == {"over": "tls"}

    with (
        strata.Client(tls_server.target, retry=ONCE, timeout=5) as plaintext,
        pytest.raises(strata.Unavailable),
    ):
        plaintext.get_record("tls", created.id)
    untrusting = _tls(pki, ca=pki.other.ca_file)
    with (
        strata.Client(tls_server.target, tls=untrusting, retry=ONCE, timeout=5) as client,
        pytest.raises(strata.Unavailable),
    ):
        client.get_record("tls", created.id)


def test_the_client_helpers_run_over_tls(tls_server: StrataProcess, pki: Pki) -> None:
    queue = f"q_{uuid.uuid4().hex[:8]}"
    with strata.Client(tls_server.target, tls=_tls(pki)) as client:
        # transfers
        artifact = client.upload(io.BytesIO(b"log line\n" * 1000), owner="ci", kind="log")
        into = io.BytesIO()
        client.download(artifact.id, into)
        assert into.getvalue() == b"log line\n" * 1000
        # follow
        transcript = client.create_transcript()
        client.append(transcript.id, "hello", role="user")
        client.seal_transcript(transcript.id)
        assert [entry.content for entry in client.follow(transcript.id)] == ["hello"]
        # the worker, its heartbeat and acks
        client.batch_enqueue(queue, [{"n": n} for n in range(3)])
        stop, seen = threading.Event(), []

        def handler(job: strata.Job) -> None:
            seen.append(job.payload["n"])
            if len(seen) == 3:
                stop.set()

        client.queue(queue).work(handler, stop=stop, wait=timedelta(seconds=1))
        assert sorted(seen) == [0, 1, 2]
        # a subscription
        client.enqueue(queue, {"n": 3})
        with client.queue(queue).subscribe() as jobs:
            job = next(iter(jobs))
            assert jobs.ack(job).state == "completed"


def test_the_async_client_and_its_helpers_run_over_tls(tls_server: StrataProcess, pki: Pki) -> None:
    async def main() -> None:
        async with strata.AsyncClient(tls_server.target, tls=_tls(pki)) as client:
            artifact = await client.upload(io.BytesIO(b"async bytes"), owner="ci", kind="log")
            into = io.BytesIO()
            await client.download(artifact.id, into)
            assert into.getvalue() == b"async bytes"
            transcript = await client.create_transcript()
            await client.append(transcript.id, "hi", role="user")
            await client.seal_transcript(transcript.id)
            assert [entry.content async for entry in client.follow(transcript.id)] == ["hi"]

    asyncio.run(main())


def test_the_environment_names_the_authority(
    tls_server: StrataProcess, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATA_TLS_CA", str(pki.trusted.ca_file))
    with strata.Client(tls_server.target) as client:
        assert client.config.tls == strata.TLSConfig(str(pki.trusted.ca_file))
        assert client.server_info().version


def test_the_cli_connects_with_tls_ca(tls_server: StrataProcess, pki: Pki, tmp_path: Path) -> None:
    plain = strata_cli("usage", "--server", tls_server.target, cwd=tmp_path)
    assert plain.returncode == 2 and plain.stderr.startswith("strata: cannot reach the server")
    flag = strata_cli(
        "usage", "--server", tls_server.target, "--tls-ca", str(pki.trusted.ca_file), cwd=tmp_path
    )
    assert flag.returncode == 0, flag.stderr
    env = strata_cli(
        "usage", "--server", tls_server.target, cwd=tmp_path, STRATA_TLS_CA=str(pki.trusted.ca_file)
    )
    assert env.returncode == 0, env.stderr
    missing = strata_cli(
        "usage", "--server", tls_server.target, "--tls-ca", str(tmp_path / "nope.pem"), cwd=tmp_path
    )
    assert missing.returncode == 2 and "nope.pem" in missing.stderr


# --- mTLS ------------------------------------------------------------------------


def test_mtls_refuses_no_certificate_and_an_untrusted_one(
    mtls_server: StrataProcess, pki: Pki
) -> None:
    for tls in (_tls(pki), _tls(pki, pki.forged)):
        with (
            strata.Client(mtls_server.target, tls=tls, retry=ONCE, timeout=5) as client,
            pytest.raises(strata.Unavailable),
        ):
            client.server_info()
    with strata.Client(mtls_server.target, tls=_tls(pki, pki.stranger)) as client:
        assert client.server_info().version  # trusted: in, as no principal


def _audit_actor(target: str, pki: Pki, namespace: str, record_id: str) -> str:
    credentials = _tls(pki, pki.deployer).credentials()
    with grpc.secure_channel(target, credentials) as channel:
        found = admin_pb2_grpc.AdminServiceStub(channel).ListAuditEntries(
            admin_pb2.ListAuditEntriesRequest(namespace=namespace, entity_id=f"mtls/{record_id}")
        )
    [entry] = found.entries
    return entry.actor


def test_a_certificate_subject_is_its_principal(mtls_server: StrataProcess, pki: Pki) -> None:
    """Under `--auth none` the principal named by the certificate's subject is the
    audit actor, the claimed actor only a sub-actor; a trusted certificate no
    principal names is anonymous, as every caller is then. (Its role and namespaces
    under `--auth token`: the tests after `test_grpcurl_with_cacert_cert_and_key`.)"""
    expected = {
        pki.billing: f"{BILLING} (claims: alice)",
        pki.deployer: f"{DEPLOYER} (claims: alice)",  # matched in either order
        pki.stranger: "alice",  # no principal: as under --auth none
    }
    for certificate, actor in expected.items():
        with strata.Client(
            mtls_server.target, tls=_tls(pki, certificate), actor="alice", namespace="billing"
        ) as client:
            record = client.create_record("mtls", {"by": certificate.cert.name})
        assert _audit_actor(mtls_server.target, pki, "billing", record.id) == actor


def test_grpcurl_with_cacert_cert_and_key(mtls_server: StrataProcess, pki: Pki) -> None:
    grpcurl = str(ROOT / ".venv" / "bin" / "grpcurl")
    common = ["-cacert", str(pki.trusted.ca_file)]
    certificate = ["-cert", str(pki.billing.cert), "-key", str(pki.billing.key)]
    listed = subprocess.run(
        [grpcurl, *common, *certificate, mtls_server.target, "list"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert listed.returncode == 0, listed.stderr
    assert "strata.v1.RecordService" in listed.stdout.split()
    refused = subprocess.run(
        [grpcurl, *common, mtls_server.target, "list"], capture_output=True, text=True, timeout=30
    )
    assert refused.returncode != 0


# --- mTLS with --auth token -------------------------------------------------------


def _mtls_channel(target: str, pki: Pki, client: KeyPair, token: str | None = None) -> grpc.Channel:
    """A channel presenting `client`'s certificate, and `token` (if any) as a bearer."""
    channel = grpc.secure_channel(target, _tls(pki, client).credentials())
    return grpc.intercept_channel(channel, Bearer(token)) if token else channel


def _create(channel: grpc.Channel, namespace: str) -> records_pb2.Record:
    return records_pb2_grpc.RecordServiceStub(channel).CreateRecord(
        records_pb2.CreateRecordRequest(
            namespace=namespace,
            collection="mtls",
            record_id=uuid.uuid4().hex,
            data=to_struct({"by": "certificate"}),
        ),
        timeout=10,
    )


def _refused(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def test_under_token_auth_a_principals_certificate_needs_no_token(
    mtls_token_server: StrataProcess, pki: Pki
) -> None:
    with _mtls_channel(mtls_token_server.target, pki, pki.billing) as channel:
        record = _create(channel, "billing")
    assert _audit_actor(mtls_token_server.target, pki, "billing", record.id) == BILLING
    with _mtls_channel(mtls_token_server.target, pki, pki.deployer) as channel:
        usage = admin_pb2_grpc.AdminServiceStub(channel).GetUsage(
            admin_pb2.GetUsageRequest(namespace="billing"), timeout=10
        )
    assert usage is not None  # an admin principal: AdminService with no token either


def test_under_token_auth_a_certificate_keeps_to_its_principals_namespaces_and_role(
    mtls_token_server: StrataProcess, pki: Pki
) -> None:
    with _mtls_channel(mtls_token_server.target, pki, pki.billing) as channel:
        elsewhere = _refused(lambda: _create(channel, "payroll"))
        assert elsewhere.code() == grpc.StatusCode.PERMISSION_DENIED
        info, _ = details_of(elsewhere)
        assert (info.reason, info.metadata["namespace"]) == ("NAMESPACE_NOT_ALLOWED", "payroll")

        admin = admin_pb2_grpc.AdminServiceStub(channel)
        above = _refused(
            lambda: admin.GetUsage(admin_pb2.GetUsageRequest(namespace="billing"), timeout=10)
        )
        assert above.code() == grpc.StatusCode.PERMISSION_DENIED
        info, _ = details_of(above)
        assert (info.reason, info.metadata["role"]) == ("ROLE_REQUIRED", "admin")


def test_under_token_auth_a_certificate_no_principal_names_needs_a_token(
    mtls_token_server: StrataProcess, pki: Pki
) -> None:
    with _mtls_channel(mtls_token_server.target, pki, pki.stranger) as channel:
        refused = _refused(lambda: _create(channel, "billing"))
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    info, _ = details_of(refused)
    assert info.reason == "UNAUTHENTICATED"

    # With a token it is only a TLS client: the token's name acts.
    name = f"stranger-{uuid.uuid4().hex[:8]}"
    secret = cli_token(mtls_token_server.database_url, name, "writer", "billing")
    with _mtls_channel(mtls_token_server.target, pki, pki.stranger, secret) as channel:
        record = _create(channel, "billing")
    assert _audit_actor(mtls_token_server.target, pki, "billing", record.id) == name


# --- reload on SIGHUP ------------------------------------------------------------


def _wait_for_certificate(port: int, wanted: bytes) -> bytes:
    """The certificate new connections are shown, once it is `wanted` (or after a
    while: the reload runs when the server's loop gets to the signal)."""
    deadline = time.monotonic() + 15
    while True:
        served = served_certificate(port)
        if served == wanted or time.monotonic() > deadline:
            return served
        time.sleep(0.05)


def test_sighup_reloads_the_certificate_and_keeps_connections(
    make_server: Callable[..., StrataProcess], tmp_path: Path
) -> None:
    old_ca, new_ca = Authority(tmp_path, "old"), Authority(tmp_path, "new")
    first, renewed = old_ca.server(), new_ca.server()
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    cert.write_bytes(first.cert.read_bytes())
    key.write_bytes(first.key.read_bytes())
    process = make_server("reload", STRATA_TLS_CERT=str(cert), STRATA_TLS_KEY=str(key))
    process.start()
    assert process.process is not None
    try:
        old_tls = strata.TLSConfig(old_ca.ca_file)
        with strata.Client(process.target, tls=old_tls, retry=ONCE) as existing:
            before = existing.create_record("reload", {"n": 1})
            assert served_certificate(process.port, old_ca.ca_file) == der(first)

            # A botched renewal (the key of another certificate) is refused and
            # the current certificate stays.
            key.write_bytes(renewed.key.read_bytes())
            process.process.send_signal(signal.SIGHUP)
            _wait_for_log(process, "tls certificates not reloaded")
            assert served_certificate(process.port, old_ca.ca_file) == der(first)

            cert.write_bytes(renewed.cert.read_bytes())
            process.process.send_signal(signal.SIGHUP)
            assert _wait_for_certificate(process.port, der(renewed)) == der(renewed)

            # The channel opened before the reload still works on its connection...
            assert existing.get_record("reload", before.id).data == {"n": 1}
            # ...while a new connection must trust the new authority.
            with strata.Client(process.target, tls=strata.TLSConfig(new_ca.ca_file)) as fresh:
                assert fresh.get_record("reload", before.id).data == {"n": 1}
            with (
                strata.Client(process.target, tls=old_tls, retry=ONCE, timeout=5) as stale,
                pytest.raises(strata.Unavailable),
            ):
                stale.get_record("reload", before.id)
    finally:
        assert process.stop() == 0


def _wait_for_log(process: StrataProcess, text: str) -> None:
    deadline = time.monotonic() + 15
    while text not in process.log():
        assert time.monotonic() < deadline, process.log()
        time.sleep(0.05)


def test_sighup_without_tls_keeps_serving(tmp_path: Path) -> None:
    process = StrataProcess("sqlite://:memory:", tmp_path / "plain", STRATA_LOG_LEVEL="info")
    process.start()
    assert process.process is not None
    try:
        process.process.send_signal(signal.SIGHUP)
        _wait_for_log(process, "no TLS certificates to reload")
        with strata.Client(process.target) as client:
            assert client.server_info().version
    finally:
        assert process.stop() == 0


def test_unusable_certificate_files_stop_the_start_with_one_line(pki: Pki, tmp_path: Path) -> None:
    serve = ("serve", "--listen", "127.0.0.1:0", "--database-url", "sqlite://:memory:")
    missing = strata_cli(
        *serve,
        "--tls-cert",
        str(tmp_path / "none.pem"),
        "--tls-key",
        str(pki.server.key),
        cwd=tmp_path,
    )
    assert missing.returncode == 2
    assert (
        missing.stderr.startswith("strata: cannot use the certificate")
        and "none.pem" in missing.stderr
    )
    mismatched = strata_cli(
        *serve,
        "--tls-cert",
        str(pki.server.cert),
        "--tls-key",
        str(pki.billing.key),
        cwd=tmp_path,
    )
    assert mismatched.returncode == 2
    assert mismatched.stderr.startswith("strata: cannot use the certificate")
    assert "Traceback" not in mismatched.stderr
    alone = strata_cli(*serve, "--tls-cert", str(pki.server.cert), cwd=tmp_path)
    assert alone.returncode == 2 and "tls_cert and tls_key go together" in alone.stderr
