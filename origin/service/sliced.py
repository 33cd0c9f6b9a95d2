"""Big bodies made and written a slice at a time, so that one does not hold the event loop.

A 3 MB encrypted segment (6 s at 4 Mbit/s) costs ~4 ms of one core to encrypt and write; written
whole, 64 of them in flight delay every other request (a playlist, a key) by the 64 x 4 ms the
loop can spend before it polls again. Written here, a :class:`Deferred` body is encrypted
:data:`SLICE_BYTES` at a time, and only :data:`WRITERS` bodies write at once, first come first
served: between two polls the loop runs at most that many slices, ~1 ms whatever the number of
clients, and a request's latency is its wait for a turn plus its own work. A body whose client
does not keep up gives its turn away while its socket drains, and comes back before the bodies
that have not started.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Iterator
from typing import Protocol

from aiohttp import payload
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import StreamWriter

from origin.service import metrics

# ~0.1 ms to encrypt (AES-CBC at ~1.1 GB/s) and as much to copy to the socket; a slice per task
# step keeps that step's fixed cost (~10 µs) under 5% of it.
SLICE_BYTES = 128 * 1024
# Bodies up to this size are made and written whole (~0.5 ms of the loop at most): slicing a
# 157 kB segment cost ~10% of its requests/s (sample TS, wrk A/B against one write), for nothing
# a player could see.
SLICED_FROM = 512 * 1024
# Bodies writing at once per event loop: between two polls of the loop, at most this many slices
# run. More than one, so that a body waiting for its turn back after a drain finds one soon.
WRITERS = 4


class _Turns:
    """:data:`WRITERS` turns, first come first served, except that a body coming back after a
    drain goes before those that have not started: it would otherwise wait for all of them."""

    def __init__(self, width: int) -> None:
        self.free = width
        self.resuming: deque[asyncio.Future[None]] = deque()
        self.new: deque[asyncio.Future[None]] = deque()

    async def take(self, *, resuming: bool) -> None:
        if self.free > 0:  # free turns: nobody is waiting (a freed turn goes to a waiter)
            self.free -= 1
            return
        fut = asyncio.get_running_loop().create_future()
        queue = self.resuming if resuming else self.new
        queue.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.give()  # the turn was handed over as this task was cancelled: pass it on
            else:
                queue.remove(fut)
            raise

    def give(self) -> None:
        """Hand the turn to the next waiter (it stays taken), or free it."""
        for queue in (self.resuming, self.new):
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)
                    return
        self.free += 1


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turns] = weakref.WeakKeyDictionary()


def _loop_turns() -> _Turns:
    """This loop's turns (their futures belong to it)."""
    loop = asyncio.get_running_loop()
    turns = _turns.get(loop)
    if turns is None:
        turns = _turns[loop] = _Turns(WRITERS)
    return turns


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
        turns = _loop_turns()
        transport = writer.transport
        high = transport.get_write_buffer_limits()[1] if transport is not None else 0
        left = len(self._deferred)
        await turns.take(resuming=False)
        held = True
        pieces = self._deferred.slices(SLICE_BYTES)
        spent = 0.0  # encrypting, summed over the slices (the metrics' encryption latency)
        try:
            while True:
                started = time.perf_counter()
                piece = next(pieces, None)
                spent += time.perf_counter() - started
                if piece is None:
                    break
                if isinstance(writer, StreamWriter):
                    await writer.write(piece, drain=False)  # the drain is decided below
                else:
                    await writer.write(piece)
                left -= len(piece)
                if left <= 0:
                    metrics.observe_encrypt(spent)
                    break
                if transport is not None and transport.get_write_buffer_size() > high:
                    # The client is behind: others take the turn while its socket drains.
                    turns.give()
                    held = False
                    await writer.drain()
                    await turns.take(resuming=True)
                    held = True
                else:
                    await asyncio.sleep(0)  # the loop polls, small requests answer
        finally:
            if held:
                turns.give()
