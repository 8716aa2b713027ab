"""The one place Strata reads configuration.

Precedence, highest first: command-line flags, `STRATA_*` environment variables,
the TOML file named by `--config` / `STRATA_CONFIG`, then the defaults below.
Everything is validated at start, so a bad value stops the server with one clear
message instead of failing on the first request.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from strata_server.core import subjects
from strata_server.core.access_rules import Principal, Role
from strata_server.core.paging import PageTokens
from strata_server.core.validation import COLLECTION_RE

MIB = 1024 * 1024
GIB = 1024 * MIB


class ConfigError(Exception):
    """The configuration is invalid; the message says which setting and why."""


class CertificatePrincipal(BaseModel):
    """What a client certificate's subject may do under mTLS: one entry of the
    `[principals."<subject>"]` tables of the configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["reader", "writer", "admin"] = Field(description="reader, writer or admin")
    namespaces: list[str] = Field(
        min_length=1, description='the namespaces it may name, or ["*"] for every one'
    )
    rate_limit: float = Field(
        0.0, ge=0, description="requests per second, sustained; 0: the server's default"
    )
    burst: int = Field(0, ge=0, description="requests in one burst; 0: the server's default")

    def principal(self, subject: str) -> Principal:
        """The principal of a certificate with this `subject`; its name (the audit
        actor) is the subject as the configuration writes it."""
        return Principal(
            subject,
            Role.parse(self.role),
            frozenset(self.namespaces),
            rate_limit=self.rate_limit,
            burst=self.burst,
        )


class Settings(BaseSettings):
    """Every setting of a Strata server process."""

    model_config = SettingsConfigDict(env_prefix="STRATA_", extra="forbid", frozen=True)

    listen: str = Field(
        "127.0.0.1:50051", description="host:port to serve gRPC on; port 0 picks one"
    )
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
        "the caller gets RESOURCE_EXHAUSTED (reason QUERY_TIMEOUT). Index builds are "
        "exempt",
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
    local_cache: bool = Field(
        True,
        description="without Redis, keep an in-process cache when one process serves a SQLite "
        "file; --workers turns it off for its workers (they could not see each other's writes)",
    )
    cache_memory_bytes: int = Field(
        64 * MIB, ge=MIB, description="in-process cache: most bytes of values it holds"
    )
    cache_max_value_bytes: int = Field(
        MIB, ge=1, le=512 * MIB, description="CacheService: largest value a Set may store"
    )
    cache_default_ttl_seconds: float = Field(
        300.0, gt=0, le=30 * 24 * 3600, description="CacheService: TTL of a Set without one"
    )
    record_cache_ttl_seconds: float = Field(
        300.0,
        ge=0,
        description="how long GetRecord/BatchGetRecords may serve a record from "
        "the cache; 0 turns the record cache off",
    )
    record_cache_collection_ttls: dict[str, float] = Field(
        default_factory=dict,
        description='per-collection record cache TTLs in seconds, e.g. {"sessions": 30, '
        '"ledger": 0} (0: that collection is never cached); others use record_cache_ttl_seconds',
    )
    sqlite_readers: int = Field(4, ge=1, le=64, description="SQLite: reader connections")
    migrate: bool = Field(False, description="PostgreSQL: apply pending migrations at start")
    backup_before_migrate: bool = Field(
        True, description="SQLite: online backup of the file before applying migrations"
    )
    workers: int = Field(1, ge=1, le=64, description="server processes sharing the port")
    grace_seconds: float = Field(5.0, ge=0, description="shutdown grace for in-flight RPCs")
    max_record_bytes: int = Field(MIB, ge=1024, description="largest record data, in bytes")
    max_message_bytes: int = Field(16 * MIB, ge=MIB, description="largest gRPC message")
    max_streams: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="most RPCs this process runs at once (each holds an HTTP/2 stream: unary "
        "calls and long polls as much as server streams); one more is answered "
        "RESOURCE_EXHAUSTED (reason OVERLOADED) with a RetryInfo delay, counted and logged",
    )
    max_streams_per_connection: int = Field(
        2_000,
        ge=1,
        le=1_000_000,
        description="most RPCs one client connection runs at once; one more is answered "
        "RESOURCE_EXHAUSTED (reason OVERLOADED) with a RetryInfo delay. The server "
        "advertises twice this as HTTP/2 MAX_CONCURRENT_STREAMS: a gRPC client waits for a "
        "free stream beyond that, and one that ignores the setting is refused by the "
        "transport, so one connection can never hold more",
    )
    keepalive_time_seconds: float = Field(
        60.0,
        gt=0,
        le=7 * 24 * 3600,
        description="HTTP/2 keepalive: how long a connection stays silent before the server "
        "pings it; a client that does not answer within keepalive_timeout_seconds is "
        "disconnected and its RPCs end (streams of vanished clients do not stay open)",
    )
    keepalive_timeout_seconds: float = Field(
        20.0, gt=0, le=3600, description="HTTP/2 keepalive: how long a ping may go unanswered"
    )
    keepalive_permit_without_calls: bool = Field(
        False,
        description="HTTP/2 keepalive: ping (and accept clients' pings on) connections with "
        "no RPC in progress too",
    )
    overload_retry_seconds: float = Field(
        1.0,
        gt=0,
        le=300,
        description="the RetryInfo delay an RPC shed by max_streams or "
        "max_streams_per_connection carries",
    )
    max_entry_bytes: int = Field(
        MIB,
        ge=1024,
        description="largest transcript entry (role, content and data JSON), in bytes; "
        "larger content belongs in an artifact",
    )
    stream_recheck_seconds: float = Field(
        300.0,
        ge=0,
        le=3600,
        description="how often a topic that streams wait on (a followed transcript, a "
        "watched collection) is re-checked in the database while wakeups flow, one query "
        "per topic however many streams share it: a safety net only, since writes wake "
        "their streams (0: never). While the events channel between replicas is down, "
        "topics are re-checked every second; so are queues holding jobs (for jobs coming "
        "due) and, on PostgreSQL, collections with changes waiting to settle",
    )
    shared_database: bool = Field(
        False,
        description="SQLite: other processes write this file too (--workers sets it for "
        "its workers); their writes wake no stream here, so topics are re-checked every "
        "second, one query per topic",
    )
    transcript_heartbeat_seconds: float = Field(
        15.0,
        gt=0,
        le=3600,
        description="how long a following ReadTranscript stream stays silent before it "
        "sends a heartbeat",
    )
    cleanup_interval_seconds: float = Field(
        60.0,
        gt=0,
        description="how often the background cleanup runs (expired records, retention "
        "policies, completed jobs), on one server process at a time",
    )
    completed_job_retention_seconds: float = Field(
        7 * 24 * 3600.0, ge=0, description="how long completed jobs are kept before purging"
    )
    queue_metrics_seconds: float = Field(
        10.0, gt=0, description="how often the queue depth and age metrics are read"
    )
    token_rate: float = Field(
        0.0,
        ge=0,
        le=1_000_000,
        description="requests per second each token may make, sustained (a token bucket per "
        "token, shared by every replica through Redis), unless the token sets its own; "
        "0: no limit. Over it a call answers RESOURCE_EXHAUSTED with RetryInfo",
    )
    token_burst: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="requests a token may make at once above its sustained rate, unless the "
        "token sets its own; 0: one second's worth of its rate (at least 1)",
    )
    data_dir: Path = Field(
        Path("data"),
        description="local files: blobs/ (disk blob store) lives here; sqlite://:memory: keeps its "
        "blobs in a temporary directory instead, removed at stop",
    )
    max_artifact_bytes: int = Field(
        10 * GIB, ge=1, description="largest artifact content, in bytes (uncompressed)"
    )
    max_import_bytes: int = Field(
        64 * GIB,
        ge=1,
        description="largest archive ImportNamespace accepts, in bytes; it is staged to a "
        "temporary file whole before anything is written",
    )
    max_import_rows_bytes: int = Field(
        64 * GIB,
        ge=1,
        description="ImportNamespace: most bytes an archive's rows may decompress to, all "
        "members together; past it the import fails with INVALID_ARGUMENT, reason BAD_ARCHIVE, "
        "and imports nothing (each line is also capped, see import_line_bytes)",
    )
    upload_idle_timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=24 * 3600,
        description="UploadArtifact: longest wait for the client's next message; past it the "
        "upload fails with DEADLINE_EXCEEDED (reason IDLE_TIMEOUT) and its staging is removed",
    )
    import_idle_timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=24 * 3600,
        description="ImportNamespace: longest wait for the client's next message; past it the "
        "import fails with DEADLINE_EXCEEDED (reason IDLE_TIMEOUT) and its staged archive is "
        "removed",
    )
    blob_sweep_grace_seconds: float = Field(
        3600.0,
        ge=0,
        description="how old a blob no artifact references must be before cleanup removes it",
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
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", description="uvloop served GetRecord 10-25% faster here than asyncio's loop"
    )
    metrics_listen: str | None = Field(
        None,
        description="port or host:port to serve Prometheus metrics on (/metrics); unset: off. "
        "A port alone binds loopback (127.0.0.1); any other interface must be named. "
        "With --workers N, worker i takes port + i",
    )
    page_token_key: SecretStr | None = Field(
        None,
        description="key that signs page tokens, at least 16 characters, the same on every "
        "replica; unset: a random key made once and kept in the database (which every "
        "replica of it shares). A token signed with another key is INVALID_ARGUMENT",
    )
    tls_cert: Path | None = Field(
        None,
        description="PEM certificate chain of the server; with tls_key, the gRPC port serves "
        "TLS only (no plaintext). Re-read on SIGHUP",
    )
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    tls_client_ca: Path | None = Field(
        None,
        description="PEM certificates of the authorities that sign client certificates; set, "
        "every client must present one (mTLS). Re-read on SIGHUP",
    )
    principals: dict[str, CertificatePrincipal] = Field(
        default_factory=dict,
        description="under mTLS, the role and namespaces of each client certificate subject, "
        'e.g. [principals."CN=billing,O=acme"] role = "writer" namespaces = ["billing"]',
    )
    auth: Literal["none", "token"] = Field(
        "none",
        description="none: every caller may do everything (allowed only on a loopback "
        "listen address, unless allow_insecure); token: every RPC but health needs "
        "`authorization: Bearer <token>` (strata token create)",
    )
    allow_insecure: bool = Field(
        False,
        description="serve with auth none on a non-loopback address anyway (anyone who can "
        "reach the port can read and destroy every namespace)",
    )
    token_recheck_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="token auth: how often each server process checks the tokens table for "
        "revocations it was not told about through the events channel (a revocation made "
        "with `strata token revoke`, or a lost wakeup); one small query per period, shared "
        "by every call",
    )
    console_listen: str | None = Field(
        "127.0.0.1:8080",
        description="host:port to serve the web console on over HTTP (docs/console.md), "
        "beside the gRPC port; off: not served. Port 0 picks one. When the address "
        "cannot be had, the server logs a warning and serves gRPC without the console",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    port_file: Path | None = Field(None, description="write the bound port here once serving")
    config: Path | None = Field(None, description="TOML file with any of these settings")

    @model_validator(mode="after")
    def _check_entry_fits_message(self) -> Settings:
        # A batch of one maximal entry must fit in a message, with room for framing.
        if self.max_entry_bytes > self.max_message_bytes - 64 * 1024:
            raise ValueError(
                "max_entry_bytes must be at least 64 KiB below max_message_bytes "
                "(one entry must fit in one response)"
            )
        return self

    @field_validator("metrics_listen", mode="before")
    @classmethod
    def _metrics_on_loopback(cls, value: object) -> object:
        # A port alone (9464 or ":9464") means loopback: exposing the metrics on
        # another interface takes writing its address.
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.lstrip(":").isdigit():
            return f"127.0.0.1:{value.lstrip(':')}"
        return value

    @field_validator("console_listen", mode="before")
    @classmethod
    def _console_off(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none"):
            return None
        return value

    @field_validator("listen", "metrics_listen", "console_listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError("must be host:port, e.g. 127.0.0.1:50051")
        return value

    @field_validator("record_cache_collection_ttls")
    @classmethod
    def _check_collection_ttls(cls, value: dict[str, float]) -> dict[str, float]:
        for name, ttl in value.items():
            if not COLLECTION_RE.fullmatch(name):
                raise ValueError(f"{name!r} is not a collection name")
            if not 0 <= ttl < float("inf"):
                raise ValueError(f"the TTL of {name!r} must be 0 (off) or a positive number")
        return value

    @field_validator("page_token_key")
    @classmethod
    def _check_page_token_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # an empty STRATA_PAGE_TOKEN_KEY means unset
        if len(value.get_secret_value().encode()) < PageTokens.MIN_KEY_BYTES:
            raise ValueError(f"must be at least {PageTokens.MIN_KEY_BYTES} bytes long")
        return value

    @field_validator("principals")
    @classmethod
    def _check_principals(
        cls, value: dict[str, CertificatePrincipal]
    ) -> dict[str, CertificatePrincipal]:
        seen: dict[subjects.Subject, str] = {}
        for subject in value:
            for key in subjects.keys(subject):
                if seen.setdefault(key, subject) != subject:
                    raise ValueError(f"{subject!r} and {seen[key]!r} name the same subject")
        return value

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
    def _check_tls(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca needs tls_cert and tls_key (mTLS is TLS first)")
        if self.principals and self.tls_client_ca is None:
            raise ValueError(
                "principals are client certificate subjects: they need tls_client_ca (mTLS)"
            )
        return self

    @property
    def certificate_principals(self) -> list[Principal]:
        """The principals of the configured certificate subjects."""
        return [spec.principal(subject) for subject, spec in self.principals.items()]

    @model_validator(mode="after")
    def _check_s3_keys(self) -> Settings:
        if self.s3_endpoint and (not self.s3_access_key or self.s3_secret_key is None):
            raise ValueError("s3_endpoint needs s3_access_key and s3_secret_key")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file(init_settings, env_settings)
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def import_line_bytes(self) -> int:
        """The longest row line ImportNamespace decompresses: 4x the largest record or
        entry the API accepts (a job holds a payload and a result, and JSON escapes
        grow text) plus 1 MiB for the other fields. No row the server exported is
        longer, so a longer line is a forgery, refused before it is held in memory."""
        return 4 * max(self.max_record_bytes, self.max_entry_bytes) + MIB

    @property
    def database(self) -> DatabaseTarget:
        """The parsed database_url."""
        return database_target(self.database_url)


def _config_file(*sources: PydanticBaseSettingsSource) -> Path | None:
    for source in sources:
        value = source().get("config")
        if value:
            path = Path(value)
            if not path.is_file():
                raise ValueError(f"config file {path} does not exist")
            return path
    return None


LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether a listen host reaches only this machine: 127.0.0.0/8, ::1 or localhost.
    Any other name counts as reachable from elsewhere (it may resolve to anything)."""
    bare = host.strip("[]").lower()
    if bare in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def insecure_listen(settings: Settings) -> str | None:
    """Why these settings must not serve (a non-loopback address without
    authentication, like Redis' protected mode), or None when they may."""
    for listen in (settings.listen, settings.console_listen):
        if listen is None:
            continue
        host = listen.rpartition(":")[0]
        if settings.auth == "none" and not settings.allow_insecure and not is_loopback(host):
            return (
                f"refusing to serve {listen} without authentication: use --auth token "
                "(STRATA_AUTH=token), a loopback address, or --allow-insecure"
            )
    return None


@dataclass(frozen=True, slots=True)
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


def load_settings(**overrides: Any) -> Settings:
    """Build the Settings from flags (`overrides`, None meaning "not given"), the
    environment and the config file; raises ConfigError with a readable message."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'config'}: {item['msg']}"
            for item in error.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    except ValueError as error:
        raise ConfigError(f"invalid configuration: {error}") from None
