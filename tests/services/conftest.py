"""Services run in-process, without gRPC: the embedded shape's real storage (an
in-memory SQLite database and blobs on local disk in a temporary directory),
opened the way app.py opens it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from strata_server.backends import open_blobs, open_database
from strata_server.config import load_settings


@pytest.fixture
async def storage() -> AsyncIterator[tuple[Any, Any]]:
    """(ports, blob store), fresh for each test."""
    settings = load_settings(database_url="sqlite://:memory:")
    database = await open_database(settings)
    blobs = await open_blobs(settings)
    try:
        yield database, blobs  # the Storage composite: one field per port
    finally:
        await blobs.close()
        await database.close()
