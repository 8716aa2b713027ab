"""The events port: wakeups between replicas, never a data channel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Protocol, Self

from strata_server.core.values import frozen


@frozen
class Recheck:
    """How to re-check one topic in the database: `probe` returns a value that
    changes when the topic's listeners should look again (a transcript's next seq,
    a namespace's change cursor); `every`, when set, is the interval for probes
    whose answer time alone may change (a job coming due), whatever the events
    channel's state: a probe answering `core.idle.Probed` says whether it may now
    (else the topic rests until a notify on it), any other answer is taken to.
    Listeners of one topic must bring equivalent probes: the first one's is used."""

    topic: str
    probe: Callable[[], Awaitable[object]]
    every: float | None = None


class Listener(Protocol):
    """Wakeups on a fixed set of topics, from `Events.listen` until `close`."""

    async def wait(self, within: float | None) -> set[str]:
        """Wait up to `within` seconds (None: until woken); the topics notified
        since the last wait."""
        ...

    def close(self) -> None:
        """Stop listening."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class Events(Protocol):
    """Wakeups between replicas: "something changed on this topic, look again".

    Never a data channel: consumers re-read the database after a wakeup, so a lost
    notification only delays work until its topic's shared re-check (`Recheck`).
    """

    def notify(self, topic: str, *, announced: bool = False) -> None:
        """Wake waiters on `topic` (here, and on other replicas where supported).
        `announced`: the write's own commit already told the other replicas (it
        carried `commit_notice(topic)`), so only this replica's waiters are woken."""
        ...

    def commit_notice(self, topic: str) -> str | None:
        """What a write to the database may send on `topic`'s behalf when it commits
        (a PostgreSQL NOTIFY payload on the events channel, from the write's own
        statement), or None when wakeups between replicas do not travel through
        the database. Saves the round trip of sending it after the commit."""
        ...

    async def send(self, topic: str) -> None:
        """`notify`, returning only once the channel between replicas has taken the
        topic (Unavailable when it cannot be reached): for a process that announces
        one change and then exits, such as `strata token revoke`, since `notify`
        leaves the sending to a background task that would die with it."""
        ...

    def listen(self, *topics: str, recheck: Recheck | None = None) -> Listener:
        """Start listening on `topics` now; `Listener.wait` then returns the topics
        notified since. Listen before checking the database, then wait: a notify
        in between is not lost. `recheck` covers the wakeups that may never come
        (see storage/memory/events.py): one probe per topic, shared by its listeners,
        so a listener needs no timeout of its own to poll the database."""
        ...

    async def wait(self, topic: str, within: float) -> bool:
        """Wait up to `within` seconds for a notify on `topic`; True if one came."""
        ...

    async def close(self) -> None:
        """Release listeners and connections."""
        ...
