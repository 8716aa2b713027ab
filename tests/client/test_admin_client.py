"""The admin calls as client methods, on both clients, against real servers on
both shapes: what the `strata` CLI is built on."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import strata
from strata.v1 import admin_pb2
from tests.support.server import StrataProcess


def _namespace() -> str:
    return f"adm-{uuid.uuid4().hex[:10]}"


def test_reads_indexes_retention_quotas_and_tokens(server: StrataProcess) -> None:
    ns = _namespace()
    with strata.Client(server.target, namespace=ns, actor="admin-test") as client:
        assert client.server_info().version
        client.create_record("notes", {"colour": "red"}, record_id="n1")
        [space] = client.usage().namespaces
        assert space.namespace == ns and space.record_count == 1
        assert ns in {space.namespace for space in client.usage(all_namespaces=True).namespaces}
        with pytest.raises(ValueError, match="not both"):
            client.usage(all_namespaces=True, namespace=ns)

        [entry] = client.list_audit_entries(entity_id="notes/n1", page_size=1)
        assert (entry.action, entry.actor) == ("create", "admin-test")
        since = datetime.now(UTC) + timedelta(days=1)
        assert list(client.list_audit_entries(since=since)) == []
        with pytest.raises(strata.InvalidArgument):
            list(client.list_audit_entries(since=since, until=since - timedelta(days=2)))

        phases: list[admin_pb2.Progress] = []
        index = client.create_index("notes", "data.colour", progress=phases.append)
        assert (index.collection, index.field, index.ready) == ("notes", "data.colour", True)
        assert [found.field for found in client.list_indexes("notes")] == ["data.colour"]
        client.drop_index("notes", "data.colour")
        assert client.list_indexes() == []
        with pytest.raises(strata.NotFound):
            client.drop_index("notes", "data.colour")

        policy = client.set_retention_policy("records", timedelta(days=7), "notes")
        assert policy.max_age.ToTimedelta() == timedelta(days=7)
        assert [p.selector for p in client.list_retention_policies()] == ["notes"]
        client.delete_retention_policy("records", "notes")
        assert client.list_retention_policies() == []
        with pytest.raises(ValueError, match="target"):
            client.set_retention_policy("rows", timedelta(days=1))  # type: ignore[arg-type]

        quota = client.set_quota(10 * 1024)
        assert quota.max_bytes == 10 * 1024 and quota.used_bytes > 0
        assert [q.namespace for q in client.list_quotas()] == [ns]
        assert ns in {q.namespace for q in client.list_quotas(all_namespaces=True)}
        client.set_quota(0)
        assert client.list_quotas() == []

        name = f"bot-{uuid.uuid4().hex[:8]}"
        token, secret = client.create_token(name, "reader", [ns], ttl=timedelta(hours=1))
        assert token.name == name and secret and secret not in str(token)
        assert name in {t.name for t in client.list_tokens(page_size=1)}
        assert client.revoke_token(name).HasField("revoke_time")
        assert name not in {t.name for t in client.list_tokens()}
        assert name in {t.name for t in client.list_tokens(show_inactive=True)}
        with pytest.raises(strata.NotFound):
            client.revoke_token(f"nobody-{name}")


def test_cleanup_check_export_and_import(server: StrataProcess, tmp_path: Path) -> None:
    source, target = _namespace(), _namespace()
    with strata.Client(server.target, namespace=source) as client:
        client.create_record("notes", {"n": 1}, record_id="a")
        client.create_transcript("chat")
        client.append("chat", "hello", role="user")
        dry = client.run_cleanup(dry_run=True)
        assert dry.dry_run and dry.total == 0
        report = client.check_integrity()
        assert list(report.findings) == [] and report.checked
        assert client.get_integrity_status().last_report == report

        archive = tmp_path / "source.tar"
        steps: list[admin_pb2.Progress] = []
        summary = client.export_namespace(archive, progress=steps.append)
        assert summary.namespace == source and summary.counts["records"] == 1
        assert archive.stat().st_size == summary.archive_bytes and steps
        assert [path.name for path in tmp_path.iterdir()] == ["source.tar"]

        result = client.import_namespace(archive, into=target)
        assert (result.namespace, result.source_namespace) == (target, source)
        assert client.get_record("notes", "a", namespace=target).data == {"n": 1}
        with pytest.raises(strata.AlreadyExists):
            client.import_namespace(archive, into=target)
        skipped = client.import_namespace(archive, into=target, on_conflict="skip")
        assert {c.kind: c.skipped for c in skipped.counts}["records"] == 1
        with pytest.raises(ValueError, match="on_conflict"):
            client.import_namespace(archive, on_conflict="merge")  # type: ignore[arg-type]
        with pytest.raises(strata.InvalidArgument):
            client.import_namespace(io.BytesIO(b"not an archive" * 100), into=target)

    offline = strata.Client("127.0.0.1:1", retry=strata.RetryPolicy(max_attempts=1))
    with offline, pytest.raises(strata.Unavailable):
        offline.export_namespace(tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["source.tar"]


def test_the_async_client_has_the_admin_calls(server: StrataProcess) -> None:
    source, target = _namespace(), _namespace()

    async def main() -> None:
        async with strata.AsyncClient(server.target, namespace=source) as client:
            await client.create_record("notes", {"n": 2}, record_id="b")
            usage = await client.usage()
            assert usage.namespaces[0].record_count == 1
            entries = [entry async for entry in client.list_audit_entries()]
            assert [entry.entity_id for entry in entries] == ["notes/b"]
            index = await client.create_index("notes", "data.n")
            assert index.ready
            report = await client.run_cleanup(dry_run=True)
            assert report.dry_run

            archive = io.BytesIO()
            summary = await client.export_namespace(archive)
            assert summary.archive_bytes == len(archive.getvalue())
            archive.seek(0)
            result = await client.import_namespace(archive, into=target)
            assert result.namespace == target
            assert (await client.get_record("notes", "b", namespace=target)).data == {"n": 2}

    asyncio.run(main())
