"""Python client of Strata, a gRPC data-access server.

    import strata

    with strata.Client("127.0.0.1:50051", namespace="acme") as client:
        record = client.create_record("tickets", {"title": "Printer on fire"})

        job = client.enqueue("emails", {"to": "a@example.com"})
        client.queue("emails").work(send_email, concurrency=4)

        client.append("chat-1", "Hello", role="user")
        for entry in client.follow("chat-1"):  # live, resumes after a dropped connection
            print(entry.seq, entry.content)

`Client` blocks, `AsyncClient` runs on asyncio; both take a `ClientConfig` (or
its fields as arguments: `token=`, `tls=strata.TLSConfig("ca.pem")`, ...) and
raise `StrataError` subclasses. `Client.queue` / `AsyncClient.queue` return a
`QueueHandle` / `AsyncQueueHandle` that runs workers; `follow` returns a `Follow` /
`AsyncFollow` over a transcript's entries. `strata.writes` builds the
writes of a Commit, and `strata.v1` holds the generated messages and stubs.
"""

from strata import v1, writes
from strata._job_args import EnqueueSpec
from strata._transcript_requests import EntryLike
from strata.aio import AsyncClient
from strata.aio_worker import AsyncHandler, AsyncQueueHandle
from strata.artifacts import Artifact
from strata.client import Client
from strata.config import ClientConfig, RetryPolicy, TLSConfig
from strata.errors import (
    Aborted,
    AlreadyExists,
    CursorExpired,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LeaseLost,
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
from strata.follow import AsyncFollow, Follow
from strata.jobs import Job, JobState, QueueStats
from strata.records import Deleted, Record
from strata.search import SearchHit
from strata.subscription import AsyncSubscription, Subscription
from strata.transcripts import Appended, Entry, Transcript, TranscriptHit
from strata.worker import Handler, QueueHandle
from strata.writes import new_request_id

__all__ = [
    "Aborted",
    "AlreadyExists",
    "Appended",
    "Artifact",
    "AsyncClient",
    "AsyncFollow",
    "AsyncHandler",
    "AsyncQueueHandle",
    "AsyncSubscription",
    "Client",
    "ClientConfig",
    "CursorExpired",
    "DataLoss",
    "DeadlineExceeded",
    "Deleted",
    "EnqueueSpec",
    "Entry",
    "EntryLike",
    "FailedPrecondition",
    "Follow",
    "Handler",
    "InvalidArgument",
    "Job",
    "JobState",
    "LeaseLost",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "QueueHandle",
    "QueueStats",
    "Record",
    "ResourceExhausted",
    "RetryPolicy",
    "SearchHit",
    "StrataError",
    "Subscription",
    "TLSConfig",
    "Transcript",
    "TranscriptHit",
    "Unauthenticated",
    "Unavailable",
    "VersionConflict",
    "from_rpc_error",
    "new_request_id",
    "v1",
    "writes",
]
