"""The production shape's backup and recovery procedure of docs/recovery.md, run
as written with the test PostgreSQL and S3 endpoint: `pg_dump` then a copy of the
bucket's blobs (what `mc mirror` does); a lost bucket is reported artifact by
artifact; `pg_restore` into a new database plus the copied blobs into a new bucket
serve the same records, transcript entries and artifact bytes, and the integrity
check after finds nothing."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from minio.commonconfig import CopySource

from strata_server.storage.blobs import layout
from tests.ops.recovery_support import integrity, read_data_set, write_data_set
from tests.support.pg import PG_BIN, PgServer
from tests.support.s3 import S3Server
from tests.support.server import StrataProcess


def mirror(s3: S3Server, source: str, target: str) -> int:
    """Copy every blob of one bucket into another (`mc mirror`), server-side."""
    client = s3.client()
    if not client.bucket_exists(target):
        client.make_bucket(target)
    copied = 0
    for item in client.list_objects(source, prefix=layout.ROOT + "/", recursive=True):
        client.copy_object(target, item.object_name, CopySource(source, item.object_name))
        copied += 1
    return copied


def empty(s3: S3Server, bucket: str) -> None:
    """Lose every object of a bucket."""
    client = s3.client()
    for item in client.list_objects(bucket, recursive=True):
        client.remove_object(bucket, item.object_name)


def test_pg_dump_and_the_bucket_restore_a_production_server(
    pg: PgServer, s3: S3Server, redis, tmp_path: Path
):
    url = pg.create_database(f"prod_{uuid.uuid4().hex[:10]}")
    bucket, kept = f"prod-{uuid.uuid4().hex[:10]}", f"kept-{uuid.uuid4().hex[:10]}"
    env = {"STRATA_REDIS_URL": redis.url}
    server = StrataProcess(url, tmp_path / "prod", **env, **s3.env(bucket))
    server.start()
    try:
        with server.channel() as channel:
            write_data_set(channel)
            held = read_data_set(channel)
            # The backup, in the documented order: the database, then the blobs.
            dump = tmp_path / "strata.dump"
            subprocess.run(
                [str(PG_BIN / "pg_dump"), "--format=custom", "--file", str(dump), url],
                check=True,
                capture_output=True,
            )
            assert mirror(s3, bucket, kept) == 2

            empty(s3, bucket)  # the disaster: the bucket is lost
            report = integrity(channel)
            lost = {f.entity_id for f in report.findings if f.entity == "artifact"}
            assert lost == set(held.artifacts)
            assert all("missing" in f.problem for f in report.findings)
    finally:
        server.stop()

    restored_url = pg.create_database(f"restored_{uuid.uuid4().hex[:10]}")
    subprocess.run(
        [
            str(PG_BIN / "pg_restore"),
            "--no-owner",
            "--exit-on-error",
            "--dbname",
            restored_url,
            str(dump),
        ],
        check=True,
        capture_output=True,
    )
    new_bucket = f"restored-{uuid.uuid4().hex[:10]}"
    mirror(s3, kept, new_bucket)
    restored = StrataProcess(restored_url, tmp_path / "restored", **env, **s3.env(new_bucket))
    restored.start()
    try:
        with restored.channel() as channel:
            assert read_data_set(channel) == held
            assert list(integrity(channel, verify_blobs=True).findings) == []
    finally:
        restored.stop()
