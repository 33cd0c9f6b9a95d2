"""pytest-aiohttp's test server with the connections `origin serve` makes (SafeAppRunner: the
request-head deadline, safe error answers and the fast path)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from origin.service.app import AccessLogger
from origin.service.connections import Limits, SafeAppRunner
from origin.service.server import MAX_HEADER_BYTES


class SafeTestServer(TestServer):
    """``runner_kwargs`` go to the runner as `origin serve` would give them (e.g.
    ``keepalive_timeout``)."""

    def __init__(self, app: web.Application, limits: Limits, **runner_kwargs: Any) -> None:
        super().__init__(app)
        self._limits = limits
        self._runner_kwargs = runner_kwargs

    async def _make_runner(self, **kwargs: Any) -> SafeAppRunner:
        # As `origin serve`: a client going away does not cancel its handler (the test server's
        # default does, which would hide what a handler does when its client is gone).
        kwargs["handler_cancellation"] = False
        return SafeAppRunner(
            self.app,
            limits=self._limits,
            access_log_class=AccessLogger,
            access_log=logging.getLogger("origin.access"),
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
            **{**kwargs, **self._runner_kwargs},
        )
