"""A throwaway Redis server for tests: no persistence, one free port, stopped by PID.

    server = RedisServer(tmp_path)   # working dir for its log
    url = server.start()             # redis://127.0.0.1:<port>/0 once it answers PING
    server.stop()                    # SIGTERM to this server's PID, and wait
    server.kill()                    # SIGKILL to this server's PID (a crash)
    server.start()                   # again on the same port

Needs `redis-server` on PATH (`make system-deps` installs it).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

from tests.support.ports import free_port


def available() -> bool:
    """Whether redis-server is installed."""
    return shutil.which("redis-server") is not None


class RedisServer:
    """One redis-server process on 127.0.0.1 at a free port."""

    def __init__(self, workdir: Path, *args: str) -> None:
        """`args`: more redis-server options (say `--requirepass`, `--unixsocket`)."""
        self.workdir = workdir
        self.args = args
        self.port = free_port()
        self.log_path = workdir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> str:
        """Start the server and return its URL once it answers PING."""
        if self._process is not None:
            return self.url
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                    *self.args,
                ],
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        except OSError:
            self._log.close()
            self._log = None
            raise
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"redis-server did not start; log:\n{self.log_path.read_text()[-3000:]}"
                )
            time.sleep(0.02)
        return self.url

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))  # up, maybe locked
        except OSError:
            return False

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to this server's PID and wait for it to exit (SIGKILL if it won't)."""
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

    def kill(self) -> None:
        """SIGKILL this server's PID, as a crash would, and reap it."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.kill()
            process.wait(15)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
