"""Which adapter serves each port, chosen from Settings: the database (with its
migrations), the blob store, Redis and what shares it (record cache, CacheService,
events, rate limits), the page-token key and the TLS certificates.

app.py calls these to start a server; the CLI's offline commands (`strata token`,
`strata migrate`) and the in-process service tests open storage the same way. An
operator's mistake found here is a StartupError whose message says what to do.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from strata_server.api import tls
from strata_server.config import Settings
from strata_server.core.errors import Unavailable
from strata_server.core.models import CacheStats, RecordRef
from strata_server.core.paging import PageTokens
from strata_server.core.rate_rules import RateDefaults
from strata_server.storage import migrations
from strata_server.storage.cached_records import CachedRecordStore, RecordCachePolicy
from strata_server.storage.composite import Storage
from strata_server.storage.memory.events import LocalEvents
from strata_server.storage.memory.rates import LocalRateLimiter
from strata_server.storage.ports import (
    BackupStore,
    BlobStore,
    Cache,
    Events,
    RateLimiter,
    RecordStore,
)
from strata_server.storage.redis import client as redis_client

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger("strata.server")


class StartupError(Exception):
    """The server cannot start; the message tells the operator what to do."""


async def open_database(settings: Settings) -> Storage:
    """Open the configured backend, applying or checking migrations first.

    SQLite applies pending migrations itself (after an online backup of the file);
    PostgreSQL refuses to start on pending migrations unless `migrate` is set, since
    several replicas share that database and schema changes want an operator.
    """
    target = settings.database
    try:
        if target.kind == "sqlite":
            from strata_server.storage.sqlite import open_sqlite

            schema = None
            if target.memory:
                schema = migrations.memory_schema()
            else:
                applied, backup = await asyncio.to_thread(
                    migrations.up, target, backup=settings.backup_before_migrate
                )
                if applied:
                    log.info("migrated", applied=applied, backup=str(backup) if backup else None)
            return await open_sqlite(
                target.path,
                max_record_bytes=settings.max_record_bytes,
                readers=settings.sqlite_readers,
                schema_sql=schema,
            )
        from strata_server.storage.postgres import open_postgres

        pending = await asyncio.to_thread(migrations.pending, target)
        if pending and not settings.migrate:
            raise StartupError(
                f"the database has {len(pending)} pending migration(s) ({', '.join(pending)}); "
                "run `strata migrate up` or start with --migrate"
            )
        if pending:
            applied, _ = await asyncio.to_thread(migrations.up, target)
            log.info("migrated", applied=applied)
        return await open_postgres(
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
            archive_class=settings.s3_archive_storage_class,
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


def open_backups(settings: Settings) -> BackupStore | None:
    """The embedded shape's backups (a SQLite file with blobs on local disk); None for
    a throwaway in-memory store and for the production shape, which is backed up
    with pg_dump and the bucket's tools (docs/recovery.md). Scheduled backups on a
    shape that has none are a StartupError."""
    target = settings.database
    embedded = target.kind == "sqlite" and not target.memory and settings.s3_endpoint is None
    if not embedded:
        if settings.backup_interval_seconds > 0:
            raise StartupError(
                "STRATA_BACKUP_INTERVAL_SECONDS backs up the embedded shape (a SQLite file "
                "with blobs on local disk); back up PostgreSQL and the bucket with their own "
                "tools instead (docs/recovery.md), and unset it"
            )
        return None
    from strata_server.storage.sqlite.backups import SqliteBackups

    folder = settings.backup_dir or settings.data_dir / "backups"
    return SqliteBackups(Path(target.path), settings.data_dir, folder, settings.backup_keep)


async def page_tokens(settings: Settings, database: Storage) -> PageTokens:
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


async def check_redis_memory(redis: Redis) -> None:
    """Warn at start when Redis is not a bounded, evicting cache; never fail start-up
    (a Redis that is down now is the cache's outage handling's business)."""
    try:
        warning = await asyncio.wait_for(redis_client.memory_warning(redis), timeout=2.0)
    except Exception as error:
        log.info("redis memory settings not checked", error=str(error) or type(error).__name__)
        return
    if warning is not None:
        log.warning("redis memory limit", problem=warning)


def open_caching(settings: Settings, database: Storage, redis: Redis | None) -> Caching:
    """Redis when configured; else an in-process cache, but only where one process
    serves the data (a SQLite file without --workers), since no other process would
    invalidate it; else no cache (CacheService answers FAILED_PRECONDITION and
    record reads go to the database)."""
    cache: Cache | None = None
    backend = "none"
    if redis is not None:
        from strata_server.storage.redis.cache import RedisCache

        cache, backend = RedisCache(redis), "redis"
    elif settings.database.kind == "sqlite" and settings.local_cache:
        from strata_server.storage.memory.cache import MemoryCache

        cache, backend = MemoryCache(settings.cache_memory_bytes), "memory"
    policy = RecordCachePolicy(
        settings.record_cache_ttl_seconds, settings.record_cache_collection_ttls
    )
    records: RecordStore = database.records
    if cache is not None and policy.enabled:
        records = CachedRecordStore(database.records, cache, policy)
    return Caching(backend, cache, records, redis)


async def open_events(settings: Settings, redis: Redis | None = None) -> Events:
    """The wakeup channel between replicas (and worker processes): Redis pub/sub when
    `redis_url` is set, else LISTEN/NOTIFY when the database is PostgreSQL, else
    in-process only. Never fails start-up: an unreachable channel only costs latency
    (long polls re-check on their own) and is reconnected in the background."""
    recheck = settings.stream_recheck_seconds
    if settings.redis_url is not None:
        from strata_server.storage.redis.events import RedisEvents

        return await RedisEvents.open(
            redis if redis is not None else settings.redis_url, recheck_seconds=recheck
        )
    if settings.database.kind == "postgres":
        from strata_server.storage.postgres.events import PostgresEvents

        return await PostgresEvents.open(settings.database.dsn, recheck_seconds=recheck)
    return LocalEvents(complete=not settings.shared_database, recheck_seconds=recheck)


def open_rate_limiter(settings: Settings, redis: Redis | None) -> RateLimiter:
    """Request rates per principal: in Redis when there is one (every replica shares
    each bucket), else in process."""
    defaults = RateDefaults(settings.token_rate, settings.token_burst)
    if redis is not None:
        from strata_server.storage.redis.rates import RedisRateLimiter

        return RedisRateLimiter(redis, defaults)
    return LocalRateLimiter(defaults)


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
