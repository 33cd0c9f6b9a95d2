"""Connections under hostile traffic: safe error answers, a deadline for request heads, a warning
before the open-files limit, and a drain on shutdown that ends.

aiohttp's own ``keepalive_timeout`` closes a connection idle between requests (and, since it
starts at accept, one that never sends a byte); it does not notice a client that sends part of a
request head and then nothing, or trickles it. :class:`_SafeRequestHandler` adds that deadline.

Built on aiohttp's public surface: ``web.Server``'s constructor arguments (``request_factory``:
called once per request head read, readable or not, which ends the deadline) and attributes
(``request_handler``, ``request_factory``), ``RequestHandler``'s protocol callbacks,
``log_access`` (a response is sent) and ``handle_error``. One protected name remains:
:meth:`SafeAppRunner._make_server`, the hook ``BaseRunner`` subclasses implement, because only
aiohttp's Application knows its own request handler and factory (``Application._handle``,
``_make_request``); the override lets aiohttp build its Server, then builds a
:class:`_SafeServer` from that Server's public attributes. tests/service/test_connections.py and
the hostile tests pin the behaviour.

The connections also serve the fast path (:mod:`origin.service.fastpath`): each connection
parses the request heads it reads with httptools as well, and when it is idle and every request
in what it read has an answer there, writes them itself instead of handing the bytes to aiohttp.
That needs a few of aiohttp's protected connection attributes (:data:`_AIOHTTP_STATE`), checked
at import: with another aiohttp that lacks them, the fast path is off and nothing else changes.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import RequestHandler
from aiohttp.web_log import AccessLogger

from origin.service.fastpath import FAST, FastPath, Heads, request_key
from origin.service.http import NO_STORE, cache_headers
from origin.service.logs import (
    REQUEST_ID,
    REQUESTS,
    AccessFormat,
    access_line,
    clean,
    new_request_id,
)
from origin.service.metrics import RECORD

# After the stored Date value: the replayed answer's own request id header (JSON logs).
_REQUEST_ID_LINE = f"\r\n{REQUEST_ID}: ".encode()

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


# aiohttp's RequestHandler state the fast path reads (is the connection idle, is it logging)
# and updates (the keep-alive deadline after answering).
_AIOHTTP_STATE = (
    "_messages",
    "_payload_parser",
    "_upgraded",
    "_force_close",
    "_close",
    "_keepalive",
    "_keepalive_timeout",
    "_keepalive_handle",
    "_next_keepalive_close_time",
    "_logging_enabled",
    "_manager",
)
_SLOTS = {name for cls in RequestHandler.__mro__ for name in getattr(cls, "__slots__", ())}
FAST_CAPABLE = set(_AIOHTTP_STATE) <= _SLOTS and hasattr(RequestHandler, "_process_keepalive")
# Not while the client is not reading: aiohttp's own writes then wait for the buffer to drain.
_WRITE_LIMIT = 256 * 1024


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

    def __init__(
        self,
        manager: _SafeServer,
        *,
        loop: asyncio.AbstractEventLoop,
        limits: Limits,
        fast: FastPath | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._timer_loop = loop
        self._limits = limits
        self._head_timer: asyncio.TimerHandle | None = None
        self._heads_read = 0  # request heads read (or found unreadable) on this connection
        self._responses_sent = 0  # responses to them sent
        self._fast = fast if FAST_CAPABLE else None
        self._heads = Heads() if self._fast is not None else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()  # a new connection owes its first request head from now

    def data_received(self, data: bytes) -> None:
        # The first bytes of a later request on a kept-alive connection start its deadline. Not
        # while a request is being handled: bytes then are its body, or pipelined requests that
        # the keep-alive deadline aiohttp sets once the response is sent times. An idle
        # connection (no byte yet) is aiohttp's keepalive_timeout's to close.
        if self._heads is not None and self._answer_fast(data):
            return
        if self._head_timer is None and data and self._heads_read == self._responses_sent:
            self._arm_head_timer()
        super().data_received(data)

    def _answer_fast(self, data: bytes) -> bool:
        """Answer every request in ``data`` from the fast path, if it has them all and nothing
        else is under way on this connection; False: ``data`` is aiohttp's to read."""
        assert self._heads is not None and self._fast is not None
        heads = self._heads.feed(data)
        if heads is None:
            self._heads = None  # it cannot follow this connection any more: for good
            return False
        transport = self.transport
        if (
            not heads
            or self._heads_read != self._responses_sent
            or self._messages
            or self._payload_parser is not None
            or self._upgraded
            or self._force_close
            or self._close
            or not self._keepalive
            or transport is None
            or transport.get_write_buffer_size() > _WRITE_LIMIT
        ):
            return False
        now = time.time()
        fast = self._fast
        answers = []
        for head in heads:
            if not (
                head.fit and head.method == b"GET" and head.version == "1.1" and head.keep_alive
            ):
                return False
            key = request_key(head.target, head.headers)
            answer = fast.lookup(key, now) if key is not None else None
            if answer is None:
                return False
            answers.append(answer)
        date = fast.date.value(now)
        parts: list[bytes] = []
        ids: list[str | None] = [None] * len(answers)
        if AccessFormat.json:  # each answer its request id, as aiohttp's answers have
            made = [new_request_id() for _ in answers]
            ids = list(made)
            for answer, rid in zip(answers, made, strict=True):
                parts += (answer.head, date, _REQUEST_ID_LINE + rid.encode(), answer.tail)
        else:
            for answer in answers:
                parts += (answer.head, date, answer.tail)
        transport.writelines(parts)
        fast.hits += len(answers)
        RECORD.replayed(answers, len(date))
        self._manager.requests_count += len(answers)  # type: ignore[union-attr]
        loop = self._timer_loop
        if self._keepalive_timeout:
            # What aiohttp does after each response: the idle deadline restarts.
            close_time = loop.time() + self._keepalive_timeout
            self._next_keepalive_close_time = close_time
            if self._keepalive_handle is None:
                self._keepalive_handle = loop.call_at(close_time, self._process_keepalive)
        if self._logging_enabled and self.access_logger is not None:
            peer = transport.get_extra_info("peername")
            remote = peer[0] if isinstance(peer, tuple) else peer
            for answer, head, answer_id in zip(answers, heads, ids, strict=True):
                agent = next((v for n, v in head.headers if n.lower() == b"user-agent"), None)
                access_line(
                    self.access_logger.logger,
                    remote,
                    "GET",
                    answer.path,
                    answer.status,
                    len(answer.head) + len(date) + len(answer.tail),  # as aiohttp counts
                    time.time() - now,
                    agent.decode("latin-1") if agent is not None else None,
                    answer_id,
                )
        return True

    def head_read(self) -> None:
        """aiohttp makes a request of a head it read, or an error reply of one it could not."""
        self._heads_read += 1
        self._disarm_head_timer()

    def log_access(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float | None
    ) -> None:
        self._responses_sent += 1  # aiohttp calls this once a response is written, sent or not
        RECORD.answered(request.method, request.path, response.status, response.body_length)
        if self._fast is not None:
            self._fast.store(request, response)
        super().log_access(request, response, time)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._head_timer = self._timer_loop.call_later(
            self._limits.header_timeout, self._head_timed_out
        )

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport is None:
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
        try:
            reason = HTTPStatus(status).phrase.lower()
        except ValueError:
            reason = "error"
        resp = web.Response(
            status=status,
            text=f"{reason}: the request could not be read\n",
            content_type="text/plain",
            headers=cache_headers(NO_STORE),
        )
        resp.force_close()
        return resp


RequestFactory = Callable[..., web.BaseRequest]  # web.Server's request_factory


class _SafeServer(web.Server):
    """Makes :class:`_SafeRequestHandler` connections; counts them; drains with a deadline."""

    def __init__(
        self,
        handler: Callable[..., Any],
        *,
        request_factory: RequestFactory,
        loop: asyncio.AbstractEventLoop,
        limits: Limits,
        fast: FastPath | None = None,
        **kwargs: Any,
    ) -> None:
        def on_head(
            message: Any, payload: Any, protocol: RequestHandler, writer: Any, task: Any
        ) -> web.BaseRequest:
            request = request_factory(message, payload, protocol, writer, task)
            if isinstance(protocol, _SafeRequestHandler):
                protocol.head_read()
            return request

        handler_kwargs = dict(kwargs)
        handler_kwargs.pop("handler_cancellation", None)  # the Server's, not the handlers'
        super().__init__(handler, request_factory=on_head, loop=loop, **kwargs)
        self.limits = limits
        self.fast = fast
        self._handler_loop = loop
        self._handler_kwargs = handler_kwargs
        # Connections not yet lost, with their transports: what a drain past its deadline aborts.
        self._open: dict[RequestHandler, asyncio.Transport] = {}

    def __call__(self) -> RequestHandler:
        return _SafeRequestHandler(
            self,
            loop=self._handler_loop,
            limits=self.limits,
            fast=self.fast,
            **self._handler_kwargs,
        )

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._open[handler] = transport
        RECORD.connections += 1
        self.limits.check_connections(len(self._open))

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        if self._open.pop(handler, None) is not None:
            RECORD.connections -= 1
        super().connection_lost(handler, exc)

    async def shutdown(self, timeout: float | None = None) -> None:
        """aiohttp waits up to ``timeout`` for each handler, then up to ``timeout`` again for it
        to end once cancelled, and a response stuck behind a client that does not read is not
        cancelled at all: bound the whole drain by ``timeout``, then abort what is left."""
        if self._open:
            log.info("draining %d connection(s), for up to %gs", len(self._open), timeout)
        try:
            async with asyncio.timeout(timeout):
                await super().shutdown(timeout)
        except TimeoutError:
            left = list(self._open.values())
            self._open.clear()
            RECORD.connections -= len(left)
            for transport in left:
                transport.abort()  # close() would wait to flush to a client that does not read
            log.warning(
                "drain timeout: closed %d connection(s) still open after %gs", len(left), timeout
            )


class SafeAppRunner(web.AppRunner):
    """An AppRunner whose connections are :class:`_SafeRequestHandler`\\ s under ``limits``;
    ``shutdown_timeout`` bounds the whole drain. The other keyword arguments are AppRunner's
    (``handle_signals``, ``shutdown_timeout``) and the connections' (``access_log_class``,
    ``keepalive_timeout``, ``max_field_size``, …)."""

    def __init__(
        self,
        app: web.Application,
        *,
        limits: Limits,
        handle_signals: bool = False,
        shutdown_timeout: float = 60.0,
        access_log_class: type[AbstractAccessLogger] = AccessLogger,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            app,
            handle_signals=handle_signals,
            shutdown_timeout=shutdown_timeout,
            access_log_class=access_log_class,
            **kwargs,
        )
        self._limits = limits
        self._server_kwargs = {"access_log_class": access_log_class, **kwargs}

    async def _make_server(self) -> web.Server:
        # aiohttp's starts the app and builds a Server around the app's request handler and
        # factory; the same again, from that Server's public attributes, with our connections.
        # (The app's ``handler_args`` and debug flag are not carried over: this app sets neither.)
        made = await super()._make_server()
        return _SafeServer(
            made.request_handler,
            request_factory=made.request_factory,
            loop=asyncio.get_running_loop(),
            limits=self._limits,
            fast=self.app.get(FAST),
            **self._server_kwargs,
        )
