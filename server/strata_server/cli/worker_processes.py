"""`strata serve --workers N`: N single-process servers sharing one port.

Kept apart from the command definitions (cli/main.py) because it is process
management, not a command: it migrates once before any worker starts (so they do
not race to), hands each worker the resolved settings through its environment
(secrets included, and what each worker must do differently: no in-process cache,
shared-file re-checks, its own metrics port, the console on the first only), and
forwards signals to them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

from pydantic import SecretStr

from strata_server.cli.common import fail
from strata_server.config import Settings


def serve_workers(settings: Settings) -> int:
    """Run `settings.workers` single-process servers on one port (SO_REUSEPORT), after
    migrating once here so the workers do not race to do it."""
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
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "strata_server", "serve"],
            env={**env, **_metrics_env(settings.metrics_listen, index), **_console_env(index)},
        )
        for index in range(settings.workers)
    ]
    if settings.port_file is not None:
        settings.port_file.write_text(settings.listen.rpartition(":")[2])

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward)  # each worker reloads its TLS certificates
    return max(child.wait() for child in children)


def _console_env(index: int) -> dict[str, str]:
    """Worker `index`'s console: the first worker serves it, the others none."""
    return {"STRATA_CONSOLE_LISTEN": "off"} if index else {}


def _metrics_env(listen: str | None, index: int) -> dict[str, str]:
    """Worker `index`'s metrics address: the configured port + index (0 stays 0)."""
    if listen is None:
        return {}
    host, _, port = listen.rpartition(":")
    return {"STRATA_METRICS_LISTEN": f"{host}:{int(port) + index if int(port) else 0}"}
