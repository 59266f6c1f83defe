"""Giving the replay's freed memory back to the operating system."""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import pyarrow as pa


def heap_trimmer() -> Callable[[], None]:
    """Give freed memory back to the OS (called every progress tick).

    kafka-python's batch buffers are allocated on one thread and freed on another; glibc keeps
    the freed pages, and a long replay's RSS creeps up (+150 MB over 20M events, measured).
    `malloc_trim` gives them back (~65 MB each time); pyarrow's pool keeps freed batches too.
    """
    pool = pa.default_memory_pool()
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        trim = None

    def release() -> None:
        pool.release_unused()
        if trim is not None:
            trim(0)

    return release
