"""The events topics Strata wakes, and the wakeups each kind of write owes.

A wakeup says only "look again" (storage.ports.Events): streams and long polls
re-read the database after one, and a lost one is covered by its topic's shared
re-check. So a write needs no more than to name the right topics after it commits,
but every use case must name them the same way, and two listeners must agree on a
topic's spelling for either to hear the other. This module is the one place that
spells them and that knows which writes wake which waiters: services call a
`Wakeups` method named for what happened, never `Events.notify` with a topic of
their own making.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from strata_server.core import job_transitions as queue
from strata_server.core import models
from strata_server.core.transcript_rules import AppendEntries
from strata_server.core.values import frozen
from strata_server.storage.ports import Events

TOKENS_REVOKED = "tokens:revoked"
"""Every replica forgets what it knew of tokens (services/access_service.py)."""


def queue_topic(namespace: str, queue_name: str) -> str:
    """Wakes the consumers of one queue (long polls and SubscribeJobs streams)."""
    return f"queue:{namespace}:{queue_name}"


def handoff_topic(waiter: str) -> str:
    """Tells one parked consumer (on this replica only) that an enqueue leased a job
    for it (services/handoff.py)."""
    return f"handoff:{waiter}"


def subscription_topic(subscription: str) -> str:
    """Tells one SubscribeJobs stream that a job it held was acked, failed or released,
    so it may lease more; its lease tokens carry its id, so a settle on any replica
    can name it."""
    return f"subscription:{subscription}"


def voided_topic(namespace: str, queue_name: str) -> str:
    """Tells a queue's SubscribeJobs streams that a lease was voided without its
    holder's token (CancelJob), so they re-check what they hold."""
    return f"voided:{namespace}:{queue_name}"


def records_topic(namespace: str, collection: str) -> str:
    """Wakes the WatchRecords streams of one collection."""
    return f"records:{namespace}:{collection}"


def transcript_topic(namespace: str, id: str) -> str:
    """Wakes the followers of one transcript (an append, a seal or a delete)."""
    return f"transcript:{namespace}:{id}"


@frozen
class Announcement:
    """The wakeups one write owes, prepared before it runs. With PostgreSQL events the
    write's own statement can carry `notices` so that its commit tells the other
    replicas (no round trip after it); `sent` is then what to pass the store, and
    `done` wakes only this replica's waiters. Topics of one write are announced all
    together or not at all, so none is told twice or missed."""

    events: Events
    topics: tuple[str, ...]
    sent: tuple[str, ...]

    @property
    def announced(self) -> bool:
        """Whether the write's commit carries the wakeups to the other replicas."""
        return bool(self.sent)

    def done(self) -> None:
        """The write committed: wake its topics' waiters."""
        for topic in self.topics:
            self.events.notify(topic, announced=self.announced)


class Wakeups:
    """Every wakeup a write sends, named for what happened. Call after the write has
    committed (a waiter woken earlier could re-read before it and miss it)."""

    def __init__(self, events: Events) -> None:
        self._events = events

    def announce(self, topics: Iterable[str]) -> Announcement:
        """Prepare the wakeups of a write that may carry them in its own commit."""
        ordered = tuple(sorted(set(topics)))
        notices = [self._events.commit_notice(topic) for topic in ordered]
        sent = tuple(n for n in notices if n is not None)
        return Announcement(self._events, ordered, sent if len(sent) == len(ordered) else ())

    def jobs_enqueued(self, namespace: str, queues: Iterable[str]) -> Announcement:
        """Prepare the wakeups of an enqueue: the consumers of each queue it fills."""
        return self.announce(queue_topic(namespace, name) for name in queues)

    def transcript_appended(self, namespace: str, id: str) -> Announcement:
        """Prepare the wakeups of an append: the transcript's followers."""
        return self.announce([transcript_topic(namespace, id)])

    def handed_off(self, waiter: str) -> None:
        """A parked consumer of this replica has jobs an enqueue leased for it."""
        self._events.notify(handoff_topic(waiter), announced=True)

    def job_settled(self, job: queue.Job, token: str) -> None:
        """A job was acked, failed or released under `token`: wake the SubscribeJobs
        stream the lease went to, and the queue's consumers when the job is runnable
        again at once (a release, or a retry with no delay)."""
        subscription = queue.subscription_of(token)
        if subscription is not None:
            self._events.notify(subscription_topic(subscription))
        if job.visible_state(datetime.now(UTC)) is queue.Visible.AVAILABLE:
            self._events.notify(queue_topic(job.namespace, job.queue))

    def lease_voided(self, namespace: str, queue_name: str) -> None:
        """A lease ended without its holder's token (CancelJob): the stream holding it
        has a free slot."""
        self._events.notify(voided_topic(namespace, queue_name))

    def jobs_runnable(self, namespace: str, queue_name: str) -> None:
        """A queue has jobs a lease could take that no enqueue announced (a retried
        job, a resumed queue)."""
        self._events.notify(queue_topic(namespace, queue_name))

    def records_changed(self, namespace: str, collections: Iterable[str]) -> None:
        """Records of these collections were written or removed: wake their watches."""
        for collection in set(collections):
            self._events.notify(records_topic(namespace, collection))

    def rows_imported(
        self, namespace: str, collections: Iterable[str], queues: Iterable[str]
    ) -> None:
        """An import's rows are in: wake the watches of the collections and the
        consumers of the queues it wrote (its jobs may be runnable, its queue
        settings may have resumed a queue)."""
        self.records_changed(namespace, collections)
        for name in set(queues):
            self._events.notify(queue_topic(namespace, name))

    def transcript_changed(self, namespace: str, id: str) -> None:
        """A transcript was sealed or deleted: its followers end their streams."""
        self._events.notify(transcript_topic(namespace, id))

    def children_deleted(self, namespace: str, results: Sequence[models.WriteResult]) -> None:
        """Record deletes cascaded to transcripts: their followers end their streams."""
        for result in results:
            if isinstance(result, models.Deleted):
                for child in result.children:
                    if child.kind == "transcript":
                        self.transcript_changed(namespace, child.id)

    def committed(self, namespace: str, writes: Sequence[models.Write]) -> None:
        """A Commit's writes are in: wake the consumers of the queues it enqueued to,
        the watches of the collections it wrote and the followers of the
        transcripts it appended to."""
        for name in {write.queue for write in writes if isinstance(write, queue.NewJob)}:
            self._events.notify(queue_topic(namespace, name))
        self.records_changed(
            namespace, (w.collection for w in writes if isinstance(w, models.RecordWrite))
        )
        for id in {write.id for write in writes if isinstance(write, AppendEntries)}:
            self._events.notify(transcript_topic(namespace, id))
