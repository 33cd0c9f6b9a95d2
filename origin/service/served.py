"""What the app serves from, shared by its modules: the state holder a reload swaps, and the
application's keys."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from origin.core import urls
from origin.service.cache import ByteLRU
from origin.service.state import State

if TYPE_CHECKING:
    from origin.service.catalog.sync import Link
    from origin.service.reload import Reloader


class Live:
    """The state requests see; a config reload swaps ``current`` between two requests."""

    def __init__(self, state: State) -> None:
        self.current = state
        self.draining = False  # SIGTERM: /readyz answers 503 while responses in flight finish
        # Why the catalog database cannot be read now (None: it can, or there is none): the
        # server keeps serving what it had, /readyz says unready until it recovers.
        self.catalog_problem: str | None = None
        # Set once serving: the reloader (a config file is served) and the catalog link (a
        # [catalog] is configured), which the management API uses to apply its changes.
        self.reloader: Reloader | None = None
        self.catalog: Link | None = None


STATE: web.AppKey[Live] = web.AppKey("state", Live)
INFLIGHT: web.AppKey[dict[Any, asyncio.Future[bytes]]] = web.AppKey("inflight", dict)
# Parsed request paths (successful parses only: a 404 or 400 path is parsed again each time).
ROUTES: web.AppKey[ByteLRU[urls.Path]] = web.AppKey("routes", ByteLRU)
