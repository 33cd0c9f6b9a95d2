"""Connections under hostile traffic: safe error answers, a deadline for request heads, a warning
before the open-files limit, and a drain on shutdown that ends.

aiohttp's own ``keepalive_timeout`` closes a connection idle between requests (and, since it
starts at accept, one that never sends a byte); it does not notice a client that sends part of a
request head and then nothing, or trickles it. :class:`_SafeRequestHandler` adds that deadline.
aiohttp has no hook for it: the handler reads three private attributes of aiohttp's
``RequestHandler`` (``_request_count``, ``_request_in_progress``, ``_messages``, as in aiohttp
3.14); tests/service/test_connections.py fails if they change.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from origin.service.logs import REQUESTS, clean

log = logging.getLogger("origin")

NEAR_LIMIT = 0.8  # warn when open connections reach this share of the open-files limit
WARN_EVERY = 10.0  # seconds between two "near the limit" warnings


@dataclass(slots=True)
class Limits:
    """Per-connection limits, fixed at start-up."""

    header_timeout: float = 10.0
    nofile: int = 0  # the soft open-files limit in force; 0: unknown (no warning)
    _warned_at: float = field(default=-WARN_EVERY, repr=False)

    def check_connections(self, count: int) -> None:
        if not self.nofile or count < self.nofile * NEAR_LIMIT:
            return
        now = time.monotonic()
        if now - self._warned_at < WARN_EVERY:
            return
        self._warned_at = now
        log.warning(
            "%d open connections, near the open-files limit (%d): new clients will be refused "
            "at the limit (raise `ulimit -n`, or add workers)",
            count,
            self.nofile,
        )


def raise_nofile_limit() -> int:
    """Raise the soft open-files limit to the hard one where allowed; the soft limit in force.

    Every connection is a file descriptor, and the common default soft limit (1,024) is far
    below what one process can serve.
    """
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return 0
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        log.info("open-files limit %s", "unlimited" if soft == resource.RLIM_INFINITY else soft)
        return 0 if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as e:
        log.info("open-files limit %d (could not raise it to %d: %s)", soft, target, e)
        return soft
    log.info("open-files limit %d (raised from %d)", target, soft)
    return target


class _SafeRequestHandler(RequestHandler):
    """One connection. Adds the request-head deadline, and answers unreadable requests safely:
    aiohttp's own answer quotes the offending header's first bytes in the body and logs the
    exception text, which for an oversized ``Authorization`` is the viewer's token. Here: the
    status and a fixed reason only, and no header logged."""

    def __init__(self, manager: web.Server, *, limits: Limits, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._head_timer: asyncio.TimerHandle | None = None
        self._heads_seen = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()  # a new connection owes its first request head from now

    def data_received(self, data: bytes) -> None:
        # The first bytes of a later request on a kept-alive connection start its deadline; an
        # idle connection (no byte yet) is aiohttp's keepalive_timeout's to close.
        if self._head_timer is None and data and not self._busy():
            self._arm_head_timer()
        super().data_received(data)
        if self._head_timer is not None and self._request_count > self._heads_seen:
            self._disarm_head_timer()  # a complete head (or an unreadable one) has arrived

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _busy(self) -> bool:
        # A request being handled, or parsed ones queued: pipelined bytes after them are timed
        # by the keep-alive deadline aiohttp sets once the response is sent.
        return self._request_in_progress or bool(self._messages)

    def _arm_head_timer(self) -> None:
        self._heads_seen = self._request_count
        self._head_timer = self._loop.call_later(self._limits.header_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._request_count > self._heads_seen or self.transport is None:
            return
        peer = self.transport.get_extra_info("peername")
        REQUESTS.info(
            "closed a connection from %s: no complete request head within %gs",
            clean(peer[0] if isinstance(peer, tuple) else peer),
            self._limits.header_timeout,
        )
        self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            REQUESTS.error("error handling a request from %s: %s", clean(request.remote), type(exc))
        else:
            REQUESTS.info("unparsable request from %s (%d)", clean(request.remote), status)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started, cannot send the error")
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        resp = web.Response(
            status=status,
            text=f"{reason.lower() or 'error'}: the request could not be read\n",
            content_type="text/plain",
            headers={"Cache-Control": "no-store"},
        )
        resp.force_close()
        return resp


class _SafeServer(web.Server):
    """Makes :class:`_SafeRequestHandler` connections; counts them; drains with a deadline."""

    limits: Limits

    def __call__(self) -> RequestHandler:
        return _SafeRequestHandler(self, limits=self.limits, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.limits.check_connections(len(self._connections))

    async def shutdown(self, timeout: float | None = None) -> None:
        """aiohttp waits up to ``timeout`` for each handler, then up to ``timeout`` again for it
        to end once cancelled, and a response stuck behind a client that does not read is not
        cancelled at all: bound the whole drain by ``timeout``, then abort what is left."""
        if self._connections:
            log.info("draining %d connection(s), for up to %gs", len(self._connections), timeout)
        try:
            async with asyncio.timeout(timeout):
                await super().shutdown(timeout)
        except TimeoutError:
            left = list(self._connections.values())
            self._connections.clear()
            for transport in left:
                transport.abort()  # close() would wait to flush to a client that does not read
            log.warning(
                "drain timeout: closed %d connection(s) still open after %gs", len(left), timeout
            )


class SafeAppRunner(web.AppRunner):
    """An AppRunner whose connections are :class:`_SafeRequestHandler`\\ s under ``limits``;
    ``shutdown_timeout`` bounds the whole drain."""

    def __init__(self, app: web.Application, *, limits: Limits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # Same object and layout, only the protocol factory differs (aiohttp has no hook for it).
        server.__class__ = _SafeServer
        cast(_SafeServer, server).limits = self._limits
        return server
