"""Wiring: builds backends from Settings, registers the services, runs grpc.aio.

The only module that knows every adapter; the services see ports only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from strata.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    artifacts_pb2,
    artifacts_pb2_grpc,
    cache_pb2,
    cache_pb2_grpc,
    queue_pb2,
    queue_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
    transaction_pb2,
    transaction_pb2_grpc,
    transcripts_pb2,
)
from strata_server import metrics
from strata_server.api import admission, reflection, tls
from strata_server.api.admin import AdminService, Backends
from strata_server.api.archive import NamespaceTransfer
from strata_server.api.artifacts import ArtifactService
from strata_server.api.auth import AuthInterceptor
from strata_server.api.cache import CacheService
from strata_server.api.decoding import DecodingInterceptor
from strata_server.api.queue import QueueService
from strata_server.api.records import RecordService, records_topic
from strata_server.api.transaction import TransactionService
from strata_server.api.transcripts import TranscriptService
from strata_server.api.transcripts import add_to_server as add_transcript_service
from strata_server.cleanup import Cleanup, schedule
from strata_server.config import Settings, insecure_listen
from strata_server.core.errors import StrataError, Unavailable
from strata_server.core.models import CacheStats, QueueDepth, RecordRef
from strata_server.core.paging import PageTokens
from strata_server.core.rates import RateDefaults
from strata_server.services.access import TokenAdmin, Verifier
from strata_server.storage import migrations, redis_client
from strata_server.storage.cache.records import CachedRecordStore, RecordCachePolicy
from strata_server.storage.events.local import LocalEvents
from strata_server.storage.ports import (
    BlobStore,
    Cache,
    Database,
    Events,
    RateLimiter,
    RecordStore,
)
from strata_server.storage.rates.local import LocalRateLimiter
from strata_server.transfer.importer import ImportLimits

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger("strata.server")

SERVICE_NAMES = (
    records_pb2.DESCRIPTOR.services_by_name["RecordService"].full_name,
    transaction_pb2.DESCRIPTOR.services_by_name["TransactionService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    queue_pb2.DESCRIPTOR.services_by_name["QueueService"].full_name,
    transcripts_pb2.DESCRIPTOR.services_by_name["TranscriptService"].full_name,
    cache_pb2.DESCRIPTOR.services_by_name["CacheService"].full_name,
    artifacts_pb2.DESCRIPTOR.services_by_name["ArtifactService"].full_name,
)


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
            statement_timeout=settings.db_statement_timeout_seconds,
        )
    except Unavailable as error:
        raise StartupError(f"cannot reach the database: {error.message}") from None


async def open_blobs(settings: Settings) -> BlobStore:
    """The blob store: S3 when `s3_endpoint` is set, else local disk under data_dir (in
    a temporary directory removed at stop for `sqlite://:memory:`).
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
            connect_timeout=settings.s3_connect_timeout_seconds,
            read_timeout=settings.s3_read_timeout_seconds,
        )
    from strata_server.storage.blobs.fs import DiskBlobStore

    try:
        if settings.database.memory:  # a throwaway server writes nothing where it runs
            return await DiskBlobStore.temporary()
        return await DiskBlobStore.connect(settings.data_dir)
    except Unavailable as error:
        raise StartupError(f"cannot use the data directory: {error.message}") from None


PAGE_TOKEN_KEY = "page_token_key"
"""The name of the database-kept page token key (storage's server_secrets)."""


async def page_tokens(settings: Settings, database: Database) -> PageTokens:
    """Page tokens signed with STRATA_PAGE_TOKEN_KEY, or when that is unset with a
    random key kept in the database: the first replica to start makes it and every
    other one reads it, so a token from any replica is good on all of them."""
    if settings.page_token_key is not None:
        return PageTokens(settings.page_token_key.get_secret_value().encode())
    try:
        key = await database.shared_secret(PAGE_TOKEN_KEY, secrets.token_bytes(32))
    except Unavailable as error:
        raise StartupError(f"cannot read the page token key: {error.message}") from None
    return PageTokens(key)


@dataclass
class Running:
    """A started server: its bound port and what must be closed on stop."""

    server: grpc.aio.Server
    port: int
    database: Database
    health: health.aio.HealthServicer
    events: Events
    caching: Caching
    blobs: BlobStore
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    metrics_port: int | None = None
    certificates: tls.ServerCertificates | None = None
    """The gRPC port's TLS certificates (None: plaintext); SIGHUP reloads them."""

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
        await self.caching.close()
        await self.blobs.close()
        await self.database.close()


@dataclass
class Caching:
    """The caches of one process: `cache` for CacheService (None when none can be
    kept consistent), `records` for record reads (the database itself when the
    record cache is off), and the Redis client both may share with the events."""

    backend: str
    cache: Cache | None
    records: RecordStore
    redis: Redis | None = None

    def stats(self) -> CacheStats:
        """The record cache's counters (all zero when it is off)."""
        if isinstance(self.records, CachedRecordStore):
            return self.records.stats()
        return CacheStats()

    async def forget(self, refs: Sequence[RecordRef]) -> None:
        """Drop records deleted by a cleanup from the record cache, if there is one."""
        if isinstance(self.records, CachedRecordStore):
            await self.records.forget(refs)

    async def forget_namespace(self, namespace: str) -> None:
        """Drop a namespace's records from the record cache after an import."""
        if isinstance(self.records, CachedRecordStore):
            await self.records.forget_namespace(namespace)

    async def close(self) -> None:
        """Stop the record cache's probe, drop the cache, close the Redis client."""
        if isinstance(self.records, CachedRecordStore):
            await self.records.close()
        if self.cache is not None:
            await self.cache.close()
        if self.redis is not None:
            await redis_client.close(self.redis)


def open_redis(settings: Settings) -> Redis | None:
    """The process's one Redis client when `redis_url` is set (it connects lazily,
    so an unreachable Redis never stops start-up)."""
    if settings.redis_url is None:
        return None
    return redis_client.connect(
        settings.redis_url,
        max_connections=settings.redis_pool_size,
        timeout=settings.redis_timeout_seconds,
        connect_timeout=settings.redis_connect_timeout_seconds,
    )


async def _check_redis_memory(redis: Redis) -> None:
    """Warn at start when Redis is not a bounded, evicting cache; never fail start-up
    (a Redis that is down now is the cache's outage handling's business)."""
    try:
        warning = await asyncio.wait_for(redis_client.memory_warning(redis), timeout=2.0)
    except Exception as error:
        log.info("redis memory settings not checked", error=str(error) or type(error).__name__)
        return
    if warning is not None:
        log.warning("redis memory limit", problem=warning)


def open_caching(settings: Settings, database: Database, redis: Redis | None) -> Caching:
    """Redis when configured; else an in-process cache, but only where one process
    serves the data (a SQLite file without --workers), since no other process would
    invalidate it; else no cache (CacheService answers FAILED_PRECONDITION and
    record reads go to the database)."""
    cache: Cache | None = None
    backend = "none"
    if redis is not None:
        from strata_server.storage.cache.redis import RedisCache

        cache, backend = RedisCache(redis), "redis"
    elif settings.database.kind == "sqlite" and settings.local_cache:
        from strata_server.storage.cache.memory import MemoryCache

        cache, backend = MemoryCache(settings.cache_memory_bytes), "memory"
    policy = RecordCachePolicy(
        settings.record_cache_ttl_seconds, settings.record_cache_collection_ttls
    )
    records: RecordStore = database
    if cache is not None and policy.enabled:
        records = CachedRecordStore(database, cache, policy)
    return Caching(backend, cache, records, redis)


async def open_events(settings: Settings, redis: Redis | None = None) -> Events:
    """The wakeup channel between replicas (and worker processes): Redis pub/sub when
    `redis_url` is set, else LISTEN/NOTIFY when the database is PostgreSQL, else
    in-process only. Never fails start-up: an unreachable channel only costs latency
    (long polls re-check on their own) and is reconnected in the background."""
    recheck = settings.stream_recheck_seconds
    if settings.redis_url is not None:
        from strata_server.storage.events.redis import RedisEvents

        return await RedisEvents.open(
            redis if redis is not None else settings.redis_url, recheck_seconds=recheck
        )
    if settings.database.kind == "postgres":
        from strata_server.storage.events.postgres import PostgresEvents

        return await PostgresEvents.open(settings.database.dsn, recheck_seconds=recheck)
    return LocalEvents(complete=not settings.shared_database, recheck_seconds=recheck)


class QueueDepths:
    """The queue metrics' figures, read from the database in the background (a
    scrape must not wait on it)."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._depths: list[QueueDepth] = []

    async def refresh_every(self, interval: float) -> None:
        """Read the depths now, then every `interval` seconds."""
        while True:
            try:
                self._depths = await self._database.queue_depths()
            except StrataError as error:
                log.warning("queue metrics not read", error=error.message)
            await asyncio.sleep(interval)

    def counts(self) -> metrics.GaugeSamples:
        """strata_queue_jobs samples."""
        return [
            ({"namespace": d.namespace, "queue": d.queue, "state": state}, float(count))
            for d in self._depths
            for state, count in (
                ("available", d.available),
                ("scheduled", d.scheduled),
                ("leased", d.leased),
            )
        ]

    def ages(self) -> metrics.GaugeSamples:
        """strata_queue_oldest_available_age_seconds samples."""
        return [
            ({"namespace": d.namespace, "queue": d.queue}, d.oldest_available_seconds)
            for d in self._depths
        ]


def _cache_samples(stats: CacheStats) -> metrics.GaugeSamples:
    return [
        ({"counter": "hits"}, float(stats.hits)),
        ({"counter": "misses"}, float(stats.misses)),
        ({"counter": "bypassed"}, float(stats.bypassed)),
        ({"counter": "outages"}, float(stats.outages)),
        ({"counter": "pending_invalidations"}, float(stats.pending_invalidations)),
        ({"counter": "available"}, 1.0 if stats.available else 0.0),
    ]


def open_rate_limiter(settings: Settings, redis: Redis | None) -> RateLimiter:
    """Request rates per principal: in Redis when there is one (every replica shares
    each bucket), else in process."""
    defaults = RateDefaults(settings.token_rate, settings.token_burst)
    if redis is not None:
        from strata_server.storage.rates.redis import RedisRateLimiter

        return RedisRateLimiter(redis, defaults)
    return LocalRateLimiter(defaults)


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


def open_certificates(settings: Settings) -> tls.ServerCertificates | None:
    """The gRPC port's TLS certificates when tls_cert/tls_key are set (checked now,
    before any storage is opened); None serves plaintext."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    files = tls.TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    try:
        return tls.ServerCertificates(files)
    except tls.TlsError as error:
        raise StartupError(str(error)) from None


# --- end of the temporary certificate-principal wiring.


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
        await _check_redis_memory(redis)
    events = await open_events(settings, redis)  # one per process, for every service
    caching = open_caching(settings, database, redis)
    verifier = None
    # Decoding first (outermost): every inner interceptor sees decoded requests.
    interceptors: list[grpc.aio.ServerInterceptor] = [DecodingInterceptor()]
    certificate = (
        tls.certificate_principal(settings.certificate_principals)
        if certificates is not None and certificates.mutual and settings.principals
        else None
    )
    if settings.auth == "token":
        verifier = Verifier(database.tokens, events, recheck_seconds=settings.token_recheck_seconds)
    if verifier is not None or certificate is not None:
        # Under --auth none a certificate principal still holds its role and
        # namespaces; a call without one is anonymous, as every call is then.
        interceptors.append(
            AuthInterceptor(
                verifier.authenticate if verifier is not None else None,
                authenticate_certificate=certificate,
                limiter=open_rate_limiter(settings, redis),
            )
        )
    server = grpc.aio.server(interceptors=interceptors, options=server_options(settings))

    async def close_storage() -> None:
        await events.close()
        await caching.close()
        await blobs.close()
        await database.close()

    records_pb2_grpc.add_RecordServiceServicer_to_server(
        RecordService(caching.records, settings.max_record_bytes, events, tokens=tokens),
        server,
    )
    transaction_pb2_grpc.add_TransactionServiceServicer_to_server(
        TransactionService(
            caching.records,
            settings.max_record_bytes,
            events,
            max_entry_bytes=settings.max_entry_bytes,
        ),
        server,
    )
    add_transcript_service(
        TranscriptService(
            database,
            events,
            max_entry_bytes=settings.max_entry_bytes,
            heartbeat_seconds=settings.transcript_heartbeat_seconds,
            tokens=tokens,
        ),
        server,
    )
    cache_pb2_grpc.add_CacheServiceServicer_to_server(
        CacheService(
            caching.cache,
            max_value_bytes=settings.cache_max_value_bytes,
            default_ttl=settings.cache_default_ttl_seconds,
        ),
        server,
    )
    queue_pb2_grpc.add_QueueServiceServicer_to_server(
        QueueService(database, events, settings.max_record_bytes, tokens=tokens), server
    )
    artifacts_pb2_grpc.add_ArtifactServiceServicer_to_server(
        ArtifactService(
            database,
            blobs,
            settings.max_artifact_bytes,
            settings.upload_idle_timeout_seconds,
            tokens=tokens,
        ),
        server,
    )

    def wake_watches(refs: Sequence[RecordRef]) -> None:
        # Removed records are changes too: wake the watches of their collections
        # (a watched collection is not re-checked while nothing waits to settle).
        for namespace, collection in {(ref.namespace, ref.collection) for ref in refs}:
            events.notify(records_topic(namespace, collection))

    async def purged(refs: Sequence[RecordRef]) -> None:
        wake_watches(refs)
        await caching.forget(refs)

    async def purge_expired(limit: int) -> list[RecordRef]:
        refs = await caching.records.purge_expired(limit)
        wake_watches(refs)
        return refs

    cleanup = Cleanup(
        database,
        keep_completed=timedelta(seconds=settings.completed_job_retention_seconds),
        purge_expired=purge_expired,
        forget=purged,
        blobs=blobs,
        blob_grace=timedelta(seconds=settings.blob_sweep_grace_seconds),
    )
    admin_pb2_grpc.add_AdminServiceServicer_to_server(
        AdminService(
            database,
            Backends(cache=caching.backend, blobs=blobs.kind),
            datetime.now(UTC),
            caching.stats,
            cleanup,
            blobs,
            timedelta(seconds=settings.blob_sweep_grace_seconds),
            NamespaceTransfer(
                database,
                blobs,
                limits=ImportLimits(
                    archive_bytes=settings.max_import_bytes,
                    line_bytes=settings.import_line_bytes,
                    rows_bytes=settings.max_import_rows_bytes,
                ),
                idle_seconds=settings.import_idle_timeout_seconds,
                forget=caching.forget_namespace,
            ),
            token_admin=TokenAdmin(database.tokens, events, verifier.forget if verifier else None),
            tokens=tokens,
        ),
        server,
    )
    health_servicer = health.aio.HealthServicer()
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
        metrics.gauge_source(
            "strata_db_pool_connections",
            "Database connections by state: size (open), idle, waiting (callers queued)",
            ["state"],
            lambda: [
                ({"state": key}, float(value))
                for key, value in database.pool_stats().items()
                if key != "requests"
            ],
        )
        metrics.gauge_source(
            "strata_db_requests",
            "Database reads, statements and transactions run since the start (connections "
            "handed out by the pool): what idle streams must not add to",
            [],
            lambda: [({}, float(database.pool_stats().get("requests", 0)))],
        )
        metrics.gauge_source(
            "strata_record_cache",
            "Record cache counters since start: hits, misses, bypassed (read from the "
            "database while the cache was unreachable), outages, pending_invalidations, "
            "available (1 or 0)",
            ["counter"],
            lambda: _cache_samples(caching.stats()),
        )
        metrics.gauge_source(
            "strata_rpcs_in_progress",
            "RPCs admitted and not finished (what STRATA_MAX_STREAMS limits)",
            [],
            lambda: [({}, float(limits.in_progress))],
        )
        depths = QueueDepths(database)
        metrics.gauge_source(
            "strata_queue_jobs",
            "Unfinished jobs per queue by state (available, scheduled, leased), as of the "
            "last read (every STRATA_QUEUE_METRICS_SECONDS)",
            ["namespace", "queue", "state"],
            depths.counts,
        )
        metrics.gauge_source(
            "strata_queue_oldest_available_age_seconds",
            "How long the oldest available job of each queue has waited, as of the last read",
            ["namespace", "queue"],
            depths.ages,
        )
        background.append(depths.refresh_every(settings.queue_metrics_seconds))
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
    running.tasks.append(
        asyncio.create_task(schedule(cleanup, database, settings.cleanup_interval_seconds))
    )
    if verifier is not None:
        background.append(verifier.watch())
    running.tasks.extend(asyncio.create_task(work) for work in background)
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
