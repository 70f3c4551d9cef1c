"""Process memory tuning for pipeline runs.

glibc gives each thread that contends for the allocator an arena of its own (up to 8 per core) and
keeps the memory freed in an arena for reuse by that arena. A run's worker threads (parsing, the
chunker's counting thread, HashEmbedder on `asyncio.to_thread`) each allocate and free megabytes
of NumPy scratch and chunk text per request, so idle arenas hold a hundred MiB or more that no
other thread reuses: the mock benchmark's peak RSS was 287 MiB with the default arenas and 191 MiB
with one (`bench/pipeline.py`). `limit_malloc_arenas` caps them the way `MALLOC_ARENA_MAX` does
(https://www.gnu.org/software/libc/manual/html_node/Memory-Allocation-Tunables.html), from inside
the process, before the run starts its threads.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
ARENAS = 2  # the main thread's and one shared by the workers


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at `arenas` (unless MALLOC_ARENA_MAX already says otherwise).
    Returns whether the cap was set; False, and nothing changed, off glibc (macOS, musl)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):  # not glibc-like: nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))
