"""Wiring: builds backends from Settings, registers the services, runs grpc.aio.

The only module that knows every adapter; the services see ports only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from strata.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    artifacts_pb2,
    artifacts_pb2_grpc,
    queue_pb2,
    queue_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
    transaction_pb2,
    transaction_pb2_grpc,
)
from strata_server import metrics
from strata_server.api.admin import AdminService, Backends
from strata_server.api.artifacts import ArtifactService
from strata_server.api.queue import QueueService
from strata_server.api.records import RecordService
from strata_server.api.transaction import TransactionService
from strata_server.config import Settings
from strata_server.core.errors import StrataError, Unavailable
from strata_server.storage import migrations
from strata_server.storage.events.local import LocalEvents
from strata_server.storage.ports import BlobStore, Database, Events

log = structlog.get_logger("strata.server")

SERVICE_NAMES = (
    records_pb2.DESCRIPTOR.services_by_name["RecordService"].full_name,
    transaction_pb2.DESCRIPTOR.services_by_name["TransactionService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    queue_pb2.DESCRIPTOR.services_by_name["QueueService"].full_name,
    artifacts_pb2.DESCRIPTOR.services_by_name["ArtifactService"].full_name,
)
PURGE_BATCH = 1000


class StartupError(Exception):
    """The server cannot start; the message tells the operator what to do."""


async def open_database(settings: Settings) -> Database:
    """Open the configured backend, applying or checking migrations first.

    SQLite applies pending migrations itself (after an online backup of the file);
    PostgreSQL refuses to start on pending migrations unless `migrate` is set, since
    several replicas share that database and schema changes want an operator.
    """
    target = settings.database
    try:
        if target.kind == "sqlite":
            from strata_server.storage.sqlite import SqliteDatabase

            schema = None
            if target.memory:
                schema = migrations.memory_schema()
            else:
                applied, backup = await asyncio.to_thread(
                    migrations.up, target, backup=settings.backup_before_migrate
                )
                if applied:
                    log.info("migrated", applied=applied, backup=str(backup) if backup else None)
            return await SqliteDatabase.open(
                target.path,
                max_record_bytes=settings.max_record_bytes,
                readers=settings.sqlite_readers,
                schema_sql=schema,
            )
        from strata_server.storage.postgres import PostgresDatabase

        pending = await asyncio.to_thread(migrations.pending, target)
        if pending and not settings.migrate:
            raise StartupError(
                f"the database has {len(pending)} pending migration(s) ({', '.join(pending)}); "
                "run `strata migrate up` or start with --migrate"
            )
        if pending:
            applied, _ = await asyncio.to_thread(migrations.up, target)
            log.info("migrated", applied=applied)
        return await PostgresDatabase.open(
            target.dsn,
            max_record_bytes=settings.max_record_bytes,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
        )
    except Unavailable as error:
        raise StartupError(f"cannot reach the database: {error.message}") from None


async def open_blobs(settings: Settings) -> BlobStore:
    """The blob store: S3 when `s3_endpoint` is set, else local disk under data_dir.
    An unreachable S3 does not stop start-up: artifact calls answer UNAVAILABLE until
    it is back, while everything else serves."""
    if settings.s3_endpoint:
        from strata_server.storage.blobs.s3 import S3BlobStore

        secret = settings.s3_secret_key
        return await S3BlobStore.connect(
            settings.s3_endpoint,
            access_key=settings.s3_access_key or "",
            secret_key=secret.get_secret_value() if secret is not None else "",
            bucket=settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
            max_object=settings.max_artifact_bytes + settings.max_artifact_bytes // 8 + (1 << 20),
        )
    from strata_server.storage.blobs.fs import DiskBlobStore

    try:
        return await DiskBlobStore.connect(settings.data_dir)
    except Unavailable as error:
        raise StartupError(f"cannot use the data directory: {error.message}") from None


@dataclass
class Running:
    """A started server: its bound port and what must be closed on stop."""

    server: grpc.aio.Server
    port: int
    database: Database
    health: health.aio.HealthServicer
    events: Events
    blobs: BlobStore
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    metrics_port: int | None = None

    async def stop(self, grace: float) -> None:
        """Refuse new RPCs, let in-flight ones finish within `grace`, then close."""
        await self.health.enter_graceful_shutdown()
        for task in self.tasks:
            task.cancel()
        await self.server.stop(grace)
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.events.close()
        await self.blobs.close()
        await self.database.close()


async def open_events(settings: Settings) -> Events:
    """The wakeup channel between replicas (and worker processes): Redis pub/sub when
    `redis_url` is set, else LISTEN/NOTIFY when the database is PostgreSQL, else
    in-process only. Never fails start-up: an unreachable channel only costs latency
    (long polls re-check on their own) and is reconnected in the background."""
    if settings.redis_url is not None:
        from strata_server.storage.events.redis import RedisEvents

        return await RedisEvents.open(settings.redis_url)
    if settings.database.kind == "postgres":
        from strata_server.storage.events.postgres import PostgresEvents

        return await PostgresEvents.open(settings.database.dsn)
    return LocalEvents()


async def _purge(database: Database, interval: float, keep_completed: timedelta) -> None:
    """Remove expired records and long-completed jobs in the background; reads
    already hide expired records."""
    while True:
        await asyncio.sleep(interval)
        try:
            while await database.purge_expired(PURGE_BATCH) == PURGE_BATCH:
                pass
            before = datetime.now(UTC) - keep_completed
            while await database.purge_completed(before, PURGE_BATCH) == PURGE_BATCH:
                pass
        except StrataError as error:
            log.warning("background purge failed", error=error.message)


IO_THREADS = 32
"""Worker threads for blocking I/O (blob files, the S3 SDK, hashing): the default of
cores + 4 would let a few slow S3 calls starve every other upload and download."""


async def start(settings: Settings) -> Running:
    """Open storage, register every service, bind and start serving."""
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(IO_THREADS, thread_name_prefix="strata-io")
    )
    database = await open_database(settings)
    try:
        blobs = await open_blobs(settings)
    except BaseException:
        await database.close()
        raise
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 1),
        ]
    )
    events = await open_events(settings)  # one per process, for every service
    records_pb2_grpc.add_RecordServiceServicer_to_server(
        RecordService(database, settings.max_record_bytes, events), server
    )
    transaction_pb2_grpc.add_TransactionServiceServicer_to_server(
        TransactionService(database, settings.max_record_bytes, events), server
    )
    queue_pb2_grpc.add_QueueServiceServicer_to_server(
        QueueService(database, events, settings.max_record_bytes), server
    )
    artifacts_pb2_grpc.add_ArtifactServiceServicer_to_server(
        ArtifactService(database, blobs, settings.max_artifact_bytes), server
    )
    admin_pb2_grpc.add_AdminServiceServicer_to_server(
        AdminService(database, Backends(cache="memory", blobs=blobs.kind), datetime.now(UTC)),
        server,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port = server.add_insecure_port(settings.listen)
    except RuntimeError as error:
        await events.close()
        await blobs.close()
        await database.close()
        raise StartupError(f"cannot listen on {settings.listen}: {error}") from None
    if port == 0:
        await events.close()
        await blobs.close()
        await database.close()
        raise StartupError(f"cannot listen on {settings.listen}: address in use or invalid")
    await server.start()
    metrics_port = None
    if settings.metrics_listen is not None:
        metrics.gauge_source(
            "strata_db_pool_connections",
            "Database connections by state: size (open), idle, waiting (callers queued)",
            ["state"],
            lambda: [
                ({"state": key}, float(value)) for key, value in database.pool_stats().items()
            ],
        )
        metrics_host, _, wanted = settings.metrics_listen.rpartition(":")
        try:
            metrics_port = metrics.serve(metrics_host, int(wanted))
        except OSError as error:
            await server.stop(None)
            await events.close()
            await database.close()
            raise StartupError(
                f"cannot serve metrics on {settings.metrics_listen}: {error}"
            ) from None
    for name in (*SERVICE_NAMES, ""):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    running = Running(
        server, port, database, health_servicer, events, blobs, metrics_port=metrics_port
    )
    running.tasks.append(
        asyncio.create_task(
            _purge(
                database,
                settings.purge_interval_seconds,
                timedelta(seconds=settings.completed_job_retention_seconds),
            )
        )
    )
    return running


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    running = await start(settings)
    host = settings.listen.rpartition(":")[0]
    log.info(
        "serving",
        address=f"{host}:{running.port}",
        database=settings.database.kind,
        pid=os.getpid(),
        metrics_port=running.metrics_port,
    )
    if settings.port_file is not None:
        temp = settings.port_file.with_suffix(".tmp")
        temp.write_text(str(running.port))
        temp.replace(settings.port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping", grace_seconds=settings.grace_seconds)
    await running.stop(settings.grace_seconds)
    log.info("stopped")
