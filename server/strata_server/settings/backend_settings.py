"""Where a server keeps its data: the database (SQLite file or PostgreSQL), Redis,
and the blob store (local disk or S3), and how it connects to each.

A group of `config.Settings` (see the package docstring); `database_target` parses
`database_url` for the code that opens the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from strata_server.core.values import frozen


@frozen
class DatabaseTarget:
    """Which backend to open: `kind` is "sqlite" (with `path`, or ":memory:") or
    "postgres" (with `dsn`)."""

    kind: Literal["sqlite", "postgres"]
    path: str = ""
    dsn: str = ""

    @property
    def memory(self) -> bool:
        """A throwaway in-memory SQLite store."""
        return self.kind == "sqlite" and self.path == ":memory:"


def database_target(url: str) -> DatabaseTarget:
    """Parse a database URL; raises ValueError with what is wrong."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        rest = url[len("sqlite://") :]
        if rest == ":memory:":
            return DatabaseTarget("sqlite", path=":memory:")
        if not rest.startswith("/") or rest == "/":
            raise ValueError(
                "sqlite URLs look like sqlite:///relative.db, sqlite:////abs.db "
                "or sqlite://:memory:"
            )
        return DatabaseTarget("sqlite", path=rest[1:])
    if scheme in ("postgresql", "postgres"):
        return DatabaseTarget("postgres", dsn=url)
    raise ValueError(f"unsupported scheme {scheme!r}: use sqlite:// or postgresql://")


class BackendSettings(BaseModel):
    """The database, Redis and blob store settings."""

    database_url: str = Field(
        "sqlite:///./data/strata.db",
        description="sqlite:///relative/path, sqlite:////absolute/path, sqlite://:memory:, "
        "or postgresql://user:pass@host:port/db",
    )
    db_pool_min: int = Field(2, ge=1, description="PostgreSQL pool: connections kept open")
    db_pool_max: int = Field(10, ge=1, description="PostgreSQL pool: most connections")
    db_statement_timeout_seconds: float = Field(
        30.0,
        ge=0,
        le=24 * 3600,
        description="PostgreSQL: longest one statement may run (its statement_timeout, "
        "0: no limit), so a pathological filter cannot hold a connection for minutes; "
        "the caller gets RESOURCE_EXHAUSTED (reason QUERY_TIMEOUT). Index builds and the "
        "archive tier's moves (archive, restore of a transcript) are "
        "exempt",
    )
    sqlite_readers: int = Field(4, ge=1, le=64, description="SQLite: reader connections")
    migrate: bool = Field(False, description="PostgreSQL: apply pending migrations at start")
    backup_before_migrate: bool = Field(
        True, description="SQLite: online backup of the file before applying migrations"
    )
    shared_database: bool = Field(
        False,
        description="SQLite: other processes write this file too (--workers sets it for "
        "its workers); their writes wake no stream here, so topics are re-checked every "
        "second, one query per topic",
    )
    redis_url: str | None = Field(
        None,
        description="redis://[user:pass@]host:port/db or rediss://...: the cache (CacheService "
        "and record reads) shared by every replica, and wakeups across replicas through Redis "
        "pub/sub instead of PostgreSQL LISTEN/NOTIFY",
    )
    redis_pool_size: int = Field(
        32, ge=2, le=1024, description="Redis: most pooled connections (one is the pub/sub)"
    )
    redis_timeout_seconds: float = Field(
        1.0, gt=0, le=60, description="Redis: command timeout, and longest wait for a connection"
    )
    redis_connect_timeout_seconds: float = Field(
        1.0, gt=0, le=60, description="Redis: connect timeout"
    )
    data_dir: Path = Field(
        Path("data"),
        description="local files: blobs/ (disk blob store) lives here; sqlite://:memory: keeps its "
        "blobs in a temporary directory instead, removed at stop",
    )
    s3_endpoint: str | None = Field(
        None,
        description="host:port of MinIO or any S3; set, artifacts are stored there "
        "instead of under data_dir",
    )
    s3_access_key: str | None = Field(None, description="S3 access key")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret key")
    s3_bucket: str = Field(
        "strata", min_length=3, max_length=63, description="S3 bucket, created if missing"
    )
    s3_secure: bool = Field(True, description="S3 over HTTPS")
    s3_region: str = Field("us-east-1", min_length=1, description="S3 region (for signing)")
    s3_archive_storage_class: Literal[
        "STANDARD_IA", "ONEZONE_IA", "GLACIER_IR", "INTELLIGENT_TIERING", "REDUCED_REDUNDANCY"
    ] = Field(
        "STANDARD_IA",
        description="S3: the storage class archive_artifacts policies move blobs to; "
        "instant-retrieval classes only, so downloads stay transparent (MinIO: "
        "REDUCED_REDUNDANCY; docs/artifacts.md)",
    )
    s3_connect_timeout_seconds: float = Field(
        3.0, gt=0, le=300, description="S3: TCP connect timeout of each request"
    )
    s3_read_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="S3: longest wait for the next bytes of a response; a frozen S3 "
        "answers the caller UNAVAILABLE after this (a timed-out read is not retried)",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        database_target(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None  # an empty STRATA_REDIS_URL means unset
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError("must be redis://host:port/db or rediss://host:port/db")
        return value

    @field_validator("s3_endpoint")
    @classmethod
    def _check_s3_endpoint(cls, value: str | None) -> str | None:
        if not value:
            return None  # an empty STRATA_S3_ENDPOINT means unset
        host, sep, port = value.rpartition(":")
        if "/" in value or (sep and (not host or not port.isdigit())):
            raise ValueError("must be host or host:port, without a scheme (see s3_secure)")
        return value

    @model_validator(mode="after")
    def _check_s3_keys(self) -> BackendSettings:
        if self.s3_endpoint and (not self.s3_access_key or self.s3_secret_key is None):
            raise ValueError("s3_endpoint needs s3_access_key and s3_secret_key")
        return self

    @property
    def database(self) -> DatabaseTarget:
        """The parsed database_url."""
        return database_target(self.database_url)
