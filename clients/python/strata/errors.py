"""Typed errors for failed calls, read from the gRPC status the server sends.

The server attaches a `google.rpc.Status` to every error, in the
`grpc-status-details-bin` trailer: always an `ErrorInfo{reason, domain: "strata.v1",
metadata}`, and a `BadRequest` with field violations for bad input.
`from_rpc_error` turns a `grpc.RpcError` into the matching `StrataError` subclass,
chosen by `ErrorInfo.reason` where that is more precise than the status code
(`VERSION_CONFLICT`, `LEASE_LOST`) and by the code otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "Aborted",
    "AlreadyExists",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "LeaseLost",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "StrataError",
    "Unauthenticated",
    "Unavailable",
    "VersionConflict",
    "from_rpc_error",
]


class StrataError(Exception):
    """The Strata server did not complete the request."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    """The gRPC status code of the failed call."""

    def __init__(
        self,
        message: str | None = None,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        violations: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.message: str = message or (self.__doc__ or "").strip()
        """What went wrong, as the server said it (the status details)."""
        if code is not None:
            self.code = code
        self.reason: str = reason
        """`ErrorInfo.reason`, e.g. "NOT_FOUND" or "VERSION_CONFLICT"; empty when absent."""
        self.metadata: dict[str, str] = dict(metadata or {})
        """`ErrorInfo.metadata`, e.g. `current_version` or, for Commit, `write_index`."""
        self.violations: list[tuple[str, str]] = list(violations)
        """`BadRequest` field violations as (field, description) pairs."""
        super().__init__(self.message)

    @property
    def write_index(self) -> int | None:
        """For a failed Commit, the position of the write that failed; else None."""
        return _int_or_none(self.metadata.get("write_index"))


class InvalidArgument(StrataError):
    """The request is malformed: e.g. a bad collection, id, filter, mask or page
    token. `violations` names the bad fields; sent again unchanged, the request
    fails the same way."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(StrataError):
    """The requested entity does not exist or has expired."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(StrataError):
    """An entity with that id already exists.

    A create retried with the same `request_id` does not raise this: it returns
    the first create's result.
    """

    code = grpc.StatusCode.ALREADY_EXISTS


class Aborted(StrataError):
    """The call was aborted and wrote nothing.

    With reason CONCURRENT_MODIFICATION it lost a race with another transaction;
    the client retries those by itself, so seeing one means its attempts ran out.
    """

    code = grpc.StatusCode.ABORTED


class VersionConflict(Aborted):
    """The entity changed since the version the caller expected.

    Read it again (it is now at `current_version`), reapply the change and retry.
    """

    @property
    def current_version(self) -> int:
        """The entity's version at the time of the conflict (0 when not reported)."""
        return _int_or_none(self.metadata.get("current_version")) or 0


class FailedPrecondition(StrataError):
    """The system is not in a state that allows this request."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class LeaseLost(FailedPrecondition):
    """The lease token is not the job's current lease (reason LEASE_LOST): the
    lease expired and the job went back to the queue (maybe to another worker),
    or the job was completed, failed or cancelled meanwhile. The caller no longer
    holds the job and cannot ack, fail or extend it."""


class CursorExpired(FailedPrecondition):
    """A watch's cursor lies before changes the server's audit log retention has
    purged (reason CURSOR_EXPIRED), so resuming from it would skip them: watch from
    now, then read the collection again. `metadata["horizon"]` is the oldest
    cursor still accepted, `metadata["purged_through"]` the newest purged change's
    time. Retrying the same cursor cannot succeed."""

    @property
    def horizon(self) -> str:
        """The oldest cursor the server still resumes from."""
        return self.metadata.get("horizon", "")


class OutOfRange(StrataError):
    """The request reads past the end of the data."""

    code = grpc.StatusCode.OUT_OF_RANGE


class DataLoss(StrataError):
    """Stored data is missing or damaged (an artifact's bytes, or a download that
    does not hash to the artifact's sha256)."""

    code = grpc.StatusCode.DATA_LOSS


class ResourceExhausted(StrataError):
    """The request carries more data than the server accepts (reason TOO_LARGE),
    or a limit on the server ran out."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(StrataError):
    """The server, or a backend it depends on (reason BACKEND_UNAVAILABLE), cannot
    be reached. Reads and writes with a request_id were retried already; a write
    without one may or may not have been applied."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(StrataError):
    """The call did not finish within `ClientConfig.timeout`; a write may or may
    not have been applied."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class PermissionDenied(StrataError):
    """The caller may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(StrataError):
    """The caller's credentials are missing or invalid."""

    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[StrataError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        Aborted,
        FailedPrecondition,
        OutOfRange,
        ResourceExhausted,
        DataLoss,
        Unavailable,
        DeadlineExceeded,
        PermissionDenied,
        Unauthenticated,
    )
}

_BY_REASON: dict[str, type[StrataError]] = {
    "VERSION_CONFLICT": VersionConflict,
    "LEASE_LOST": LeaseLost,
    "CURSOR_EXPIRED": CursorExpired,
}


def from_outcome(code_name: str, reason: str, message: str) -> StrataError:
    """The typed error of one failed item of a batch call (AckJobs), which names
    its status code and ErrorInfo reason instead of failing the whole call."""
    code = grpc.StatusCode.__members__.get(code_name, grpc.StatusCode.UNKNOWN)
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code, StrataError)
    return cls(message or code.name, code=code, reason=reason)


def from_rpc_error(err: grpc.RpcError) -> StrataError:
    """The typed error for a failed call: its class, code, message and details."""
    code = err.code() or grpc.StatusCode.UNKNOWN
    reason = ""
    metadata: dict[str, str] = {}
    violations: list[tuple[str, str]] = []
    for detail in _status_details(err):
        info = error_details_pb2.ErrorInfo()
        bad_request = error_details_pb2.BadRequest()
        if not reason and detail.Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Unpack(bad_request):
            violations += [(v.field, v.description) for v in bad_request.field_violations]
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code, StrataError)
    return cls(
        err.details() or code.name,
        code=code,
        reason=reason,
        metadata=metadata,
        violations=violations,
    )


def _status_details(err: grpc.RpcError) -> list[any_pb2.Any]:
    """The `google.rpc.Status` details of the call's trailer; none when absent or
    inconsistent with the call's own code and message (e.g. rewritten by a proxy)."""
    try:
        # An RpcError raised by a stub is also the grpc.Call (sync) or
        # grpc.aio.Call (async) of the failed RPC; both give their trailer at once.
        status: status_pb2.Status | None = rpc_status.from_call(cast(grpc.Call, err))
    except ValueError:
        return []
    return list(status.details) if status is not None else []


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
