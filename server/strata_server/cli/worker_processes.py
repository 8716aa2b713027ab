"""`strata serve --workers N`: N single-process servers sharing one port.

Kept apart from the command definitions (cli/main.py) because it is process
management, not a command: it migrates once before any worker starts (so they do
not race to), hands each worker the resolved settings through its environment
(secrets included, and what each worker must do differently: no in-process cache,
shared-file re-checks, its own metrics port, the console on the first only), waits
until every worker serves before it writes the port file, forwards signals to them
and watches them.

Each worker binds the same address with SO_REUSEPORT (app.server_options), so the
kernel spreads new connections over them; a connection stays on its worker.

A worker that exits on its own (a crash, the OOM killer, a kill by hand) stops
them all: the supervisor logs it, stops the other workers gracefully and exits
non-zero (the worker's own status, or 1 after a crash or a kill). It does not
restart the worker, because whoever started `strata serve` (systemd, Kubernetes, a
container runtime) already restarts a failed process with back-off, counts the
restarts and alerts on a crash loop; restarting here would hide each of those from
it, and would leave the server silently running on fewer cores in between.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from pydantic import SecretStr

from strata_server.cli.common import fail
from strata_server.config import Settings

log = structlog.get_logger("strata.workers")

POLL_SECONDS = 0.25
"""How often the supervisor looks at its workers (a worker's death is noticed within it)."""
KILL_AFTER_GRACE_SECONDS = 10.0
"""How long past grace_seconds a stopping worker may take before it is killed."""
PR_SET_PDEATHSIG = 1
"""prctl(2): the signal the kernel sends a process when its parent dies."""


def serve_workers(settings: Settings) -> int:
    """Run `settings.workers` single-process servers on one port (SO_REUSEPORT), after
    migrating once here so the workers do not race to do it; returns the exit status
    (0 after SIGTERM or SIGINT stopped them all)."""
    if settings.listen.endswith(":0"):
        raise fail("--workers needs a fixed port: each worker must bind the same one")
    if settings.database.memory:
        raise fail("--workers needs a shared database; sqlite://:memory: is per process")
    from strata_server.backends import StartupError, open_database

    async def prepare() -> None:
        database = await open_database(settings)
        await database.close()

    try:
        asyncio.run(prepare())
    except StartupError as error:
        raise fail(str(error)) from None
    with tempfile.TemporaryDirectory(prefix="strata-workers-") as ready:
        return Supervisor(settings, _worker_environment(settings), Path(ready)).run()


def _worker_environment(settings: Settings) -> dict[str, str]:
    """The environment every worker shares: these settings, resolved, as STRATA_*."""
    env = {**os.environ, "STRATA_WORKERS": "1", "STRATA_MIGRATE": "false"}
    dumped = settings.model_dump(
        mode="json", exclude={"workers", "migrate", "config", "port_file"}, exclude_none=True
    )
    for key in dumped:
        # mode="json" masks secrets ("**********"); the workers need the real ones.
        value = getattr(settings, key)
        if isinstance(value, SecretStr):
            dumped[key] = value.get_secret_value()
    env.update(
        {
            f"STRATA_{key.upper()}": json.dumps(value)
            if isinstance(value, (dict, list))
            else str(value)
            for key, value in dumped.items()
        }
    )
    # Each worker is its own process: an in-process cache in one would not see the
    # others' writes, so without Redis the workers keep none.
    env["STRATA_LOCAL_CACHE"] = "false"
    # Nor do they hear of each other's writes (without Redis or PostgreSQL events):
    # their streams re-check the shared file every second instead.
    env["STRATA_SHARED_DATABASE"] = "true"
    if settings.console_listen is None:
        env["STRATA_CONSOLE_LISTEN"] = "off"
    return env


@dataclass
class Supervisor:
    """The parent of the workers: starts them, passes signals on, and stops them all
    when one of them exits on its own (see the module docstring for why)."""

    settings: Settings
    env: dict[str, str]
    ready: Path
    """A private directory where each worker writes its port file once it serves."""
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    stopping_since: float | None = None
    """When the workers were told to stop (None: they serve)."""
    stop_signal: int | None = None
    """The signal the supervisor was stopped by (None: not by a signal)."""
    failure: int = 0
    """The exit status a worker's unexpected exit leaves the supervisor with."""

    def run(self) -> int:
        """Start the workers, supervise them until they have all exited, and return
        the exit status."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        for index in range(self.settings.workers):
            if self.stop_signal is not None:
                break
            self.workers.append(self._start(index))
            if self.stop_signal is not None:  # it came while this one was starting
                self.workers[-1].send_signal(self.stop_signal)
        announced = False
        while any(worker.poll() is None for worker in self.workers):
            self._notice_exits()
            if not announced and self._all_serving():
                announced = True
                self._announce()
            self._kill_stragglers()
            time.sleep(POLL_SECONDS)
        if self.failure:
            return self.failure
        # A worker told to stop before it had installed its handler ends by the
        # signal itself: that is a stop as asked too.
        asked = -self.stop_signal if self.stop_signal else None
        codes = [worker.wait() for worker in self.workers]
        return max((0 if code == asked else _exit_status(code) for code in codes), default=0)

    def _start(self, index: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "strata_server", "serve"],
            # Its own process group: a terminal's Ctrl-C reaches the supervisor
            # only, which passes it on once, as it does every other signal.
            process_group=0,
            preexec_fn=_end_with_parent(os.getpid()),
            env={
                **self.env,
                **_metrics_env(self.settings.metrics_listen, index),
                **_console_env(index),
                "STRATA_PORT_FILE": str(self._port_file(index)),
            },
        )

    def _port_file(self, index: int) -> Path:
        return self.ready / f"worker-{index}.port"

    def _all_serving(self) -> bool:
        return len(self.workers) == self.settings.workers and all(
            self._port_file(index).exists() for index in range(len(self.workers))
        )

    def _announce(self) -> None:
        port = self.settings.listen.rpartition(":")[2]
        log.info(
            "workers serving",
            address=self.settings.listen,
            pid=os.getpid(),
            workers=[worker.pid for worker in self.workers],
        )
        if self.settings.port_file is not None:
            temp = self.settings.port_file.with_suffix(".tmp")
            temp.write_text(port)
            temp.replace(self.settings.port_file)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:
            # Each serving worker re-reads its TLS certificates. One still starting
            # has not yet installed its handler (SIGHUP would end it) and reads the
            # certificates as it starts anyway.
            for index, worker in enumerate(self.workers):
                if self._port_file(index).exists():
                    worker.send_signal(signum)
            return
        log.info("stopping workers", signal=signal.Signals(signum).name)
        self.stop_signal = signum
        self._stop_all(signum)

    def _stop_all(self, signum: int) -> None:
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
        for worker in self.workers:
            worker.send_signal(signum)  # a no-op for one that has exited

    def _notice_exits(self) -> None:
        """A worker that exits while the others serve stops them all."""
        if self.stopping_since is not None:
            return
        for index, worker in enumerate(self.workers):
            code = worker.poll()
            if code is None:
                continue
            log.error(
                "worker exited unexpectedly: stopping the others",
                worker=index,
                pid=worker.pid,
                status=_exit_status(code),
            )
            # A worker's own failure status (2: a one-line startup failure) is
            # passed on; a crash or a kill is 1.
            self.failure = code if code > 0 else 1
            self._stop_all(signal.SIGTERM)
            return

    def _kill_stragglers(self) -> None:
        """A worker still running well past its shutdown grace is killed."""
        if self.stopping_since is None:
            return
        limit = self.settings.grace_seconds + KILL_AFTER_GRACE_SECONDS
        if time.monotonic() - self.stopping_since < limit:
            return
        for worker in self.workers:
            if worker.poll() is None:
                log.error("worker did not stop in time: killed", pid=worker.pid)
                worker.kill()
                worker.wait()
                self.failure = self.failure or 1


def _end_with_parent(parent: int) -> Callable[[], None]:
    """What a worker runs between fork and exec: the kernel sends it SIGTERM (a
    graceful stop) when the supervisor dies, even by SIGKILL, so that no orphaned
    worker keeps taking connections on the port beside the workers of the
    supervisor's replacement."""

    def end_with_parent() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return end_with_parent


def _exit_status(returncode: int) -> int:
    """A process's exit status as a shell reports it (killed by signal n: 128 + n)."""
    return returncode if returncode >= 0 else 128 - returncode


def _console_env(index: int) -> dict[str, str]:
    """Worker `index`'s console: the first worker serves it, the others none."""
    return {"STRATA_CONSOLE_LISTEN": "off"} if index else {}


def _metrics_env(listen: str | None, index: int) -> dict[str, str]:
    """Worker `index`'s metrics address: the configured port + index (0 stays 0)."""
    if listen is None:
        return {}
    host, _, port = listen.rpartition(":")
    return {"STRATA_METRICS_LISTEN": f"{host}:{int(port) + index if int(port) else 0}"}
