"""bench/RESULTS.md: one `## <name>` section per benchmark, each rewritten only by
its own benchmark, so running one benchmark never loses another's figures."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = (
    "# Benchmark results\n\n"
    "Written by `make bench`; each section is replaced by the benchmark that owns it.\n"
)


def write_section(name: str, markdown: str, path: Path = RESULTS) -> None:
    """Replace the section headed `## name` with `markdown` (appending it when
    absent); the heading is added when `markdown` does not start with it."""
    heading = f"## {name}"
    body = markdown.strip()
    if body.splitlines()[0].strip() != heading:
        body = f"{heading}\n\n{body}"
    text = path.read_text() if path.exists() else HEADER
    # Split before every level-2 heading; parts[0] is whatever precedes the first.
    parts = [part.strip() for part in re.split(r"(?m)^(?=## )", text)]
    owned = [i for i, part in enumerate(parts) if part.splitlines()[:1] == [heading]]
    if owned:
        parts[owned[0]] = body
    else:
        parts.append(body)
    path.write_text("\n\n".join(part for part in parts if part) + "\n")
