"""Source files: parsed once at start-up, then read by byte range off the event loop.

Each file is opened once and read with ``os.pread`` (no shared file position, so concurrent
reads need no lock). A segment's ranges are read in ONE executor call: a thread hop per range, as
aiofiles would do, costs more than the reads of warm pages themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from origin.core.errors import MediaError
from origin.core.mp4 import drive, parse_movie
from origin.core.pipeline import Span
from origin.core.track import Movie

log = logging.getLogger("origin.storage")


@dataclass(slots=True)
class SourceFile:
    path: Path
    fd: int
    size: int
    mtime: float

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)


def open_source(path: Path) -> SourceFile:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    st = os.fstat(fd)
    return SourceFile(path, fd, st.st_size, st.st_mtime)


def load_movie(src: SourceFile) -> Movie:
    """Parse a source file's index, reading only box headers and the moov."""

    def read(offset: int, size: int) -> bytes:
        return src.read(offset, min(size, max(src.size - offset, 0)))

    try:
        return drive(parse_movie(src.size), read)
    except MediaError as e:
        raise MediaError(f"{src.path}: {e}") from None


def _read_spans(files: Sequence[SourceFile], spans: Sequence[Span]) -> list[bytes]:
    out = []
    for s in spans:
        data = files[s.file].read(s.offset, s.size)
        if len(data) != s.size:
            raise MediaError(
                f"{files[s.file].path.name}: shorter than its index (changed on disk?)"
            )
        out.append(data)
    return out


async def read_spans(files: Sequence[SourceFile], spans: Sequence[Span]) -> list[bytes]:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, _read_spans, files, spans)


def close_all(files: Sequence[SourceFile]) -> None:
    for f in files:
        with contextlib.suppress(OSError):
            os.close(f.fd)
