"""The Node client's data lifecycle calls (issue 22: search across kinds, parents
and the refused or cascading delete, the archive tier and restore), from
clients/typescript/test/lifecycle.spec.ts, against the session's real server of
each shape. A file of its own so that it runs apart from test_node_client.py's
suite (which compiles it but runs only `*.test.js`)."""

from __future__ import annotations

from pathlib import Path

from tests.support.server import StrataProcess
from tests.typescript.test_node_client import node_suite, run_node

__all__ = ["node_suite"]  # the compiled suite's fixture, imported for pytest to find here

SPEC = "lifecycle.spec.js"


def test_node_lifecycle(node_suite: Path, server: StrataProcess, shape: str) -> None:
    """Every hit kind typed and narrowed, HasChildrenError then cascade, tier and
    restore with identical reads, on this shape."""
    run_node([node_suite / SPEC], {"STRATA_TARGET": server.target, "STRATA_SHAPE": shape})
