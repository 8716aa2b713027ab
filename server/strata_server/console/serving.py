"""Serving the console over HTTP with uvicorn, inside `strata serve` or alone
(`strata console --target HOST:PORT`).

The socket is bound here, before uvicorn starts, so that a taken port is known at
once and port 0 reports the port it got. uvicorn then serves on this process's
event loop beside gRPC; it installs no signal handlers of its own (the caller
owns shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from dataclasses import dataclass

import structlog
import uvicorn

from strata import TLSConfig
from strata_server.config import Settings
from strata_server.console.gateway import Upstream
from strata_server.console.view import Console
from strata_server.console.web import create_app

log = structlog.get_logger("strata.console")


class ConsoleError(Exception):
    """The console cannot be served (e.g. its address is taken)."""


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the process that runs it."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]  # uvicorn's own is untyped
        yield


@dataclass
class RunningConsole:
    """A console being served: its port, and how to stop it."""

    port: int
    server: uvicorn.Server
    task: asyncio.Task[None]
    console: Console

    async def stop(self) -> None:
        """Stop taking requests, end the open ones (live views included), close."""
        self.server.should_exit = True
        # Live views (server-sent events) never end by themselves: don't wait for them.
        self.server.force_exit = True
        await self.console.runs.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def bind(listen: str) -> socket.socket:
    """A listening socket on `listen` (host:port); ConsoleError if it cannot be had."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(128)
    except OSError as error:
        sock.close()
        raise ConsoleError(f"cannot serve the console on {listen}: {error.strerror}") from None
    sock.setblocking(False)
    return sock


async def start_console(listen: str, upstream: Upstream) -> RunningConsole:
    """Serve the console on `listen`, calling the API at `upstream`."""
    # The console calls as its signed-in users, never as whoever started it: the
    # client would otherwise send $STRATA_TOKEN for visitors who did not sign in.
    os.environ.pop("STRATA_TOKEN", None)
    sock = bind(listen)
    app = create_app(upstream)
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=2,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise ConsoleError(f"the console stopped while starting on {listen}")
        await asyncio.sleep(0.01)
    port: int = sock.getsockname()[1]
    return RunningConsole(port, server, task, app.state.console)


def upstream_of(listen: str, port: int) -> str:
    """The address the console in `strata serve` dials: the gRPC port it serves,
    over loopback when it listens on every interface."""
    host = listen.rpartition(":")[0].strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start_beside(settings: Settings, port: int) -> RunningConsole | None:
    """The console of `strata serve`, calling the gRPC port `port` it serves; None
    when it is off, or when its address cannot be had: the console is an aid, so a
    taken port is logged as a warning and gRPC is served without it."""
    if settings.console_listen is None:
        return None
    tls = None
    if settings.tls_cert is not None:
        if settings.tls_client_ca is not None:
            log.warning("console not served: it cannot present a client certificate (mTLS)")
            return None
        tls = TLSConfig(root_certificates=str(settings.tls_cert))
    upstream = Upstream(upstream_of(settings.listen, port), tls=tls)
    try:
        return await start_console(settings.console_listen, upstream)
    except ConsoleError as error:
        log.warning("console not served", reason=str(error))
        return None


def run_standalone(target: str, listen: str) -> int:
    """`strata console`: serve the console alone until SIGINT/SIGTERM, calling the
    API at `target` (TLS from $STRATA_TLS_CA, as for any client). Returns the exit
    status: 2 when the console cannot be served."""

    async def main() -> int:
        try:
            running = await start_console(listen, Upstream(target))
        except ConsoleError as error:
            log.error("console not served", reason=str(error))
            return 2
        host = listen.rpartition(":")[0]
        log.info("serving console", address=f"http://{host}:{running.port}", target=target)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await running.stop()
        return 0

    return asyncio.run(main())
