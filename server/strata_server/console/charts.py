"""Bar charts as data: the templates draw them as SVG on the server (the `bars`
macro of templates/macros.html), so a chart needs no script and no library."""

from __future__ import annotations

from strata_server.core.values import frozen


@frozen
class Chart:
    """One bar chart: a label per bar and its value."""

    label: str
    items: list[tuple[str, int]]
    unit: str = "count"
    """"count" or "bytes" (values shown as sizes)."""
