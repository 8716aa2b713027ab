"""The bearer token reaches the server on every call of the clients, their helpers
(worker, subscription, follow, transfers) and the `strata` client commands: seen on
the wire by a recording proxy in front of a real server, on both shapes.

Whether the server accepts the token is the auth tests' business; this is about
what the clients send."""

from __future__ import annotations

import asyncio
import io
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import strata
from tests.ops.test_migrations import strata as strata_cli
from tests.support.recording_proxy import RecordingProxy
from tests.support.server import StrataProcess

SERVICE = "/strata.v1."


@pytest.fixture
def proxy(server: StrataProcess) -> Iterator[RecordingProxy]:
    recording = RecordingProxy(server.target)
    yield recording
    recording.close()


def _authorizations(proxy: RecordingProxy) -> dict[str, set[str | None]]:
    """Each strata.v1 method called, and the authorization values it carried."""
    seen: dict[str, set[str | None]] = {}
    for method, metadata in proxy.calls:
        if method.startswith(SERVICE):
            seen.setdefault(method.rsplit("/", 1)[1], set()).add(metadata.get("authorization"))
    return seen


def test_every_call_of_the_client_and_its_helpers_carries_the_token(
    proxy: RecordingProxy,
) -> None:
    queue = f"q_{uuid.uuid4().hex[:8]}"
    with strata.Client(proxy.target, token="sync-secret") as client:
        created = client.create_record("creds", {"a": 1})
        assert [r.id for r in client.list_records("creds", page_size=1)]
        assert client.get_record("creds", created.id).data == {"a": 1}
        artifact = client.upload(io.BytesIO(b"x" * 3000), owner="ci", kind="log")
        client.download(artifact.id, io.BytesIO())
        transcript = client.create_transcript()
        client.append(transcript.id, "hello", role="user")
        client.seal_transcript(transcript.id)
        assert [entry.content for entry in client.follow(transcript.id)] == ["hello"]
        client.enqueue(queue, {"n": 0})
        stop = threading.Event()
        client.queue(queue).work(lambda job: stop.set(), stop=stop, wait=timedelta(seconds=1))
        client.enqueue(queue, {"n": 1})
        with client.queue(queue).subscribe() as jobs:
            jobs.ack(next(iter(jobs)))

    seen = _authorizations(proxy)
    for method in (
        "CreateRecord",
        "ListRecords",
        "GetRecord",
        "UploadArtifact",
        "DownloadArtifact",
        "ReadTranscript",
        "LeaseJobs",
        "AckJob",
        "SubscribeJobs",
    ):
        assert method in seen, f"{method} was not called: {sorted(seen)}"
    assert set().union(*seen.values()) == {"Bearer sync-secret"}


def test_the_async_client_takes_the_token_from_the_environment(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATA_TOKEN", "env-secret\n")
    queue = f"q_{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        async with strata.AsyncClient(proxy.target) as client:
            await client.create_record("creds", {"a": 1})
            artifact = await client.upload(io.BytesIO(b"y" * 10), owner="ci", kind="log")
            await client.download(artifact.id, io.BytesIO())
            transcript = await client.create_transcript()
            await client.append(transcript.id, "hi", role="user")
            await client.seal_transcript(transcript.id)
            assert [e.content async for e in client.follow(transcript.id)] == ["hi"]
            await client.enqueue(queue, {"n": 0})
            stop = asyncio.Event()

            async def handler(job: strata.Job) -> None:
                stop.set()

            await client.queue(queue).work(handler, stop=stop, wait=timedelta(seconds=1))
            await client.enqueue(queue, {"n": 1})
            async with client.queue(queue).subscribe() as jobs:
                await jobs.ack(await jobs.__anext__())

    asyncio.run(main())
    seen = _authorizations(proxy)
    assert {"UploadArtifact", "ReadTranscript", "LeaseJobs", "SubscribeJobs"} <= set(seen)
    assert set().union(*seen.values()) == {"Bearer env-secret"}


def test_an_explicit_token_wins_over_the_environment_and_none_sends_nothing(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATA_TOKEN", "env-secret")
    with strata.Client(proxy.target, token="given") as client:
        client.cache_set("k", b"v")
        assert "given" not in repr(client.config)  # never printed by accident
    monkeypatch.delenv("STRATA_TOKEN")
    with strata.Client(proxy.target) as client:
        client.cache_get("k")
    assert [metadata.get("authorization") for _, metadata in proxy.calls] == ["Bearer given", None]


def test_the_cli_sends_the_token(proxy: RecordingProxy, tmp_path: Path) -> None:
    flag = strata_cli("usage", "--server", proxy.target, "--token", "cli-secret", cwd=tmp_path)
    assert flag.returncode == 0, flag.stderr
    archive, namespace = tmp_path / "ns.tar", f"cli_{uuid.uuid4().hex[:8]}"
    env = strata_cli(
        "export",
        namespace,
        "-o",
        str(archive),
        "--server",
        proxy.target,
        cwd=tmp_path,
        STRATA_TOKEN="env-secret",
    )
    assert env.returncode == 0, env.stderr
    assert [
        (method.rsplit("/", 1)[1], metadata.get("authorization"))
        for method, metadata in proxy.calls
    ] == [
        ("GetUsage", "Bearer cli-secret"),
        ("ExportNamespace", "Bearer env-secret"),
    ]


def test_credential_settings_that_cannot_work_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match="client_certificate and client_key go together"):
        strata.TLSConfig("ca.pem", client_certificate="c.pem")
    with pytest.raises(ValueError, match="printable ASCII"):
        strata.ClientConfig(token="bad\ntoken")
    monkeypatch.setenv("STRATA_CLIENT_CERT", "c.pem")
    with pytest.raises(ValueError, match="STRATA_CLIENT_KEY go together"):
        strata.Client("127.0.0.1:1")
    monkeypatch.setenv("STRATA_CLIENT_KEY", "c.key")
    monkeypatch.setenv("STRATA_TLS_CA", "ca.pem")
    assert strata.ClientConfig().with_environment().tls == strata.TLSConfig(
        "ca.pem", "c.pem", "c.key"
    )
    given = strata.TLSConfig(b"-----BEGIN CERTIFICATE-----")
    assert strata.ClientConfig(tls=given).with_environment().tls is given
