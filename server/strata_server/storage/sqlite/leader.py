"""`lead` on SQLite: a lock among the processes sharing one database file
(`strata serve --workers N`), held as an flock on a file beside it.

The kernel drops an flock when its holder exits, however it exits, so a crashed
leader never blocks the others. A throwaway in-memory database belongs to one
process, which always leads.
"""

from __future__ import annotations

import contextlib
import fcntl
import os


class FileLeader:
    """Locks named `<database file>.<name>.lock`, taken without waiting."""

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._held: dict[str, int | None] = {}

    def lead(self, name: str) -> bool:
        """Whether this process holds `name`, taking it when free."""
        if name in self._held:
            return True
        if self._path is None:
            self._held[name] = None
            return True
        fd = os.open(f"{self._path}.{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._held[name] = fd
        return True

    def close(self) -> None:
        """Release every lock this process holds."""
        for fd in self._held.values():
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._held.clear()
