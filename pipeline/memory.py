"""Memory the run no longer needs goes back to the operating system between stages."""
from __future__ import annotations

import contextlib
import ctypes
import gc

from emoprep.pipeline.lazy import pa


def release_memory() -> None:
    """Hand memory freed by a finished step back to the OS. glibc keeps freed heap pages and
    Arrow its pool, so without this the runner's RSS stays at the peak of its largest stage
    for the rest of the run, on top of the workers of every later stage."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        ctypes.CDLL(None).malloc_trim(0)
