"""What the backup and recovery rehearsals share: a small data set of every kind
written over a real channel, read back whole for comparison, the integrity
report of a server, and the PostgreSQL pieces of a point-in-time recovery (a
primary archiving its WAL, a base backup, a recovery to a time)."""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import psycopg

from strata.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    artifacts_pb2,
    artifacts_pb2_grpc,
    transcripts_pb2,
)
from tests.contract.artifacts_support import download, random_bytes, text_log, upload
from tests.contract.helpers import create, data_of, list_all, stubs_over
from tests.contract.transcript_helpers import (
    append,
    create_transcript,
    read_all,
    transcript_stub,
)
from tests.support.cli import run_strata
from tests.support.pg import PG_BIN, PgServer

COLLECTION = "tickets"
TRANSCRIPT = "chat-1"


@dataclass
class DataSet:
    """Everything a server holds of the data set, as a client reads it."""

    records: dict[str, tuple[dict[str, Any], int]]
    entries: list[tuple[int, str, str]]
    artifacts: dict[str, tuple[str, int, bytes]]


def write_data_set(channel: grpc.Channel, tag: str = "") -> list[artifacts_pb2.Artifact]:
    """Records, a transcript with entries, and artifacts (one compressed, one raw)."""
    stubs = stubs_over(channel)
    for i in range(20):
        create(stubs, COLLECTION, f"t{tag}{i}", {"title": f"ticket {i}", "n": i})
    ts = transcript_stub(channel)
    transcript = create_transcript(ts, TRANSCRIPT + tag, owner="agents/a1")
    append(ts, transcript, [f"message {i} " * 20 for i in range(50)])
    arts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
    return [
        upload(arts, text_log(40_000, seed=len(tag)), name=f"build{tag}.log"),
        upload(arts, random_bytes(300_000), name=f"bundle{tag}.bin"),
    ]


def read_data_set(channel: grpc.Channel) -> DataSet:
    """The records, the transcripts' entries and every artifact's bytes."""
    stubs = stubs_over(channel)
    records = {r.id: (data_of(r), r.version) for r in list_all(stubs, COLLECTION)}
    ts = transcript_stub(channel)
    entries = []
    listed = ts.ListTranscripts(transcripts_pb2.ListTranscriptsRequest(page_size=100))
    for transcript in listed.transcripts:
        stream = read_all(ts, transcript.id)
        entries += [(e.seq, e.role, e.content) for e in stream.entries]
    arts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
    artifacts = {}
    for artifact in arts.ListArtifacts(artifacts_pb2.ListArtifactsRequest(page_size=100)).artifacts:
        _, data = download(arts, artifact.id)
        artifacts[artifact.id] = (artifact.sha256, artifact.size, data)
    return DataSet(records, entries, artifacts)


def integrity(channel: grpc.Channel, **fields: Any) -> admin_pb2.IntegrityReport:
    """The report of a check of every namespace."""
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    request = admin_pb2.CheckIntegrityRequest(all_namespaces=True, **fields)
    *_, last = admin.CheckIntegrity(request, timeout=120)
    return last.report


def strata(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the `strata` command as an operator does (a process of its own, forked from
    the CLI's zygote: tests/support/cli.py)."""
    return run_strata(list(args), env=dict(os.environ), cwd=cwd, timeout=120)


# --- point-in-time recovery of the production shape -----------------------------------

ARCHIVE_SETTINGS = {
    "wal_level": "replica",
    "archive_mode": "on",
    # The documented archive_command: never overwrite a segment already archived.
    "archive_command": "test ! -f {archive}/%f && cp %p {archive}/%f",
}


def _as_server_user(pg: PgServer, *command: str) -> list[str]:
    """`command` as the OS user the PostgreSQL server runs as (runuser under root)."""
    return ["runuser", "-u", pg.os_user, "--", *command] if os.geteuid() == 0 else list(command)


def _give_to_server_user(pg: PgServer, *paths: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(pg.os_user)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)


def _append_settings(pg: PgServer, settings: dict[str, str]) -> None:
    """Settings in the data directory's postgresql.auto.conf (later lines win)."""
    conf = pg.data_dir / "postgresql.auto.conf"
    with conf.open("a") as file:
        for key, value in settings.items():
            escaped = value.replace("'", "''")
            file.write(f"{key} = '{escaped}'\n")
    _give_to_server_user(pg, conf)


class ArchivingPg(PgServer):
    """A PostgreSQL that archives every WAL segment into `wal_archive` (a folder of its
    own): the primary of a point-in-time recovery."""

    @property
    def wal_archive(self) -> Path:
        return self.base / "wal-archive"

    def start(self, timeout: float = 30.0) -> str:
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
            self.wal_archive.mkdir()
            _give_to_server_user(self, self.wal_archive)
            archive = str(self.wal_archive)
            _append_settings(
                self, {k: v.format(archive=archive) for k, v in ARCHIVE_SETTINGS.items()}
            )
        return super().start(timeout)

    def base_backup(self, into: PgServer) -> None:
        """`pg_basebackup` of this server into `into`'s (new, empty) data directory."""
        subprocess.run(
            _as_server_user(
                self,
                str(PG_BIN / "pg_basebackup"),
                "--dbname",
                self.dsn,
                "--pgdata",
                str(into.data_dir),
                "--wal-method=stream",
                "--checkpoint=fast",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
        )

    def archive_current_wal(self, timeout: float = 30.0) -> str:
        """Close the WAL segment being written and wait until it is archived (what
        `archive_timeout` does on a quiet server); returns its name."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
            assert row is not None
            segment = str(row[0])
            deadline = time.monotonic() + timeout
            while not (self.wal_archive / segment).exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"WAL segment {segment} was not archived")
                time.sleep(0.05)
        return segment


def database_time(pg: PgServer) -> datetime:
    """The database server's clock now: the recovery target is a time on it."""
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def recover_to(primary: ArchivingPg, recovered: PgServer, target: datetime) -> None:
    """Point-in-time recovery, as docs/recovery.md writes it: `recovered` holds a base
    backup of `primary`; replay the archived WAL up to `target`, then promote (stop
    archiving on the copy: it must not write into the primary's archive)."""
    _append_settings(
        recovered,
        {
            "restore_command": f"cp {primary.wal_archive}/%f %p",
            "recovery_target_time": target.isoformat(),
            "recovery_target_action": "promote",
            "archive_mode": "off",
        },
    )
    signal = recovered.data_dir / "recovery.signal"
    signal.touch()
    _give_to_server_user(recovered, signal)
    recovered.start(timeout=120)
    deadline = time.monotonic() + 120
    with psycopg.connect(recovered.dsn, autocommit=True) as conn:
        while conn.execute("SELECT pg_is_in_recovery()").fetchone() != (False,):
            if time.monotonic() > deadline:
                raise TimeoutError("the recovered server did not leave recovery")
            time.sleep(0.1)
