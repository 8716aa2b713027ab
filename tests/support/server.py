"""Runs a real `strata serve` process on a free port, as users and CI run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc

from tests.support.cli import Forked, spawn_strata

ROOT = Path(__file__).resolve().parents[2]


class StrataProcess:
    """One server process; `start()` returns its port once it accepts RPCs.

    It is forked from a process that imported the server already (tests/support/cli.py,
    `spawn_strata`), which spares it about a second and a half of CPU; with
    `fresh_interpreter` it is `python -m strata_server serve` from a new interpreter,
    as the session's servers are."""

    def __init__(
        self, database_url: str, workdir: Path, *, fresh_interpreter: bool = False, **env: str
    ) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.env = env
        self.fresh_interpreter = fresh_interpreter
        self.process: subprocess.Popen[bytes] | Forked | None = None
        self.port = 0
        self.log_path = workdir / "server.log"

    def start(self, timeout: float = 30.0, port: int = 0) -> int:
        """Start the server and wait until it serves; raises with its log if it dies."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        port_file = self.workdir / "port"
        port_file.unlink(missing_ok=True)
        env = {
            **os.environ,
            "STRATA_DATABASE_URL": self.database_url,
            "STRATA_LISTEN": f"127.0.0.1:{port}",
            "STRATA_PORT_FILE": str(port_file),
            "STRATA_MIGRATE": "true",
            "STRATA_LOG_LEVEL": "warning",
            # Many test servers run at once: none takes the console's default port.
            "STRATA_CONSOLE_LISTEN": "off",
            **self.env,
        }
        if self.fresh_interpreter:
            with self.log_path.open("ab") as log:  # the child keeps its own descriptor
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "strata_server", "serve"],
                    cwd=self.workdir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        else:
            self.process = spawn_strata(["serve"], env=env, cwd=self.workdir, log=self.log_path)
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"strata exited {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"strata did not start:\n{self.log()}")
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        return self.port

    @property
    def target(self) -> str:
        """host:port to dial."""
        return f"127.0.0.1:{self.port}"

    def channel(self) -> grpc.Channel:
        """A new channel to this server (the caller closes it)."""
        return grpc.insecure_channel(self.target)

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait: the graceful path. Returns the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL: the crash path."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
