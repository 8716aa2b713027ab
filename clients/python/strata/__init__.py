"""Python client of Strata, a gRPC data-access server.

    import strata

    with strata.Client("127.0.0.1:50051", namespace="acme") as client:
        record = client.create_record("tickets", {"title": "Printer on fire"})

`Client` blocks, `AsyncClient` runs on asyncio; both take a `ClientConfig` and
raise `StrataError` subclasses. `strata.writes` builds the writes of a Commit, and
`strata.v1` holds the generated messages and stubs.
"""

from strata import v1, writes
from strata.aio import AsyncClient
from strata.client import Client
from strata.config import ClientConfig, RetryPolicy
from strata.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    StrataError,
    Unauthenticated,
    Unavailable,
    VersionConflict,
    from_rpc_error,
)
from strata.records import Deleted, Record
from strata.writes import new_request_id

__all__ = [
    "Aborted",
    "AlreadyExists",
    "AsyncClient",
    "Client",
    "ClientConfig",
    "DeadlineExceeded",
    "Deleted",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "Record",
    "ResourceExhausted",
    "RetryPolicy",
    "StrataError",
    "Unauthenticated",
    "Unavailable",
    "VersionConflict",
    "from_rpc_error",
    "new_request_id",
    "v1",
    "writes",
]
