"""A capture server for the encoder tests: an aiohttp app on 127.0.0.1 (free port) that accepts any
request and records its method, path, headers and body chunks with their arrival times.

It stands in for the origin's ingest so the test-side encoders (live_encoder, cmaf_ingest) can be
checked on their own: what ffmpeg or the CMAF client actually sends, when, and how the body ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Captured:
    method: str
    path: str
    headers: dict[str, str]
    started: float  # time.monotonic() when the request line arrived
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    complete: bool = False  # the body ended properly (chunked terminator / full Content-Length)
    error: str = ""  # why the body did not complete (e.g. the connection dropped)
    ended: float = 0.0

    @property
    def body(self) -> bytes:
        return b"".join(c for _, c in self.chunks)


@dataclass
class Capture:
    base_url: str
    requests: list[Captured]

    def on(self, path_part: str) -> list[Captured]:
        return [r for r in self.requests if path_part in r.path]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; captured: {self.summary()}")
            await asyncio.sleep(0.05)

    def summary(self) -> list[tuple[str, str, int, bool]]:
        return [(r.method, r.path, len(r.body), r.complete) for r in self.requests]


# status: path -> list of statuses to answer in turn (the last one repeats); default 200
@asynccontextmanager
async def capture_server(statuses: dict[str, list[int]] | None = None) -> AsyncIterator[Capture]:
    requests: list[Captured] = []
    plan = {k: list(v) for k, v in (statuses or {}).items()}

    async def handle(request: web.Request) -> web.StreamResponse:
        rec = Captured(request.method, request.path, dict(request.headers), time.monotonic())
        requests.append(rec)
        todo = plan.get(request.path)
        status = (todo.pop(0) if len(todo) > 1 else todo[0]) if todo else 200
        if status >= 400:
            # Refuse before reading the body, as the origin's ingest must.
            rec.ended = time.monotonic()
            return web.Response(status=status, text="refused")
        try:
            async for chunk in request.content.iter_any():
                rec.chunks.append((time.monotonic(), chunk))
            rec.complete = request.content.at_eof()
        except ConnectionError as exc:  # the client dropped: no answer can be sent
            rec.error = repr(exc)
            rec.ended = time.monotonic()
            return web.Response(status=400)
        except asyncio.CancelledError as exc:
            rec.error = repr(exc)
            rec.ended = time.monotonic()
            raise
        rec.ended = time.monotonic()
        return web.Response(status=status, text="ok")

    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Capture(f"http://127.0.0.1:{port}", requests)
    finally:
        await runner.cleanup()
