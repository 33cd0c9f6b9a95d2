"""Giving freed memory back to the system.

Segments are built in megabyte buffers that live for one request. glibc keeps what a process
frees for its next allocations and returns only the top of its heaps, so after a burst of large
segments the RSS stays near the burst's peak whatever the caches hold. ``malloc_trim(0)`` also
releases the free pages inside the heaps (glibc >= 2.8); it costs about a millisecond, so it runs
on a timer, not per request. Elsewhere (musl, macOS) nothing is done.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import AsyncIterator, Callable

log = logging.getLogger("origin")

TRIM_EVERY = 5.0  # seconds


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]  # type: ignore[attr-defined]
    trim.restype = ctypes.c_int  # type: ignore[attr-defined]
    return trim


MALLOC_TRIM = _malloc_trim()


async def trim_periodically() -> None:
    """Release freed heap pages every :data:`TRIM_EVERY` seconds, until cancelled."""
    if MALLOC_TRIM is None:
        return
    while True:
        await asyncio.sleep(TRIM_EVERY)
        MALLOC_TRIM(0)


async def trimming(_app: object) -> AsyncIterator[None]:
    """An aiohttp cleanup context running :func:`trim_periodically` while the app serves."""
    task = asyncio.create_task(trim_periodically())
    yield
    task.cancel()
