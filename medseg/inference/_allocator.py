"""Keep freed memory inside the process while a prediction runs (glibc malloc only).

A 3D network allocates and frees tens of activation tensors of 10–30 MB per window. glibc
serves each from fresh ``mmap`` pages or trims its heap after the free, so every layer
page-faults its output back in (the kernel zeroes each 4 KiB page): on this project's CPU
that was about a quarter of MONAI's sliding-window time. Raising the mmap and trim
thresholds for the duration of a prediction lets freed blocks be reused as they are
(jemalloc and tcmalloc behave so by default); ``malloc_trim`` hands the memory back at the
end. Elsewhere (macOS, musl, Windows) this is a no-op.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import sys
import threading
from collections.abc import Iterator

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: While predicting: blocks up to 1 GiB come from the heap, which is never trimmed.
_RETAIN_BYTES = 1 << 30
#: Afterwards: the ceiling glibc's own dynamic thresholds reach (32 MiB mmap, 64 MiB trim);
#: setting any threshold switches the dynamic adjustment off, so these stand in for it.
_MMAP_AFTER_BYTES = 32 << 20
_TRIM_AFTER_BYTES = 64 << 20

_lock = threading.Lock()
_depth = 0


@functools.lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError outside glibc
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def retain_freed_memory(*, enabled: bool = True) -> Iterator[None]:
    """Within the block, freed heap memory is reused instead of returned to the OS.

    Re-entrant and thread-safe (the outermost block applies and restores the settings).
    """
    global _depth
    libc = _glibc() if enabled else None
    if libc is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, _RETAIN_BYTES)
            libc.mallopt(_M_TRIM_THRESHOLD, _RETAIN_BYTES)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_AFTER_BYTES)
                libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_AFTER_BYTES)
                libc.malloc_trim(0)
