"""Fault tests start servers of their own, so killing one never disturbs the shared ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import StrataProcess


@pytest.fixture(params=["sqlite", "postgres"])
def own_server(
    request: pytest.FixtureRequest, database_url, tmp_path: Path
) -> Iterator[StrataProcess]:  # type: ignore[no-untyped-def]
    """A started server of one shape on a fresh database, for this test alone."""
    process = StrataProcess(database_url(request.param), tmp_path / "strata")
    process.start()
    yield process
    process.kill()
