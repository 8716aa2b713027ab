"""How an UpdateRecord changes a stored document: full replace or field-mask merge."""

from __future__ import annotations

import copy
from typing import Any

from strata_server.core.errors import InvalidArgument
from strata_server.core.jsontypes import JSON
from strata_server.core.models import EXPIRE_TIME_PATH

_MISSING = object()


def parse_mask(paths: list[str], field: str = "update_mask") -> tuple[tuple[str, ...], ...]:
    """Turn update_mask paths (`data`, `data.a.b`, `expire_time`) into UpdateRecord.paths."""
    parsed: list[tuple[str, ...]] = []
    for path in paths:
        keys = tuple(path.split("."))
        if path == "expire_time":
            parsed.append(EXPIRE_TIME_PATH)
        elif keys[0] == "data" and all(keys[1:]):
            parsed.append(keys[1:])
        else:
            raise InvalidArgument.field(
                f"{field}.paths",
                f"unknown path {path!r}: use 'data', 'data.<key>[.<key>...]' or 'expire_time'",
            )
    return tuple(parsed)


def _lookup(data: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return _MISSING
        data = data[key]
    return data


def merge(current: JSON, incoming: JSON, paths: tuple[tuple[str, ...], ...]) -> JSON:
    """Copy each masked path from `incoming` onto `current`; a path absent there is removed.

    Intermediate objects are created as needed; a non-object in the way is replaced.
    """
    result = copy.deepcopy(current)
    for keys in paths:
        if keys == EXPIRE_TIME_PATH:
            continue
        if not keys:
            result = copy.deepcopy(incoming)
            continue
        value = _lookup(incoming, keys)
        parent: Any = result
        for key in keys[:-1]:
            child = parent.get(key)
            if not isinstance(child, dict):
                if value is _MISSING:
                    break
                child = parent[key] = {}
            parent = child
        else:
            if value is _MISSING:
                parent.pop(keys[-1], None)
            else:
                parent[keys[-1]] = copy.deepcopy(value)
    return result
