"""A throwaway PostgreSQL 15 server for tests: initdb into a temp dir, run, stop by PID.

    server = PgServer()              # or PgServer(tmp_path) to choose the parent folder
    dsn = server.start()             # initdb on first start; returns a postgresql:// URL
    url = server.create_database("x")  # a fresh empty database on the same server
    server.stop()                    # fast shutdown of this server only (data kept)
    server.start()                   # again on the same port and data dir
    server.cleanup()                 # stop and delete the data dir

Run as root (a container or CI), the server runs as the `postgres` OS user through
`runuser`, because initdb refuses to run as root; as any other user it runs as that
user. As root the data dir always goes under the system temp dir (`parent` is
ignored), since root's private folders (pytest's tmp_path) are closed to `postgres`.
The server listens on 127.0.0.1 at a free port, with fsync off: nothing here is meant
to survive a crash. The data dir is removed by `cleanup()`, or at garbage collection
/ interpreter exit at the latest (killing a server still running from it).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import IO

from tests.support.ports import free_port

PG_BIN = Path(os.environ.get("STRATA_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


def _reap(base: Path, data_dir: Path) -> None:
    """Last-resort cleanup: kill a postmaster still running from `data_dir`, delete `base`."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, signal.SIGQUIT)
        time.sleep(0.2)
    except (OSError, ValueError):
        pass
    shutil.rmtree(base, ignore_errors=True)


class PgServer:
    """One PostgreSQL server process with its own data directory and port."""

    def __init__(self, parent: Path | str | None = None, *, user: str = "postgres") -> None:
        self._as_root = os.geteuid() == 0
        self.os_user = user if self._as_root else pwd.getpwuid(os.geteuid()).pw_name
        self.base = Path(
            tempfile.mkdtemp(prefix="strata-pg-", dir=None if self._as_root else parent)
        )
        self.data_dir = self.base / "data"
        self.log_path = self.base / "server.log"
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        if self._as_root:
            entry = pwd.getpwnam(self.os_user)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self.base.chmod(0o700)
        self._finalizer = weakref.finalize(self, _reap, self.base, self.data_dir)

    @property
    def dsn(self) -> str:
        """URL of the `postgres` database as the superuser `postgres` (trust auth)."""
        return self.url("postgres")

    def url(self, database: str) -> str:
        """URL of `database` on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _command(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self.os_user, "--"] if self._as_root else []
        return [*prefix, *args]

    def _initdb(self) -> None:
        subprocess.run(
            self._command(
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ),
            check=True,
            capture_output=True,
        )

    def start(self, timeout: float = 30.0) -> str:
        """Start the server (initdb first if needed); return its DSN once it accepts
        connections."""
        if self._process is not None:
            return self.dsn
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        settings = [
            arg for key, value in SERVER_SETTINGS.items() for arg in ("-c", f"{key}={value}")
        ]
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self._command(
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-k",
                str(self.base),
                *settings,
            ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self._process = None
                self._close_log()
                raise RuntimeError(
                    f"PostgreSQL did not start; log:\n{self.log_path.read_text()[-3000:]}"
                )
            time.sleep(0.05)
        return self.dsn

    def _ready(self) -> bool:
        probe = subprocess.run(
            [
                str(PG_BIN / "pg_isready"),
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-t",
                "1",
            ],
            check=False,
        )
        return probe.returncode == 0

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT to this server's postmaster PID), keeping the data dir.

        With `runuser`, the process we started is runuser; the postmaster is its child,
        whose PID the data dir's postmaster.pid names.
        """
        process, self._process = self._process, None
        if process is None:
            return
        pid = self._postmaster_pid() if self._as_root else process.pid
        try:
            if pid is not None:
                os.kill(pid, signal.SIGINT)
            else:
                process.send_signal(signal.SIGINT)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            if pid is not None:
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown
            process.wait(timeout)
        except ProcessLookupError:
            process.wait(timeout)
        finally:
            self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def create_database(self, name: str) -> str:
        """Create an empty database (from template0) and return its URL."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"unsafe database name {name!r}")
        subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.dsn,
                "-c",
                f'CREATE DATABASE "{name}" TEMPLATE template0',
            ],
            check=True,
            capture_output=True,
        )
        return self.url(name)

    def cleanup(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        self._finalizer()

    def __enter__(self) -> PgServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
