"""Keep freed memory in the process instead of handing it back to the OS on every batch.

A forward pass allocates and frees hundreds of activation tensors, each one to tens of
megabytes. glibc's malloc serves blocks above a threshold (dynamic, from 128 KiB) with
``mmap`` and returns them with ``munmap`` on free, and trims the top of its heap as soon as
128 KiB lie free there; every later pass then faults the same memory back in page by page,
zeroed by the kernel: scoring spent 0.2-0.7× its user time in the kernel at batch 128 and
1.1-1.8× at batch 512 (BENCHMARKS.md, "Scoring speed").

:func:`keep_freed_memory` raises both thresholds (glibc only; elsewhere it does nothing), so
freed blocks up to :data:`MMAP_CEILING` are reused. Blocks above it are still mapped afresh
by glibc whatever the setting, which is why scoring also works in chunks whose largest
temporary stays below it (:mod:`pixelcnn.chunking`). ``import pixelcnn`` calls it once;
set ``PIXELCNN_MALLOC=system`` in the environment to leave the allocator as it was.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc's largest allowed mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX)
MMAP_CEILING = 32 * 2**20
# free memory the heap keeps at its top before trimming: more than any batch's activations
TRIM_THRESHOLD = 2**31 - 1

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds, once per process. True when they are set
    (now or before); False where the allocator is not glibc's or ``PIXELCNN_MALLOC=system``."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("PIXELCNN_MALLOC", "").strip().lower() == "system":
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt answers 1 on success; setting either threshold also stops glibc adjusting
    # them dynamically
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_CEILING)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _applied


__all__ = ["MMAP_CEILING", "keep_freed_memory"]
