"""Big bodies made and written a slice at a time, so that one does not hold the event loop.

An encrypted 1.6 MB segment costs ~2 ms of one core to encrypt and write; written whole, 64 of
them in flight delay every other request (a playlist, a key) by the 64 x 2 ms the loop spends
before it polls again. Written here, a :class:`Deferred` body is encrypted
:data:`SLICE_BYTES` at a time, and only :data:`WRITERS` bodies write at once (first come, first
served): between two polls the loop runs at most that many slices, ~1 ms, whatever the number of
clients, and each request's latency is its turn plus its own work, not the sum of everyone's. A
body whose client does not keep up gives its turn away while its socket drains.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator
from typing import Protocol

from aiohttp import payload
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import StreamWriter

# ~0.1 ms to encrypt (AES-CBC at ~1.1 GB/s) and as much to copy to the socket; a slice per task
# step keeps that step's fixed cost (~10 µs) under 5% of it.
SLICE_BYTES = 128 * 1024
# Bodies writing at once per event loop: between two polls of the loop, at most this many slices
# run. More than one, so that a body waiting for its turn back after a drain finds one soon.
WRITERS = 4

_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _gate() -> asyncio.Semaphore:
    """This loop's turns (a Semaphore belongs to the loop it first waits on)."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(WRITERS)
    return gate


class Deferred(Protocol):
    """A body whose length is known before its bytes are (``pipeline.Encrypted``)."""

    def __len__(self) -> int: ...

    def whole(self) -> bytes | bytearray: ...

    def slices(self, size: int) -> Iterator[bytes | bytearray]: ...


class SlicedPayload(payload.Payload):
    """A :class:`Deferred` body, made and written a slice at a time in its turn.

    Its size is the Content-Length; a HEAD (or any bodiless answer) never makes it."""

    def __init__(self, body: Deferred, content_type: str) -> None:
        super().__init__(body, content_type=content_type)
        self._size = len(body)
        self._deferred = body

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self._deferred.whole()).decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        gate = _gate()
        transport = writer.transport
        high = transport.get_write_buffer_limits()[1] if transport is not None else 0
        left = len(self._deferred)
        await gate.acquire()
        held = True
        try:
            for piece in self._deferred.slices(SLICE_BYTES):
                if isinstance(writer, StreamWriter):
                    await writer.write(piece, drain=False)  # the drain is decided below
                else:
                    await writer.write(piece)
                left -= len(piece)
                if left <= 0:
                    break
                if transport is not None and transport.get_write_buffer_size() > high:
                    # The client is behind: others take the turn while its socket drains.
                    gate.release()
                    held = False
                    await writer.drain()
                    await gate.acquire()
                    held = True
                else:
                    await asyncio.sleep(0)  # the loop polls, small requests answer
        finally:
            if held:
                gate.release()
