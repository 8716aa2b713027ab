"""What one record write does to the current row: the rules both adapters share.

An adapter locks/reads the current row inside its transaction, asks `plan_write`
for the outcome, then persists it. Keeping the rules here means SQLite and
PostgreSQL cannot drift apart on versions, preconditions, merges or audit detail.
"""

from __future__ import annotations

from datetime import datetime

from strata_server.core.errors import (
    AlreadyExists,
    NotFound,
    VersionConflict,
)
from strata_server.core.jsontypes import JSON, serialize
from strata_server.core.models import (
    EXPIRE_TIME_PATH,
    CreateRecord,
    Deleted,
    DeleteRecord,
    Record,
    RecordWrite,
    UpdateRecord,
    WriteResult,
)
from strata_server.core.update import merge
from strata_server.core.values import frozen


@frozen
class AuditEntry:
    """One audit-log line, written in the same transaction as the change it describes."""

    action: str  # create | update | delete | expire
    entity: str  # record
    entity_id: str  # "<collection>/<id>"
    version: int
    changed_fields: tuple[str, ...]


@frozen
class Outcome:
    """What to persist: `row` to insert-or-replace (with `data_json`, its data serialized
    once), or `delete` the row; plus the caller's result and the audit entry."""

    result: WriteResult
    audit: AuditEntry
    row: Record | None = None
    data_json: str = ""
    delete: bool = False


def changed_fields(old: JSON, new: JSON) -> tuple[str, ...]:
    """Top-level data keys whose value differs, as `data.<key>`, sorted."""
    keys = set(old) | set(new)
    return tuple(sorted(f"data.{key}" for key in keys if old.get(key) != new.get(key)))


def _live(current: Record | None, now: datetime) -> Record | None:
    if current is not None and current.expire_time is not None and current.expire_time <= now:
        return None
    return current


def _check_version(expected: int | None, current: Record, collection: str) -> None:
    if expected is not None and expected != current.version:
        raise VersionConflict(
            f"record {collection}/{current.id} is at version {current.version}, not {expected}",
            current_version=current.version,
        )


def _check_missing(write: UpdateRecord | DeleteRecord, entity_id: str) -> None:
    """An update or delete may find no record only with allow_missing, and then
    expects none (an expected_version is a conflict with "no record": version 0)."""
    if not write.allow_missing:
        raise NotFound(f"record {entity_id} does not exist")
    if write.expected_version is not None:
        raise VersionConflict(f"record {entity_id} does not exist", current_version=0)


def plan_write(
    namespace: str, write: RecordWrite, current: Record | None, now: datetime, max_bytes: int
) -> Outcome:
    """Decide the outcome of `write` given the stored row (expired rows count as absent).

    Raises AlreadyExists, NotFound, VersionConflict or TooLarge; never touches storage.
    """
    current = _live(current, now)
    entity_id = f"{write.collection}/{write.id}"
    if isinstance(write, CreateRecord):
        if current is not None:
            raise AlreadyExists(f"record {entity_id} already exists")
        return _created(namespace, write, write.data, write.owner, now, max_bytes)
    if isinstance(write, UpdateRecord):
        if current is None:
            _check_missing(write, entity_id)
            data = write.data if write.paths is None else merge({}, write.data, write.paths)
            return _created(namespace, write, data, write.owner or "", now, max_bytes)
        _check_version(write.expected_version, current, write.collection)
        if write.paths is None:
            data, expire_time = write.data, write.expire_time
        else:
            data = merge(current.data, write.data, write.paths)
            expire_time = (
                write.expire_time if EXPIRE_TIME_PATH in write.paths else current.expire_time
            )
        owner = current.owner if write.owner is None else write.owner
        text = serialize(data, max_bytes)
        row = Record(
            namespace,
            write.collection,
            write.id,
            data,
            current.version + 1,
            current.create_time,
            now,
            expire_time,
            owner,
        )
        changed = changed_fields(current.data, data)
        if expire_time != current.expire_time:
            changed = (*changed, "expire_time")
        if owner != current.owner:
            changed = (*changed, "owner")
        audit = AuditEntry("update", "record", entity_id, row.version, changed)
        return Outcome(row, audit, row=row, data_json=text)
    if isinstance(write, DeleteRecord):
        if current is None:
            _check_missing(write, entity_id)
            audit = AuditEntry("delete", "record", entity_id, 0, ())
            return Outcome(Deleted(write.collection, write.id, False), audit, delete=True)
        _check_version(write.expected_version, current, write.collection)
        audit = AuditEntry(
            "delete", "record", entity_id, current.version, changed_fields(current.data, {})
        )
        return Outcome(Deleted(write.collection, write.id, True), audit, delete=True)
    raise TypeError(f"unknown write {write!r}")  # pragma: no cover - exhaustive union


def _created(
    namespace: str,
    write: CreateRecord | UpdateRecord,
    data: JSON,
    owner: str,
    now: datetime,
    max_bytes: int,
) -> Outcome:
    text = serialize(data, max_bytes)
    collection, id = write.collection, write.id
    row = Record(namespace, collection, id, data, 1, now, now, write.expire_time, owner)
    changed = changed_fields({}, data)
    if owner:
        changed = (*changed, "owner")
    audit = AuditEntry("create", "record", f"{collection}/{id}", 1, changed)
    return Outcome(row, audit, row=row, data_json=text)
