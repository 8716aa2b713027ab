"""The client package's shape, read from its source: no import circle (counting
imports made only for type checkers or inside functions), only the transport
touches the generated stubs, and no module over 400 lines."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import strata

PACKAGE = Path(strata.__file__).parent
MODULES = {path.stem: path for path in PACKAGE.glob("*.py") if path.stem != "__init__"}


def _imported(path: Path) -> set[str]:
    """The package's modules that `path` imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == "strata":
                found |= {alias.name for alias in node.names if alias.name in MODULES}
            elif node.module.startswith("strata."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {
                alias.name.split(".")[1]
                for alias in node.names
                if alias.name.startswith("strata.") and alias.name.count(".") >= 1
            }
    return found & MODULES.keys()


def test_no_import_circle() -> None:
    graph = {name: _imported(path) - {name} for name, path in MODULES.items()}
    graphlib.TopologicalSorter(graph).prepare()  # CycleError names the circle


def test_only_the_transport_touches_the_stubs_and_the_metadata() -> None:
    reaching = {
        name
        for name, path in MODULES.items()
        if "_pb2_grpc" in path.read_text()
        or "._stubs" in path.read_text()
        or "._metadata" in path.read_text()
    }
    assert reaching == {"_transport"}


def test_no_module_over_400_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {name: size for name, size in sizes.items() if size > 400} == {}
