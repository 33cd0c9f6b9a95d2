"""What the app serves from, shared by its modules: the state holder a reload swaps, and the
application's keys."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from origin.core import urls
from origin.service.cache import ByteLRU
from origin.service.state import State


class Live:
    """The state requests see; a config reload swaps ``current`` between two requests."""

    def __init__(self, state: State) -> None:
        self.current = state
        self.draining = False  # SIGTERM: /readyz answers 503 while responses in flight finish


STATE: web.AppKey[Live] = web.AppKey("state", Live)
INFLIGHT: web.AppKey[dict[Any, asyncio.Future[bytes]]] = web.AppKey("inflight", dict)
# Parsed request paths (successful parses only: a 404 or 400 path is parsed again each time).
ROUTES: web.AppKey[ByteLRU[urls.Path]] = web.AppKey("routes", ByteLRU)
