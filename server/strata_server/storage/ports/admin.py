"""The admin ports: audit, retention, usage, integrity, indexes, tokens, quotas and
request rates: what operators drive through AdminService and the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

from strata_server.core.access_rules import Principal
from strata_server.core.index_paths import RecordIndex
from strata_server.core.integrity_findings import Finding, IntegrityReport
from strata_server.core.models import (
    Actor,
    AuditQuery,
    LoggedAudit,
    Page,
    Progress,
    QueueDepth,
    Usage,
)
from strata_server.core.quota_rules import Quota
from strata_server.core.retention_rules import (
    CleanupRun,
    CleanupStep,
    Exclude,
    RetentionPolicy,
    Target,
)
from strata_server.core.token_rules import NewToken, Token
from strata_server.core.values import frozen


class AuditLog(Protocol):
    """Reads of the audit log every mutation appends to."""

    async def list_audit(self, namespace: str, query: AuditQuery) -> Page[LoggedAudit]:
        """Entries matching `query`, newest (largest seq) first; `last_key` is
        (seq,) of the last entry when more may follow."""
        ...


@frozen
class OldJobs:
    """The finished jobs one retention step takes. A step counts them, then purges
    them batch by batch: one value for both keeps the count and the purges from
    selecting differently."""

    namespace: str | None
    """None: of every namespace."""
    queue: str | None
    """None: of every queue."""
    state: str
    """"completed" or "dead"."""
    before: datetime
    """Only jobs finished before this."""
    exclude: Exclude
    """Which queues are left to other policies."""


@frozen
class OldLog:
    """The audit or request log entries one retention step takes (counted, then
    purged batch by batch, as `OldJobs`)."""

    log: Target
    """Target.AUDIT_LOG or Target.REQUEST_LOG."""
    namespace: str | None
    """None: of every namespace."""
    before: datetime
    """Only entries written before this."""
    default: bool
    """The server default's step: not the namespaces with a policy for `log`."""


class RetentionStore(Protocol):
    """Retention policies, and the finished jobs they remove."""

    async def set_retention(self, policy: RetentionPolicy, *, actor: Actor) -> RetentionPolicy:
        """Create or replace the policy of (namespace, target, selector)."""
        ...

    async def list_retention(self, namespace: str | None) -> list[RetentionPolicy]:
        """Policies of a namespace (None: of every namespace)."""
        ...

    async def delete_retention(
        self, namespace: str, target: Target, selector: str, *, actor: Actor
    ) -> None:
        """Remove a policy; NotFound if there is none."""
        ...

    async def count_old_jobs(self, jobs: OldJobs) -> int:
        """How many jobs `jobs` selects."""
        ...

    async def purge_old_jobs(self, jobs: OldJobs, limit: int) -> int:
        """Delete up to `limit` of them, oldest first; how many went."""
        ...

    async def count_old_transcripts(self, namespace: str, before: datetime) -> int:
        """Transcripts of a namespace sealed before `before` (open ones never)."""
        ...

    async def purge_old_transcripts(self, namespace: str, before: datetime, limit: int) -> int:
        """Delete up to `limit` of them with their entries, oldest seal first, each
        with a `retention` audit entry; how many went."""
        ...

    async def count_old_artifacts(self, namespace: str, kind: str, before: datetime) -> int:
        """Artifacts of a namespace created before `before`, of `kind`, or ("") of
        every kind no artifacts policy of the namespace names."""
        ...

    async def purge_old_artifacts(
        self, namespace: str, kind: str, before: datetime, limit: int
    ) -> int:
        """Delete up to `limit` of those rows, oldest first, each with a `retention`
        audit entry (their blobs are left to the orphan sweep); how many went."""
        ...

    async def count_old_log(self, old: OldLog) -> int:
        """How many log entries `old` selects."""
        ...

    async def purge_old_log(self, old: OldLog, limit: int) -> int:
        """Delete up to `limit` of them, oldest first, unaudited (an audit entry per
        removed audit entry would never let the log shrink); how many went. A batch
        of audit entries raises each namespace's horizon in its own transaction, past
        which `RecordStore.record_changes` refuses a cursor (CursorExpired)."""
        ...

    async def count_idle_transcripts(self, namespace: str | None, before: datetime) -> int:
        """Open transcripts (of a namespace, None: of every one) last appended to,
        or created, before `before`."""
        ...

    async def seal_idle_transcripts(
        self, namespace: str | None, before: datetime, limit: int
    ) -> list[tuple[str, str]]:
        """Seal up to `limit` of them, longest idle first, each with a `seal` audit
        entry by the system actor; the (namespace, id) of each sealed."""
        ...

    async def lead(self, name: str) -> bool:
        """Whether this process holds the lock `name` among every process on this
        database, taking it when it is free; once taken it stays held until this
        process closes or loses its database session (PostgreSQL: a session
        advisory lock; SQLite: a file lock beside the database)."""
        ...


class CleanupRuns(Protocol):
    """The scheduled cleanup passes, kept in the database so that every replica can
    say which replica ran the last one and how it went. Only the newest
    core.retention_rules.KEEP_RUNS are kept."""

    async def start_run(self, replica: str, started: datetime) -> int:
        """Record a pass starting; its id. A pass left unfinished (its replica died)
        is closed first, with an error naming its replica."""
        ...

    async def run_progress(self, run: int, phase: str, done: int, total: int) -> None:
        """How far the pass's current step (`phase`) has come."""
        ...

    async def finish_run(
        self, run: int, finished: datetime, steps: tuple[CleanupStep, ...], error: str | None
    ) -> None:
        """Record the pass's end, what it removed, and its error if it failed."""
        ...

    async def recent_runs(self, limit: int) -> list[CleanupRun]:
        """The newest `limit` passes, newest first."""
        ...


class UsageReport(Protocol):
    """What namespaces store, for GetUsage."""

    async def usage(self, namespace: str | None, owner: str | None = None) -> Usage:
        """Per namespace (None: every namespace that stores anything), by name, by
        aggregate queries and the transcripts' counters (no scan of entries). With
        `owner`, only that owner's records, transcripts and artifacts (jobs have no
        owner)."""
        ...

    async def queue_depths(self) -> list[QueueDepth]:
        """Every queue with unfinished jobs, in every namespace."""
        ...


class IntegrityStore(Protocol):
    """CheckIntegrity's database checks."""

    def check_integrity(
        self, namespace: str | None, *, repair: bool
    ) -> AsyncIterator[Progress | Finding | tuple[str, int]]:
        """Progress messages, findings (repaired when `repair` and safe), and for
        each check ("check name", how many things it looked at)."""
        ...


class IntegrityLog(Protocol):
    """The last integrity report of each scope, kept in the database so every
    server process shows the same one, whichever process ran the check."""

    async def save_report(self, scope: str, report: IntegrityReport) -> None:
        """Keep `report` as the last of `scope` (a namespace, or "*" for all)."""
        ...

    async def last_report(self, scope: str) -> IntegrityReport | None:
        """The last report saved for `scope`, or None if none was."""
        ...


class IndexAdmin(Protocol):
    """Secondary indexes declared on a data field of one collection."""

    def create_index(
        self, namespace: str, collection: str, path: tuple[str, ...], *, actor: Actor
    ) -> AsyncIterator[Progress | RecordIndex]:
        """Declare an index on data `path` and build it unless built: progress
        messages, then the index (not `ready` if a concurrent build by another
        process has not finished). Declaring a declared index returns it."""
        ...

    async def list_indexes(self, namespace: str, collection: str | None) -> list[RecordIndex]:
        """The declarations of a namespace (or one collection), by collection and path."""
        ...

    async def drop_index(
        self, namespace: str, collection: str, path: tuple[str, ...], *, actor: Actor
    ) -> None:
        """Remove a declaration (NotFound if none); the database index goes once no
        declaration needs it."""
        ...


class TokenStore(Protocol):
    """Bearer tokens, found by the hash of their secret (core/token_rules.py).

    One table for the whole server, not per namespace. Tokens are never deleted:
    a revoked one keeps its row (and its name), so its revocation is remembered
    and `fingerprint` only ever grows. Each create and revoke writes its audit
    entry (entity "token", in the reserved namespace "*") in the same transaction.
    """

    async def create_token(self, token: NewToken, secret_hash: str, *, actor: Actor) -> Token:
        """Store a new token (expiring `token.ttl` after now, by the database's
        clock); AlreadyExists when a token, revoked or not, has the name."""
        ...

    async def list_tokens(self, after: str | None, limit: int, *, inactive: bool) -> Page[Token]:
        """Up to `limit` tokens by name after `after`: the active ones, or with
        `inactive` the revoked and expired ones too. `last_key` is `(name,)` when a
        further page may exist."""
        ...

    async def revoke_token(self, name: str, *, actor: Actor) -> Token:
        """Mark the token revoked now; NotFound when no token has the name. A
        revoked token is returned unchanged (and nothing is written)."""
        ...

    async def find_token(self, secret_hash: str) -> Token | None:
        """The token whose secret has this hash (revoked or expired ones too), or None."""
        ...

    async def fingerprint(self) -> tuple[int, int]:
        """Something that changes whenever a token is created or revoked (how many
        tokens there are, and how many are revoked): a cheap probe for revocations a
        server was not told about."""
        ...


class QuotaStore(Protocol):
    """Per-namespace storage quotas (core/quota_rules.py says what counts). The figure
    is kept in each write's own transaction, and a write that would take a
    namespace past its quota raises QuotaExceeded having written nothing."""

    async def set_quota(self, namespace: str, max_bytes: int, *, actor: Actor) -> Quota:
        """Create or change the quota (0: remove it), recounting what the namespace
        stores, with an audit entry; the quota as saved (for a removal, max_bytes 0
        and what the namespace stores)."""
        ...

    async def list_quotas(self, namespace: str | None) -> list[Quota]:
        """The quotas of one namespace (None: of all), by namespace."""
        ...


class RateLimiter(Protocol):
    """Request rates per principal: a token bucket (core/rate_rules.py), kept in process
    or shared by every replica (Redis)."""

    async def acquire(self, principal: Principal) -> float | None:
        """Take one request from the principal's bucket: None when allowed (also for
        a principal without a limit), else the seconds to wait before retrying."""
        ...

    def limits(self, principal: Principal) -> bool:
        """Whether any rate applies to the principal (else `acquire` always allows
        it, and a caller may skip it)."""
        ...
