"""glibc's malloc, set for a render loop.

A render allocates and frees the same few MB every frame (the frame, its bands' float planes, index frames,
compressed chunks). glibc serves blocks over its mmap threshold (128 KB at first, then raised on the fly) with
fresh mmaps and trims the heap top back to the OS as soon as 2× that threshold is free, so the same pages are
faulted in again frame after frame. Measured on the default job (gen1, 100×512²): 443k page faults and 0.8 s of
system time with the defaults; 2k faults and 0.05 s with the settings below, wall time 3.3 s -> 2.3 s, and a
lower peak RSS (52 -> 50 MB), since the freed blocks are reused rather than remapped.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # mallopt(3) parameter numbers (glibc's malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 << 20  # blocks up to 4 MB (a 1024² RGB frame is 3 MB) come from the heap
TRIM_THRESHOLD = 16 << 20  # give memory back to the OS once 16 MB at the heap's top is free

_tuned = False


def steady_heap() -> bool:
    """Sets the thresholds once per process; True if they are set (False off glibc, where nothing changes)."""
    global _tuned
    if _tuned or not sys.platform.startswith("linux"):
        return _tuned
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mmap_set = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    trim_set = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    _tuned = mmap_set and trim_set
    return _tuned
