"""The operator's calls (AdminService), described without doing any I/O.

Each builder is one method of `Client` and `AsyncClient`, with its signature and
docstring. They return the `strata.v1.admin_pb2` (and `access_pb2`) messages
as they are: these calls serve operators and tools such as the `strata` CLI,
which print them. The long calls (`create_index`, `run_cleanup`,
`check_integrity`) stream Progress messages, each passed to `progress` when
given, and return the final message. `export_namespace` and
`import_namespace` are in `strata._transfer_streams`.

Retried after UNAVAILABLE: the reads, and the calls that set a value (a
retention policy, a quota) or revoke a token, since doing them twice does them
once. Never the creates of indexes and tokens, the drops and deletes, or a
cleanup or check (long, and a repeat would redo the work).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, TypeAlias

from strata._convert import duration_from_timedelta, timestamp_from_datetime
from strata._machines import Machine, progressed
from strata._rpc import PagedRpc, Rpc, StreamRpc, in_namespace, namespaced_call, paged_call
from strata.v1 import access_pb2, admin_pb2

ProgressCallback: TypeAlias = Callable[[admin_pb2.Progress], object]
"""Called with each Progress message of a long admin call (phase, done, total, unit)."""

RetentionTarget: TypeAlias = Literal[
    "records",
    "completed_jobs",
    "dead_jobs",
    "sealed_transcripts",
    "artifacts",
    "audit_log",
    "request_log",
    "archive_transcripts",
    "archive_artifacts",
]
"""What a retention policy removes once older than its max_age (archive_transcripts,
archive_artifacts: move sealed transcripts, or artifacts, to the archive tier instead)."""

RETENTION_TARGETS: dict[str, admin_pb2.RetentionTarget.ValueType] = {
    "records": admin_pb2.RETENTION_TARGET_RECORDS,
    "completed_jobs": admin_pb2.RETENTION_TARGET_COMPLETED_JOBS,
    "dead_jobs": admin_pb2.RETENTION_TARGET_DEAD_JOBS,
    "sealed_transcripts": admin_pb2.RETENTION_TARGET_SEALED_TRANSCRIPTS,
    "artifacts": admin_pb2.RETENTION_TARGET_ARTIFACTS,
    "audit_log": admin_pb2.RETENTION_TARGET_AUDIT_LOG,
    "request_log": admin_pb2.RETENTION_TARGET_REQUEST_LOG,
    "archive_transcripts": admin_pb2.RETENTION_TARGET_ARCHIVE_TRANSCRIPTS,
    "archive_artifacts": admin_pb2.RETENTION_TARGET_ARCHIVE_ARTIFACTS,
}
"""Each target's name to its enum value: the one table the client's requests and the
console's retention form both read, so a new target is named in one place."""

Role: TypeAlias = Literal["reader", "writer", "admin"]
"""What a token may do: read; also write; also the admin calls."""

_ROLES: dict[str, access_pb2.Role.ValueType] = {
    "reader": access_pb2.ROLE_READER,
    "writer": access_pb2.ROLE_WRITER,
    "admin": access_pb2.ROLE_ADMIN,
}


def _same(message: Any) -> Any:
    return message


def _none(_: Any) -> None:
    return None


def _choice(table: dict[str, Any], value: str, name: str) -> Any:
    if value not in table:
        raise ValueError(f"{name} must be one of {', '.join(table)}, not {value!r}")
    return table[value]


def _everywhere(fields: Any, namespace: str | None, all_namespaces: bool) -> Callable[[str], Any]:
    """The request builder of a call that may span every namespace: in none
    with `all_namespaces`, else in the caller's."""
    if all_namespaces and namespace:
        raise ValueError("give a namespace or all_namespaces, not both")
    return lambda ns: fields if all_namespaces else in_namespace(fields, ns)


# The calls; each docstring is the documentation of the client method.


def server_info() -> Rpc[admin_pb2.GetServerInfoResponse, admin_pb2.GetServerInfoResponse]:
    """Describe the server: version, backends, schema version, capabilities and
    start time, as the `strata.v1.admin_pb2.GetServerInfoResponse` message."""
    return Rpc(
        "admin",
        "GetServerInfo",
        lambda _: admin_pb2.GetServerInfoRequest(),
        _same,
        idempotent=True,
    )


def usage(
    *, owner: str | None = None, all_namespaces: bool = False, namespace: str | None = None
) -> Rpc[admin_pb2.GetUsageResponse, admin_pb2.GetUsageResponse]:
    """What the namespace stores (with `all_namespaces`, every namespace and the
    totals): records and their bytes per collection, jobs per state,
    transcripts and entries, artifacts per kind, and what blob dedup saves; with
    `owner`, only that owner's transcripts and artifacts. Returns the
    `admin_pb2.GetUsageResponse`. Raises InvalidArgument."""
    fields = admin_pb2.GetUsageRequest(all_namespaces=all_namespaces, owner=owner or "")
    build = _everywhere(fields, namespace, all_namespaces)
    return Rpc("admin", "GetUsage", build, _same, idempotent=True, namespace=namespace)


def list_audit_entries(
    *,
    entity: str = "",
    entity_id: str = "",
    actor: str = "",
    action: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    page_size: int = 0,
    namespace: str | None = None,
) -> PagedRpc[admin_pb2.AuditEntry]:
    """Iterate over the namespace's audit entries (`admin_pb2.AuditEntry`),
    newest first: only those of an `entity` kind ("record", "job", ...),
    `entity_id` ("tickets/t1"), `actor` and `action` when given, from `since`
    and before `until` (timezone-aware), fetching `page_size` per call (0: the
    server's default). Raises InvalidArgument (e.g. `since` after `until`)."""
    query = admin_pb2.ListAuditEntriesRequest(
        entity=entity,
        entity_id=entity_id,
        actor=actor,
        action=action,
        start_time=timestamp_from_datetime(since, "since"),
        end_time=timestamp_from_datetime(until, "until"),
        page_size=page_size,
    )
    return paged_call(
        "ListAuditEntries", query, lambda page: list(page.entries), namespace, "admin"
    )


def create_index(
    collection: str,
    field: str,
    *,
    progress: ProgressCallback | None = None,
    namespace: str | None = None,
) -> Machine[admin_pb2.Index]:
    """Declare a secondary index on a data field of a collection (as filters
    name it: "data.status") and build it, without blocking writes on
    PostgreSQL; return the `admin_pb2.Index`. Declaring an index that exists
    returns it. Raises InvalidArgument for a malformed collection or field."""
    fields = admin_pb2.CreateIndexRequest(collection=collection, field=field)
    rpc = StreamRpc("admin", "CreateIndex", lambda ns: in_namespace(fields, ns), _same, namespace)
    return progressed(rpc, "index", progress)


def list_indexes(
    collection: str = "", *, namespace: str | None = None
) -> Rpc[admin_pb2.ListIndexesResponse, list[admin_pb2.Index]]:
    """The declared indexes (`admin_pb2.Index`) of the namespace, or of one
    collection."""
    request = admin_pb2.ListIndexesRequest(collection=collection)
    return namespaced_call(
        "admin", "ListIndexes", request, lambda found: list(found.indexes), namespace, True
    )


def drop_index(
    collection: str, field: str, *, namespace: str | None = None
) -> Rpc[admin_pb2.DropIndexResponse, None]:
    """Remove a declared index. Raises NotFound when it was not declared."""
    request = admin_pb2.DropIndexRequest(collection=collection, field=field)
    return namespaced_call("admin", "DropIndex", request, _none, namespace, False)


def set_retention_policy(
    target: RetentionTarget,
    max_age: timedelta,
    selector: str = "",
    *,
    namespace: str | None = None,
) -> Rpc[admin_pb2.RetentionPolicy, admin_pb2.RetentionPolicy]:
    """Keep the `target` data of the namespace for `max_age`, after which a
    cleanup removes it, replacing the policy of (target, selector). `selector`
    names the collection (records, required), the queue (jobs) or the artifact
    kind. Returns the `admin_pb2.RetentionPolicy`. Raises InvalidArgument."""
    request = admin_pb2.SetRetentionPolicyRequest(
        target=_choice(RETENTION_TARGETS, target, "target"),
        selector=selector,
        max_age=duration_from_timedelta(max_age, "max_age"),
    )
    return namespaced_call("admin", "SetRetentionPolicy", request, _same, namespace, True)


def list_retention_policies(
    *, namespace: str | None = None
) -> Rpc[admin_pb2.ListRetentionPoliciesResponse, list[admin_pb2.RetentionPolicy]]:
    """The retention policies (`admin_pb2.RetentionPolicy`) of the namespace."""
    request = admin_pb2.ListRetentionPoliciesRequest()
    return namespaced_call(
        "admin",
        "ListRetentionPolicies",
        request,
        lambda found: list(found.policies),
        namespace,
        True,
    )


def delete_retention_policy(
    target: RetentionTarget, selector: str = "", *, namespace: str | None = None
) -> Rpc[admin_pb2.DeleteRetentionPolicyResponse, None]:
    """Remove the retention policy of (target, selector). Raises NotFound when
    there is none."""
    request = admin_pb2.DeleteRetentionPolicyRequest(
        target=_choice(RETENTION_TARGETS, target, "target"), selector=selector
    )
    return namespaced_call("admin", "DeleteRetentionPolicy", request, _none, namespace, False)


def run_cleanup(
    *,
    dry_run: bool = False,
    all_namespaces: bool = False,
    progress: ProgressCallback | None = None,
    namespace: str | None = None,
    owner: str = "",
) -> Machine[admin_pb2.CleanupReport]:
    """Run a cleanup of the namespace now (with `all_namespaces`, of every
    namespace, expired records included): what the retention policies, record
    expiry and job purge remove. With `owner`, remove instead everything that
    owner holds in the namespace: its records, transcripts and artifacts.
    Returns the `admin_pb2.CleanupReport` of what went, or with `dry_run` of what
    would go."""
    fields = admin_pb2.RunCleanupRequest(
        all_namespaces=all_namespaces, dry_run=dry_run, owner=owner
    )
    rpc = StreamRpc(
        "admin", "RunCleanup", _everywhere(fields, namespace, all_namespaces), _same, namespace
    )
    return progressed(rpc, "report", progress)


def cleanup_status() -> Rpc[admin_pb2.GetCleanupStatusResponse, admin_pb2.GetCleanupStatusResponse]:
    """How the scheduled cleanup goes, on any replica: the
    `admin_pb2.GetCleanupStatusResponse` with the pass running now (`running`) and
    the last finished one (`last`: replica, start and end, steps, error). Needs an
    admin token for every namespace."""
    return Rpc(
        "admin",
        "GetCleanupStatus",
        lambda _: admin_pb2.GetCleanupStatusRequest(),
        _same,
        idempotent=True,
    )


def check_integrity(
    *,
    repair: bool = False,
    verify_blobs: bool = False,
    all_namespaces: bool = False,
    progress: ProgressCallback | None = None,
    namespace: str | None = None,
    verify_sample_percent: int = 0,
) -> Machine[admin_pb2.IntegrityReport]:
    """Check what the namespace (with `all_namespaces`, every namespace) stores
    for consistency, with `verify_blobs` reading every blob to check its hash (or
    `verify_sample_percent` of them, picked at random), and with `repair` fixing
    what is safe to fix. Returns the `admin_pb2.IntegrityReport` of the findings."""
    fields = admin_pb2.CheckIntegrityRequest(
        all_namespaces=all_namespaces,
        repair=repair,
        verify_blobs=verify_blobs,
        verify_sample_percent=verify_sample_percent,
    )
    rpc = StreamRpc(
        "admin", "CheckIntegrity", _everywhere(fields, namespace, all_namespaces), _same, namespace
    )
    return progressed(rpc, "report", progress)


def reindex_artifacts(
    *,
    rebuild: bool = False,
    all_namespaces: bool = False,
    progress: ProgressCallback | None = None,
    namespace: str | None = None,
) -> Machine[admin_pb2.ReindexReport]:
    """Build the text index of the namespace's (with `all_namespaces`, every
    namespace's) text artifacts that have none, e.g. imported ones; with `rebuild`,
    of every text artifact. Returns the `admin_pb2.ReindexReport`."""
    fields = admin_pb2.ReindexArtifactsRequest(all_namespaces=all_namespaces, rebuild=rebuild)
    rpc = StreamRpc(
        "admin",
        "ReindexArtifacts",
        _everywhere(fields, namespace, all_namespaces),
        _same,
        namespace,
    )
    return progressed(rpc, "report", progress)


def create_token(
    name: str,
    role: Role,
    namespaces: Sequence[str],
    *,
    ttl: timedelta | None = None,
    rate_limit: float = 0.0,
    burst: int = 0,
) -> Rpc[access_pb2.CreateTokenResponse, tuple[access_pb2.Token, str]]:
    """Create a bearer token named `name` (its audit actor) with `role` over
    `namespaces` (["*"]: every one), accepted for `ttl` (None: until revoked),
    and return `(token, secret)`: the secret is shown only this once. Needs an
    admin token for every namespace. Raises AlreadyExists, InvalidArgument."""
    if isinstance(namespaces, str):
        raise TypeError("namespaces must be a list of namespaces, not a string")
    request = access_pb2.CreateTokenRequest(
        name=name,
        role=_choice(_ROLES, role, "role"),
        namespaces=list(namespaces),
        ttl=duration_from_timedelta(ttl, "ttl"),
        rate_limit=rate_limit,
        burst=burst,
    )
    return namespaced_call(
        "admin",
        "CreateToken",
        request,
        lambda created: (created.token, created.secret),
        None,
        False,
    )


def list_tokens(*, show_inactive: bool = False, page_size: int = 0) -> PagedRpc[access_pb2.Token]:
    """Iterate over the tokens (`access_pb2.Token`, never a secret) by name:
    the active ones, or with `show_inactive` the revoked and expired ones too."""
    query = access_pb2.ListTokensRequest(show_inactive=show_inactive, page_size=page_size)
    return paged_call("ListTokens", query, lambda page: list(page.tokens), None, "admin")


def revoke_token(name: str) -> Rpc[access_pb2.Token, access_pb2.Token]:
    """Revoke a token: every replica refuses it within a second. Revoking a
    revoked token returns it unchanged. Raises NotFound."""
    request = access_pb2.RevokeTokenRequest(name=name)
    return namespaced_call("admin", "RevokeToken", request, _same, None, True)


def set_quota(
    max_bytes: int, *, namespace: str | None = None
) -> Rpc[access_pb2.Quota, access_pb2.Quota]:
    """Let the namespace store at most `max_bytes` (records, transcript entries
    and artifacts as stored, together; 0 removes the quota) and return the
    `access_pb2.Quota` with what it uses now. Raises InvalidArgument."""
    request = access_pb2.SetQuotaRequest(max_bytes=max_bytes)
    return namespaced_call("admin", "SetQuota", request, _same, namespace, True)


def get_integrity_status(
    *, all_namespaces: bool = False, namespace: str | None = None
) -> Rpc[admin_pb2.GetIntegrityStatusResponse, admin_pb2.GetIntegrityStatusResponse]:
    """The last integrity report of the namespace (with `all_namespaces`, of the
    check of every namespace the server schedules) and the server's schedule."""
    build = _everywhere(admin_pb2.GetIntegrityStatusRequest(), namespace, all_namespaces)
    return Rpc("admin", "GetIntegrityStatus", build, _same, idempotent=True, namespace=namespace)


def list_quotas(
    *, all_namespaces: bool = False, namespace: str | None = None
) -> Rpc[access_pb2.ListQuotasResponse, list[access_pb2.Quota]]:
    """The namespace's storage quota (with `all_namespaces`, every quota set),
    with what each namespace uses now, as `access_pb2.Quota` messages."""
    build = _everywhere(access_pb2.ListQuotasRequest(), namespace, all_namespaces)
    return Rpc(
        "admin",
        "ListQuotas",
        build,
        lambda found: list(found.quotas),
        idempotent=True,
        namespace=namespace,
    )
