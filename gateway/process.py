"""Process-wide settings `gateway serve` applies before it starts any thread.

glibc gives each thread that allocates its own malloc arena (up to 8 per core) and
returns little of an arena's freed memory to the system. The gateway's threads (the
event loop, the request-log writer with DuckDB's allocations, the telemetry recorders)
each kept their own: over 30,000 mixed requests RSS crept up 3.4% after warm-up in
steps of ~2.5 MB, with nothing growing in Python (tracemalloc) and flat without the
request log. With two arenas it is flat (`python -m benchmarks.soak`, benchmarks/soak.txt).
An explicit MALLOC_ARENA_MAX in the environment wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Limit this process's arenas and, through the environment glibc reads at start,
    its children's (`--workers` processes, the OTLP export process). True when glibc
    took the limit (elsewhere, or with MALLOC_ARENA_MAX already set: False)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    os.environ["MALLOC_ARENA_MAX"] = str(arenas)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False
