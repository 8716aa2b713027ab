"""Fixtures the QueueService contract tests share."""

from __future__ import annotations

import pytest

from tests.contract.helpers import queue_stub, unique


@pytest.fixture
def qs(stubs):
    """A QueueService stub over the test server's shared channel."""
    return queue_stub(stubs.channel)


@pytest.fixture
def qname() -> str:
    """A queue name no other test uses, so tests share the session's servers
    without seeing each other's jobs."""
    return unique("q")
