"""A channel's archive: the ingested stream written to disk as it arrives, one fragmented MP4
file per stream and session, which the VOD loader serves as an asset afterwards.

The bytes are the encoder's own (``ftyp``/``moov`` then ``moof``+``mdat``), so the file is what
the encoder would have written to disk. Writes go to a thread in batches: the event loop never
waits on the disk, and a slow disk slows only that encoder's connection (back-pressure).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("origin.live")

_BATCH = 1 << 20  # bytes gathered before a write


class ArchiveFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._buffer = bytearray()
        self._failed = False

    @classmethod
    def start(cls, directory: Path, channel: str, stream: str, now: float) -> ArchiveFile:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        return cls(directory / channel / f"{stream}-{stamp}.ismv")

    def _open(self) -> BinaryIO:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
        return self._file

    def _write(self, data: bytes) -> None:
        f = self._open()
        f.write(data)
        f.flush()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._failed:
            return
        self._buffer += data
        if len(self._buffer) >= _BATCH:
            await self.flush()

    async def flush(self) -> None:
        if not self._buffer or self._failed:
            return
        data, self._buffer = bytes(self._buffer), bytearray()
        try:
            await asyncio.to_thread(self._write, data)
        except OSError as e:
            # Serving live matters more than the archive: log it once and stop archiving.
            self._failed = True
            log.error(
                "archive %s: %s; archiving of this stream stopped", self.path, e.strerror or e
            )

    async def close(self) -> None:
        await self.flush()
        if self._file is not None:
            f, self._file = self._file, None
            await asyncio.to_thread(f.close)
