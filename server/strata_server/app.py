"""One server process: open the backends Settings name (`backends.py`), register
the servicers over their services (`servicers.py`), add the interceptor, health,
reflection, metrics (`gauges.py`) and the console, serve, and stop gracefully.

With backends.py, the only code that knows every adapter; the services see ports
only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from strata_server import gauges, metrics
from strata_server.api import admission, reflection, tls
from strata_server.api.auth import AuthInterceptor
from strata_server.api.decoding import DecodingInterceptor
from strata_server.api.health import HealthServicer
from strata_server.api.method_rules import STRATA_SERVICES
from strata_server.backends import (
    Caching,
    StartupError,
    check_redis_memory,
    open_blobs,
    open_caching,
    open_certificates,
    open_database,
    open_events,
    open_rate_limiter,
    open_redis,
    page_tokens,
)
from strata_server.config import Settings, insecure_listen
from strata_server.servicers import register_services
from strata_server.services.access_service import Verifier
from strata_server.storage.composite import Storage
from strata_server.storage.memory.events import LocalEvents
from strata_server.storage.ports import (
    BlobStore,
    Events,
)

if TYPE_CHECKING:
    from strata_server.console.serving import RunningConsole

log = structlog.get_logger("strata.server")

SERVICE_NAMES = tuple(service.full_name for service in STRATA_SERVICES)


@dataclass
class Running:
    """A started server: its bound port and what must be closed on stop."""

    server: grpc.aio.Server
    port: int
    database: Storage
    health: health.aio.HealthServicer
    events: Events
    caching: Caching
    blobs: BlobStore
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    metrics_port: int | None = None
    certificates: tls.ServerCertificates | None = None
    """The gRPC port's TLS certificates (None: plaintext); SIGHUP reloads them."""
    console: RunningConsole | None = None
    """The web console served beside gRPC (None: off)."""

    async def stop(self, grace: float) -> None:
        """Refuse new RPCs, let in-flight ones finish within `grace`, then close."""
        if self.console is not None:
            await self.console.stop()
        await self.health.enter_graceful_shutdown()
        for task in self.tasks:
            task.cancel()
        await self.server.stop(grace)
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.events.close()
        await self.caching.close()
        await self.blobs.close()
        await self.database.close()


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """The gRPC server's channel options: message sizes, the HTTP/2 stream limit per
    connection, a backlog that admission (api/admission.py) sheds from instead of
    gRPC core cancelling calls unseen, and HTTP/2 keepalive."""
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 1),
        ("grpc.max_concurrent_streams", 2 * settings.max_streams_per_connection),
        *admission.backlog_options(settings.max_streams),
        ("grpc.keepalive_time_ms", round(settings.keepalive_time_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", round(settings.keepalive_timeout_seconds * 1000)),
        # gRPC core waits this long for the answer to any ping, keepalive pings
        # included (else 60 s, whatever keepalive_timeout_ms says).
        ("grpc.http2.ping_timeout_ms", round(settings.keepalive_timeout_seconds * 1000)),
        ("grpc.keepalive_permit_without_calls", int(settings.keepalive_permit_without_calls)),
        # Keep pinging a connection whose streams are idle (no data either way): by
        # default the server stops after two pings without data, and would never
        # notice that the client of an idle follower has vanished.
        ("grpc.http2.max_pings_without_data", 0),
    ]


IO_THREADS = 32
"""Worker threads for blocking I/O (blob files, the S3 SDK, hashing): the default of
cores + 4 would let a few slow S3 calls starve every other upload and download."""


async def start(settings: Settings) -> Running:
    """Open storage, register every service, bind and start serving."""
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(IO_THREADS, thread_name_prefix="strata-io")
    )
    problem = insecure_listen(settings)
    if problem is not None:
        raise StartupError(problem)
    certificates = open_certificates(settings)
    database = await open_database(settings)
    try:
        tokens = await page_tokens(settings, database)
        blobs = await open_blobs(settings)
    except BaseException:
        await database.close()
        raise
    redis = open_redis(settings)  # one client per process, for the cache, events and rates
    if redis is not None:
        await check_redis_memory(redis)
    events = await open_events(settings, redis)  # one per process, for every service
    caching = open_caching(settings, database, redis)
    verifier = None
    certificate = (
        tls.certificate_principal(settings.certificate_principals)
        if certificates is not None and certificates.mutual and settings.principals
        else None
    )
    if settings.auth == "token":
        verifier = Verifier(
            database.tokens,
            events,
            recheck_seconds=settings.token_recheck_seconds,
            # In-process wakeups: no other process can announce a revocation to it.
            told=not isinstance(events, LocalEvents),
        )
    # One interceptor in every mode (api/wrapping_interceptor.py): decoding, with
    # the caller's checks when a token or a certificate can name the caller. Under
    # --auth none a certificate principal still holds its role and namespaces; a
    # call without one is anonymous, as every call is then.
    interceptor: grpc.aio.ServerInterceptor = (
        AuthInterceptor(
            verifier.authenticate if verifier is not None else None,
            authenticate_certificate=certificate,
            limiter=open_rate_limiter(settings, redis),
            recall_token=verifier.recall if verifier is not None else None,
        )
        if verifier is not None or certificate is not None
        else DecodingInterceptor()
    )
    server = grpc.aio.server(interceptors=[interceptor], options=server_options(settings))

    async def close_storage() -> None:
        await events.close()
        await caching.close()
        await blobs.close()
        await database.close()

    try:
        schedule, scheduled = register_services(
            server, settings, database, caching, events, blobs, tokens, verifier
        )
    except StartupError:
        await close_storage()
        raise
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable(server, SERVICE_NAMES)
    try:
        if certificates is None:
            port = server.add_insecure_port(settings.listen)
        else:  # TLS only: no plaintext port beside it
            port = server.add_secure_port(settings.listen, certificates.credentials())
    except RuntimeError as error:
        await close_storage()
        raise StartupError(f"cannot listen on {settings.listen}: {error}") from None
    if port == 0:
        await close_storage()
        raise StartupError(f"cannot listen on {settings.listen}: address in use or invalid")
    limits = admission.Admission(
        settings.max_streams, settings.max_streams_per_connection, settings.overload_retry_seconds
    )
    # Every RPC task inherits this context from the server's own tasks (admission.py).
    admission.CURRENT.set(limits)
    await server.start()
    metrics_port = None
    background: list[Coroutine[Any, Any, None]] = []
    if settings.metrics_listen is not None:
        background.append(
            gauges.publish(
                database,
                caching.stats,
                lambda: limits.in_progress,
                settings.queue_metrics_seconds,
            )
        )
        metrics_host, _, wanted = settings.metrics_listen.rpartition(":")
        try:
            metrics_port = metrics.serve(metrics_host, int(wanted))
        except OSError as error:
            await server.stop(None)
            await close_storage()
            raise StartupError(
                f"cannot serve metrics on {settings.metrics_listen}: {error}"
            ) from None
    for name in (*SERVICE_NAMES, ""):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    running = Running(
        server,
        port,
        database,
        health_servicer,
        events,
        caching,
        blobs,
        metrics_port=metrics_port,
        certificates=certificates,
    )
    running.tasks.append(asyncio.create_task(schedule.run_every(settings.cleanup_interval_seconds)))
    running.tasks.extend(asyncio.create_task(work) for work in scheduled)
    if verifier is not None:
        background.append(verifier.watch())
    running.tasks.extend(asyncio.create_task(work) for work in background)
    if settings.console_listen is not None:
        from strata_server.console.serving import start_beside  # only when served

        running.console = await start_beside(settings, port)
    return running


def _reload_certificates(running: Running) -> None:
    """SIGHUP: re-read the TLS certificates for new connections (established ones
    keep theirs); without TLS there is nothing to reload, and the server serves on."""
    if running.certificates is None:
        log.info("SIGHUP ignored: no TLS certificates to reload")
        return
    running.certificates.reload()


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully; SIGHUP reloads the
    TLS certificates."""
    running = await start(settings)
    host = settings.listen.rpartition(":")[0]
    log.info(
        "serving",
        address=f"{host}:{running.port}",
        database=settings.database.kind,
        auth=settings.auth,
        pid=os.getpid(),
        metrics_port=running.metrics_port,
        console_port=running.console.port if running.console else None,
        tls="mtls"
        if running.certificates and running.certificates.mutual
        else "tls"
        if running.certificates
        else "off",
    )
    if settings.port_file is not None:
        temp = settings.port_file.with_suffix(".tmp")
        temp.write_text(str(running.port))
        temp.replace(settings.port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload_certificates, running)
    await stop.wait()
    log.info("stopping", grace_seconds=settings.grace_seconds)
    await running.stop(settings.grace_seconds)
    log.info("stopped")
