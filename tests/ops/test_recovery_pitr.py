"""Point-in-time recovery of the production shape, as docs/recovery.md writes it:
a PostgreSQL archiving its WAL (archive_mode, archive_command), a base backup
(`pg_basebackup`), writes before and after a recorded time, recovery of the base
backup to that time (restore_command, recovery_target_time, recovery.signal) into
a new data directory, and a Strata server on the recovered database and the same
bucket: the writes before the time are there, those after it are not, and the
integrity check reports what a write after the time left behind (the blob of an
artifact no recovered row names), which its repair sweeps."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from strata.v1 import artifacts_pb2_grpc
from tests.contract.artifacts_support import random_bytes, upload
from tests.contract.helpers import create, list_all, stubs_over
from tests.ops.recovery_support import (
    COLLECTION,
    ArchivingPg,
    database_time,
    integrity,
    read_data_set,
    recover_to,
    write_data_set,
)
from tests.support.pg import PgServer
from tests.support.s3 import S3Server
from tests.support.server import StrataProcess


def test_a_base_backup_and_the_wal_archive_recover_to_a_point_in_time(
    s3: S3Server, redis, tmp_path: Path
):
    bucket = f"pitr-{uuid.uuid4().hex[:10]}"
    env = {"STRATA_REDIS_URL": redis.url, **s3.env(bucket)}
    primary, recovered = ArchivingPg(tmp_path), PgServer(tmp_path)
    try:
        primary.start()
        url = primary.create_database("strata")
        server = StrataProcess(url, tmp_path / "primary", **env)
        server.start()
        try:
            with server.channel() as channel:
                write_data_set(channel)
                primary.base_backup(into=recovered)  # online, while the server runs
                stubs = stubs_over(channel)
                for i in range(5):  # after the base backup: replayed from the WAL archive
                    create(stubs, COLLECTION, f"before{i}", {"title": f"before {i}"})
                held = read_data_set(channel)
                time.sleep(0.05)
                target = database_time(primary)
                time.sleep(0.05)
                for i in range(5):
                    create(stubs, COLLECTION, f"after{i}", {"title": f"after {i}"})
                late = upload(
                    artifacts_pb2_grpc.ArtifactServiceStub(channel),
                    random_bytes(70_000),
                    name="late.bin",
                )
                primary.archive_current_wal()
        finally:
            server.stop()

        recover_to(primary, recovered, target)
        copy = StrataProcess(
            recovered.url("strata"),
            tmp_path / "recovered",
            STRATA_BLOB_SWEEP_GRACE_SECONDS="0",
            **env,
        )
        copy.start()
        try:
            with copy.channel() as channel:
                ids = {r.id for r in list_all(stubs_over(channel), COLLECTION)}
                assert {f"before{i}" for i in range(5)} <= ids
                assert not {i for i in ids if i.startswith("after")}
                assert read_data_set(channel) == held

                report = integrity(channel, verify_blobs=True)
                orphans = {f.entity_id: f.bytes for f in report.findings if f.entity == "blob"}
                assert orphans == {late.sha256: late.stored_size}, list(report.findings)
                assert report.unreferenced_bytes == late.stored_size
                assert [f for f in report.findings if f.entity != "blob"] == []

                integrity(channel, repair=True)
                assert list(integrity(channel, verify_blobs=True).findings) == []
        finally:
            copy.stop()
    finally:
        recovered.cleanup()
        primary.cleanup()
