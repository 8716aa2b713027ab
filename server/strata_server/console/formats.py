"""How values read on the console's pages: sizes, times, JSON. Jinja filters."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote as _quote

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from jinja2 import Environment

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def size(value: int | float | None) -> str:
    """Bytes for people: 1.5 MiB."""
    amount = float(value or 0)
    for unit in UNITS:
        if abs(amount) < 1024 or unit == UNITS[-1]:
            return f"{int(amount)} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount} B"  # not reached


def when(value: datetime | Timestamp | None) -> str:
    """A time in UTC to the second; empty when unset."""
    if isinstance(value, Timestamp):
        if not value.seconds and not value.nanos:
            return ""
        value = value.ToDatetime(tzinfo=UTC)
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(value: timedelta | Duration | None) -> str:
    """A duration for people: 3d 4h, 12m 5s, 0.4s."""
    if isinstance(value, Duration):
        value = value.ToTimedelta()
    if value is None:
        return ""
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{int(seconds)}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def pretty(value: Any) -> str:
    """JSON, indented, keys in their order."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def quote(value: str) -> str:
    """A value for a URL path segment or query."""
    return _quote(value, safe="")


def marked(snippet: str) -> str:
    """A search snippet as HTML: its `**match**` pairs highlighted, the rest escaped."""
    parts = html.escape(snippet).split("**")
    return "".join(
        f"<mark>{part}</mark>" if index % 2 else part for index, part in enumerate(parts)
    )


def install(environment: Environment) -> None:
    """Add these as filters of the templates."""
    environment.filters.update(size=size, when=when, span=span, pretty=pretty, q=quote)
