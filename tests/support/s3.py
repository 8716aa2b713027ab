"""A throwaway S3 endpoint for tests: moto's server on 127.0.0.1 at a free port,
stopped by PID.

    server = S3Server(tmp_path)     # working dir for its log
    server.start()                  # once it answers HTTP
    server.freeze()                 # SIGSTOP: it hangs (server.thaw() sends SIGCONT)
    server.stop()                   # SIGTERM to this server's PID (its data is lost)
    server.start()                  # again, empty, on the same port

moto keeps objects in memory and does not check signatures, so tests that need a
credentials failure cannot use it. Strata's S3 adapter speaks only the standard API,
which moto and MinIO both serve.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from tests.support.ports import free_port

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


class S3Server:
    """One moto server process."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "moto.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """host:port, as STRATA_S3_ENDPOINT takes it."""
        return f"127.0.0.1:{self.port}"

    def env(self, bucket: str) -> dict[str, str]:
        """The STRATA_S3_* settings that point a server at this endpoint."""
        return {
            "STRATA_S3_ENDPOINT": self.endpoint,
            "STRATA_S3_ACCESS_KEY": ACCESS_KEY,
            "STRATA_S3_SECRET_KEY": SECRET_KEY,
            "STRATA_S3_BUCKET": bucket,
            "STRATA_S3_SECURE": "false",
            "STRATA_S3_REGION": REGION,
        }

    def client(self):  # type: ignore[no-untyped-def]
        """A minio SDK client for this endpoint (tests inspect the bucket with it)."""
        from minio import Minio

        return Minio(
            self.endpoint,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            secure=False,
            region=REGION,
        )

    def start(self, timeout: float = 30.0) -> str:
        """Start moto and return the endpoint once it answers."""
        if self._process is not None:
            return self.endpoint
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto did not start; log:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        return self.endpoint

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
                return sock.recv(12).startswith(b"HTTP/")
        except OSError:
            return False

    def freeze(self) -> None:
        """SIGSTOP this server's PID: connections are still accepted (by the kernel)
        and never answered, as by an S3 that hangs."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after `freeze`."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to this server's PID and wait (SIGKILL if it won't go)."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
