"""The sizes `strata quota set` accepts."""

from __future__ import annotations

import pytest
import typer

from strata_server.cli.admin_commands import parse_bytes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1048576", 1048576),
        ("512MiB", 512 * 1024**2),
        ("10GB", 10 * 1000**3),
        ("1.5 kib", 1536),
        ("2TiB", 2 * 1024**4),
        ("7b", 7),
    ],
)
def test_sizes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-1", "10 parsecs", "1e6"])
def test_not_sizes(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_bytes(text)
