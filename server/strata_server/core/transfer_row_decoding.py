"""Each kind's transfer row from the JSON object an import reads, strictly: a
missing or mistyped field is BadArchive naming the member and line, never a
half-read row.

The inverse of `transfer_row_encoding`. Entries, by far the most numerous rows,
take a fast path that checks the common shape without `Fields`, and fall back to
it only to say what misfits.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from strata_server.core.artifact_rules import SHA256_RE, Artifact, Compression
from strata_server.core.job_transitions import Job, Stored
from strata_server.core.models import LoggedAudit, Record
from strata_server.core.parent_refs import ParentRef
from strata_server.core.transcript_rules import Transcript
from strata_server.core.transfer_format import BadArchive, Kind, parse_time
from strata_server.core.transfer_rows import ArchivedEntry, QueueSetting
from strata_server.core.validation import COLLECTION_RE, ID_RE, MAX_OWNER


class Fields:
    """Typed access to one decoded JSON object; any misfit raises ValueError."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        if not isinstance(value, dict):
            raise ValueError("the line is not a JSON object")
        self._value: dict[str, Any] = value

    def required(self, name: str) -> Any:
        try:
            return self._value[name]
        except KeyError:
            raise ValueError(f"{name!r} is missing") from None

    def text(self, name: str) -> str:
        value = self.required(name)
        if not isinstance(value, str):
            raise ValueError(f"{name!r} must be a string")
        return value

    def raw(self, name: str) -> Any:
        """The value as decoded, None when absent."""
        return self._value.get(name)

    def opt_text(self, name: str) -> str | None:
        return None if self.raw(name) is None else self.text(name)

    def owner(self, name: str) -> str:
        """An optional owner (archives made before records had owners have none),
        held to the rule an owner set through the API is."""
        value = self.opt_text(name) or ""
        if len(value) > MAX_OWNER or not value.isprintable():
            raise ValueError(f"{name!r} must be at most {MAX_OWNER} printable characters")
        return value

    def name(self, name: str, pattern: Any = ID_RE) -> str:
        value = self.text(name)
        if not pattern.fullmatch(value):
            raise ValueError(f"{name!r} is not a valid name: {value!r}")
        return value

    def integer(self, name: str, minimum: int = 0) -> int:
        value = self.required(name)
        if type(value) is not int or value < minimum:
            raise ValueError(f"{name!r} must be an integer >= {minimum}")
        return value

    def flag(self, name: str) -> bool:
        value = self.required(name)
        if type(value) is not bool:
            raise ValueError(f"{name!r} must be true or false")
        return value

    def obj(self, name: str) -> dict[str, Any]:
        value = self.required(name)
        if not isinstance(value, dict):
            raise ValueError(f"{name!r} must be a JSON object")
        return value

    def opt_obj(self, name: str) -> dict[str, Any] | None:
        return None if self.raw(name) is None else self.obj(name)

    def labels(self, name: str) -> dict[str, str]:
        value = self.obj(name)
        if not all(isinstance(v, str) for v in value.values()):
            raise ValueError(f"{name!r} must map strings to strings")
        return value

    def time(self, name: str) -> datetime:
        return parse_time(self.required(name))

    def opt_time(self, name: str) -> datetime | None:
        return None if self.raw(name) is None else self.time(name)

    def parent(self, name: str = "parent") -> ParentRef | None:
        """A child's parent record: absent or null for none (archives made before
        parents existed have no such field)."""
        if self.raw(name) is None:
            return None
        value = Fields(self.obj(name))
        return ParentRef(value.name("collection", COLLECTION_RE), value.name("id"))


def decode(kind: Kind, value: Any, namespace: str, where: str) -> Any:
    """One row from its JSON object; BadArchive saying `where` (member:line) if it misfits."""
    if kind is _ENTRIES and (fast := _entry_fast(value, namespace)) is not None:
        return fast
    try:
        return _DECODERS[kind](Fields(value), namespace)
    except (ValueError, TypeError) as error:
        raise BadArchive(f"{where}: {error}", metadata={"where": where}) from None


_ENTRIES = Kind.ENTRIES  # a module constant: enum attribute access is slow per row
_ARRAY = json.JSONDecoder()


def decode_lines(
    kind: Kind, lines: list[bytes], namespace: str, member: str, first: int
) -> list[Any]:
    """Rows from JSON Lines `lines` (line `first` of `member` first). The lines are
    parsed as one JSON array, one C call for the batch; only when that fails are
    they parsed one by one, to name the bad line."""
    try:
        values = _ARRAY.decode("[" + b",".join(lines).decode() + "]")
    except (UnicodeDecodeError, json.JSONDecodeError):
        values = []
        for number, line in enumerate(lines, first):
            try:
                values.append(json.loads(line))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise BadArchive(f"{member}:{number}: not JSON ({error})") from None
    if len(values) != len(lines):  # a line holding two values, or none
        raise BadArchive(f"{member}:{first}-{first + len(lines) - 1}: not one JSON value a line")
    return [
        decode(kind, value, namespace, f"{member}:{number}")
        for number, value in enumerate(values, first)
    ]


def _queue_from(f: Fields, namespace: str) -> QueueSetting:
    return QueueSetting(f.name("queue", COLLECTION_RE), f.flag("paused"))


def _record_from(f: Fields, namespace: str) -> Record:
    return Record(
        namespace=namespace,
        collection=f.name("collection", COLLECTION_RE),
        id=f.name("id"),
        data=f.obj("data"),
        version=f.integer("version", 1),
        create_time=f.time("create_time"),
        update_time=f.time("update_time"),
        expire_time=f.opt_time("expire_time"),
        owner=f.owner("owner"),
    )


def _job_from(f: Fields, namespace: str) -> Job:
    backoff = f.raw("retry_backoff_us")
    if backoff is not None and (type(backoff) is not int or backoff < 0):
        raise ValueError("'retry_backoff_us' must be a non-negative integer")
    result = f.raw("result")
    return Job(
        namespace=namespace,
        queue=f.name("queue", COLLECTION_RE),
        id=f.name("id"),
        state=Stored(f.text("state")),
        payload=f.obj("payload"),
        priority=f.integer("priority", -(2**31)),
        run_time=f.time("run_time"),
        attempt=f.integer("attempt"),
        max_attempts=f.integer("max_attempts", 1),
        create_time=f.time("create_time"),
        update_time=f.time("update_time"),
        retry_backoff=None if backoff is None else timedelta(microseconds=backoff),
        unique_key=f.opt_text("unique_key"),
        lease_token=f.opt_text("lease_token"),
        lease_expire_time=f.opt_time("lease_expire_time"),
        last_error=f.opt_text("last_error"),
        result=result,
        finish_time=f.opt_time("finish_time"),
    )


def _transcript_from(f: Fields, namespace: str) -> Transcript:
    return Transcript(
        namespace=namespace,
        id=f.name("id"),
        owner=f.text("owner"),
        title=f.text("title"),
        labels=f.labels("labels"),
        next_seq=f.integer("next_seq", 1),
        size_bytes=f.integer("size_bytes"),
        create_time=f.time("create_time"),
        update_time=f.time("update_time"),
        seal_time=f.opt_time("seal_time"),
        parent=f.parent(),
    )


def _entry_fast(value: Any, namespace: str) -> ArchivedEntry | None:
    """The common case of an entry, checked without Fields (a million-entry import
    decodes a million of them); None when anything misfits, for _entry_from to say
    what."""
    try:
        tid, seq, size = value["transcript_id"], value["seq"], value["size"]
        role, content, data = value["role"], value["content"], value.get("data")
        if (
            type(tid) is str
            and type(seq) is int
            and type(size) is int
            and type(role) is str
            and type(content) is str
            and (data is None or type(data) is dict)
            and seq >= 1
            and size >= 1
            and ID_RE.fullmatch(tid)
        ):
            return ArchivedEntry(
                tid, seq, 0, size, role, content, data, parse_time(value["create_time"])
            )
    except (KeyError, TypeError, ValueError):
        pass
    return None


def _entry_from(f: Fields, namespace: str) -> ArchivedEntry:
    return ArchivedEntry(
        transcript_id=f.name("transcript_id"),
        seq=f.integer("seq", 1),
        start_offset=0,  # set by EntryOffsets, from the sizes of the entries before it
        size=f.integer("size", 1),
        role=f.text("role"),
        content=f.text("content"),
        data=f.opt_obj("data"),
        create_time=f.time("create_time"),
    )


def _artifact_from(f: Fields, namespace: str) -> Artifact:
    sha256 = f.text("sha256")
    if not SHA256_RE.fullmatch(sha256):
        raise ValueError("'sha256' must be 64 lowercase hex digits")
    return Artifact(
        namespace=namespace,
        id=f.name("id"),
        owner=f.text("owner"),
        kind=f.text("kind"),
        name=f.text("name"),
        content_type=f.text("content_type"),
        sha256=sha256,
        size=f.integer("size"),
        stored_size=f.integer("stored_size"),
        compression=Compression(f.text("compression")),
        labels=f.labels("labels"),
        create_time=f.time("create_time"),
        parent=f.parent(),
    )


def _audit_from(f: Fields, namespace: str) -> LoggedAudit:
    fields = f.required("changed_fields")
    if not isinstance(fields, list) or not all(isinstance(x, str) for x in fields):
        raise ValueError("'changed_fields' must be a list of strings")
    ids = f.raw("entity_ids") or []
    versions = f.raw("entity_versions") or []
    if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
        raise ValueError("'entity_ids' must be a list of strings")
    if not isinstance(versions, list) or not all(type(x) is int and x >= 0 for x in versions):
        raise ValueError("'entity_versions' must be a list of integers >= 0")
    if len(ids) != len(versions):
        raise ValueError("'entity_ids' and 'entity_versions' must be as long")
    return LoggedAudit(
        seq=0,
        time=f.time("time"),
        actor=f.text("actor"),
        action=f.text("action"),
        entity=f.text("entity"),
        entity_id=f.text("entity_id"),
        version=f.integer("version"),
        changed_fields=tuple(fields),
        request_id=f.opt_text("request_id"),
        entity_ids=tuple(ids),
        entity_versions=tuple(versions),
    )


_DECODERS: dict[Kind, Callable[[Fields, str], Any]] = {
    Kind.QUEUES: _queue_from,
    Kind.RECORDS: _record_from,
    Kind.JOBS: _job_from,
    Kind.TRANSCRIPTS: _transcript_from,
    Kind.ENTRIES: _entry_from,
    Kind.ARTIFACTS: _artifact_from,
    Kind.AUDIT: _audit_from,
}
