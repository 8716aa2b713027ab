"""Domain errors: the one vocabulary adapters and services use to say what went wrong.

Each class maps to exactly one gRPC status in `strata_server.api.status_codes`. A class's
docstring is its default message, so a bare `raise NotFound()` still says something.
Adapters translate driver exceptions (sqlite3, psycopg) into these at their boundary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from strata_server.core.values import frozen


@frozen
class FieldViolation:
    """One bad field of a request, reported as a google.rpc.BadRequest violation."""

    field: str
    description: str


class StrataError(Exception):
    """Strata could not complete the request."""

    reason = "STRATA_ERROR"
    retry_after: float | None = None
    """Seconds after which a retry may succeed, sent as google.rpc.RetryInfo (None:
    no advice)."""

    def __init__(
        self,
        message: str | None = None,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        violations: Sequence[FieldViolation] = (),
    ) -> None:
        self.message = message or (self.__doc__ or "").strip()
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.violations: tuple[FieldViolation, ...] = tuple(violations)
        super().__init__(self.message)


class InvalidArgument(StrataError):
    """The request is malformed."""

    reason = "INVALID_ARGUMENT"

    @classmethod
    def field(cls, field: str, description: str, **metadata: str) -> InvalidArgument:
        """A malformed request whose fault lies in one named field."""
        return cls(
            f"{field}: {description}",
            violations=[FieldViolation(field, description)],
            metadata=metadata,
        )


class NotFound(StrataError):
    """The requested entity does not exist."""

    reason = "NOT_FOUND"


class AlreadyExists(StrataError):
    """An entity with that id already exists."""

    reason = "ALREADY_EXISTS"


class VersionConflict(StrataError):
    """The entity changed since the version the caller expected."""

    reason = "VERSION_CONFLICT"

    def __init__(
        self,
        message: str | None = None,
        *,
        current_version: int,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            message,
            metadata={**(metadata or {}), "current_version": str(current_version)},
        )
        self.current_version = current_version


class Conflict(StrataError):
    """A concurrent transaction touched the same data; retrying may succeed."""

    reason = "CONCURRENT_MODIFICATION"


class FailedPrecondition(StrataError):
    """The system is not in a state that allows this request."""

    reason = "FAILED_PRECONDITION"


class CursorExpired(FailedPrecondition):
    """The cursor lies before changes the audit log's retention has removed, so
    resuming from it would skip them: watch from now, then read the collection
    again (or resume from a cursor at or past the horizon)."""

    reason = "CURSOR_EXPIRED"

    def __init__(self, cursor: str, horizon: str, purged_through: str) -> None:
        super().__init__(
            f"cursor {cursor!r} lies before the audit log's horizon {horizon!r}: the "
            f"changes up to {purged_through} have been purged and cannot be resumed; "
            "watch from now, then read the collection again",
            metadata={"cursor": cursor, "horizon": horizon, "purged_through": purged_through},
        )
        self.horizon = horizon


class OutOfRange(StrataError):
    """The request reads past the end of the data."""

    reason = "OUT_OF_RANGE"


class TooLarge(StrataError):
    """The request carries more data than the configured limit."""

    reason = "TOO_LARGE"


class QuotaExceeded(StrataError):
    """The namespace's storage quota does not allow this write; nothing was written."""

    reason = "QUOTA_EXCEEDED"

    def __init__(self, namespace: str = "", *, used_bytes: int = 0, max_bytes: int = 0) -> None:
        message = None
        if namespace and max_bytes:
            message = (
                f"namespace {namespace!r} stores {used_bytes} of the {max_bytes} bytes its "
                "quota allows, and this write would take it past them; nothing was written "
                "(delete data, or ask an admin to raise the quota)"
            )
        super().__init__(
            message,
            metadata={
                "namespace": namespace,
                "used_bytes": str(used_bytes),
                "max_bytes": str(max_bytes),
            },
        )
        self.namespace = namespace
        self.used_bytes = used_bytes
        self.max_bytes = max_bytes


class RateLimited(StrataError):
    """Too many requests with these credentials; retry after the delay."""

    reason = "RATE_LIMITED"

    def __init__(self, principal: str, retry_after: float) -> None:
        super().__init__(
            f"{principal!r} is over its request rate; retry in {retry_after:.3f} s",
            metadata={"principal": principal, "retry_after_seconds": f"{retry_after:.3f}"},
        )
        self.retry_after = retry_after


class Overloaded(StrataError):
    """The server is running as many requests as it allows; retry later."""

    reason = "OVERLOADED"

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, metadata=metadata)
        self.retry_after = retry_after


class QueryTimeout(StrataError):
    """The query ran longer than the server allows one query to run; narrow it (a more
    selective filter, a declared index, a smaller page)."""

    reason = "QUERY_TIMEOUT"


class Unavailable(StrataError):
    """A backend Strata depends on cannot be reached; retry later."""

    reason = "BACKEND_UNAVAILABLE"


class DeadlineExceeded(StrataError):
    """The operation did not complete in time."""

    reason = "DEADLINE_EXCEEDED"


class Unauthenticated(StrataError):
    """The call carries no valid credentials: send `authorization: Bearer <token>`."""

    reason = "UNAUTHENTICATED"


class PermissionDenied(StrataError):
    """The caller's token does not allow this call."""

    reason = "PERMISSION_DENIED"

    @classmethod
    def role_required(cls, role: str) -> PermissionDenied:
        """The call needs a role the caller's token does not have (`role`: its label)."""
        return cls(
            f"this call needs the {role} role",
            reason="ROLE_REQUIRED",
            metadata={"role": role},
        )

    @classmethod
    def namespace_not_allowed(cls, namespace: str) -> PermissionDenied:
        """The call names a namespace (or, with "*", every namespace) the caller's
        token does not cover."""
        shown = "every namespace" if namespace == "*" else f"namespace {namespace!r}"
        return cls(
            f"this token does not cover {shown}",
            reason="NAMESPACE_NOT_ALLOWED",
            metadata={"namespace": namespace},
        )


class DataLoss(StrataError):
    """Stored data is missing or damaged."""

    reason = "DATA_LOSS"


class BlobMissing(DataLoss):
    """The artifact's stored content is missing from the blob store."""

    reason = "BLOB_MISSING"


def with_write_index(error: StrataError, index: int) -> StrataError:
    """Tag an error raised by one write of a Commit with that write's position."""
    error.metadata.setdefault("write_index", str(index))
    return error
