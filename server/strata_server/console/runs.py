"""Long operations started from the console (cleanup, integrity check, index build,
export, import), run beside the page that started them.

A POST starts the operation as a task and sends the browser to the run's page,
which listens to the run's server-sent events: each Progress message the API
streams is redrawn as it comes, then the result (or the failure). A run is seen
only by the token that started it; the console keeps the last few, and an
export's archive until the run is forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from strata import StrataError
from strata.v1 import admin_pb2
from strata_server.console.gateway import Failure

log = structlog.get_logger("strata.console")

KEEP = 32
"""Runs remembered; the oldest finished one is forgotten past this."""

Work = Callable[["Run"], Awaitable[Any]]
"""An operation: calls the API, reports progress through `Run.report`, returns
its result message."""


def owner_of(token: str | None) -> str:
    """Whose run it is: a digest of the bearer token (never the token itself)."""
    return hashlib.sha256((token or "").encode()).hexdigest()


@dataclass(slots=True)
class Run:
    """One operation: what it is doing now and how it ended."""

    id: str
    kind: str
    """"cleanup", "integrity", "index", "export" or "import"."""
    title: str
    owner: str
    namespace: str
    workdir: Path
    """Files of this run (an export's archive, an import's upload)."""
    progress: admin_pb2.Progress | None = None
    result: Any = None
    failure: Failure | None = None
    finished: bool = False
    version: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def report(self, progress: admin_pb2.Progress) -> None:
        """Take a Progress message of the API's stream (a progress callback)."""
        self.progress = progress
        self._touch()

    def _touch(self) -> None:
        self.version += 1
        self.changed.set()
        self.changed = asyncio.Event()

    def finish(self, result: Any = None, failure: Failure | None = None) -> None:
        """The operation ended, with its result or why it failed."""
        self.result, self.failure, self.finished = result, failure, True
        self._touch()

    async def changes(self) -> Any:
        """Wait until something changed (or 15 s passed: a keep-alive)."""
        waiting = self.changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiting.wait(), 15.0)

    @property
    def percent(self) -> int | None:
        """How far the current phase has come; None when its total is not known."""
        if self.progress is None or self.progress.total <= 0:
            return None
        return min(100, int(100 * self.progress.done / self.progress.total))

    @property
    def archive(self) -> Path:
        """Where an export writes its archive."""
        return self.workdir / "archive.tar"


class Runs:
    """The runs of one console process."""

    def __init__(self) -> None:
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._root: Path | None = None

    def create(self, kind: str, title: str, token: str | None, namespace: str) -> Run:
        """A new run, not started: its files can be written first (an import's
        upload), then `begin` starts it."""
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="strata-console-"))
        run_id = secrets.token_urlsafe(12)
        workdir = self._root / run_id
        workdir.mkdir()
        run = Run(run_id, kind, title, owner_of(token), namespace, workdir)
        self._runs[run_id] = run
        self._forget_old()
        return run

    def begin(self, run: Run, work: Work) -> Run:
        """Start `work` for `run` as a task; returns the run at once."""
        run.task = asyncio.create_task(self._carry_out(run, work))
        return run

    def start(self, kind: str, title: str, token: str | None, namespace: str, work: Work) -> Run:
        """Create a run and start `work` for it."""
        return self.begin(self.create(kind, title, token, namespace), work)

    def get(self, run_id: str, token: str | None) -> Run | None:
        """The run, if it exists and `token` started it."""
        run = self._runs.get(run_id)
        return run if run is not None and run.owner == owner_of(token) else None

    def mine(self, token: str | None) -> list[Run]:
        """The runs `token` started, newest first."""
        owner = owner_of(token)
        return [run for run in reversed(self._runs.values()) if run.owner == owner]

    async def close(self) -> None:
        """Cancel what still runs and remove every run's files."""
        for run in self._runs.values():
            if run.task is not None:
                run.task.cancel()
        for run in self._runs.values():
            if run.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run.task
        self._runs.clear()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    async def _carry_out(self, run: Run, work: Work) -> None:
        try:
            result = await work(run)
        except StrataError as error:
            run.finish(failure=Failure.of(error))
        except asyncio.CancelledError:
            run.finish(failure=Failure("CANCELLED", "", "the console stopped"))
            raise
        except Exception:
            log.exception("console run failed", kind=run.kind)
            run.finish(failure=Failure("INTERNAL", "", "the run failed; see the server log"))
        else:
            run.finish(result)

    def _forget_old(self) -> None:
        while len(self._runs) > KEEP:
            oldest = next((key for key, run in self._runs.items() if run.finished), None)
            if oldest is None:
                return
            shutil.rmtree(self._runs.pop(oldest).workdir, ignore_errors=True)
