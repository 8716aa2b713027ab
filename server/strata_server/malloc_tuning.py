"""Process-level memory tuning for the server.

Blob transfers allocate and free buffers of 256 KiB to 8 MiB all the time (gRPC
messages, S3 parts, zstd frames). glibc serves allocations above its mmap threshold
with mmap and returns them on free, but the threshold is dynamic: the first such
buffer freed raises it to that size, after which every buffer comes from the heap
arenas (one per worker thread), and freed heap memory mostly stays resident.
Pinned at 256 KiB, a large upload leaves the server's peak and resident memory about
a third lower (bench/RESULTS.md, "measured in passing"). Pinning it is what
`MALLOC_MMAP_THRESHOLD_` does, done here so no deployment has to remember the variable.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os

M_MMAP_THRESHOLD = -3
"""mallopt parameter number, from glibc's malloc.h."""
MMAP_THRESHOLD = 256 << 10
M_ARENA_MAX = -8
"""mallopt parameter number, from glibc's malloc.h."""
ARENA_MAX = 1
"""One heap arena for every thread. glibc gives each of the 32 I/O threads an arena
of its own, and freed buffers stay resident in each: bench/artifacts.py (1 GiB up
and down through S3) peaked at 164 MB with the default, 150 MB with 2 arenas and
144 MB with 1, at the same throughput (the threads spend their time in the S3 SDK,
zstd and hashing, not in malloc)."""


def _mallopt(variable: str, parameter: int, value: int) -> bool:
    """mallopt(parameter, value) unless the environment already sets `variable`;
    False where there is no glibc (musl, macOS) and nothing was changed."""
    if variable in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(parameter, value))
    return False


def pin_mmap_threshold() -> bool:
    """Pin glibc's mmap threshold (unless MALLOC_MMAP_THRESHOLD_ is set) and limit
    its heap arenas to ARENA_MAX (unless MALLOC_ARENA_MAX is set); False where there
    is no glibc and nothing was changed."""
    pinned = _mallopt("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    limited = _mallopt("MALLOC_ARENA_MAX", M_ARENA_MAX, ARENA_MAX)
    return pinned or limited
