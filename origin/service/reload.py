"""Config reloads (SIGHUP): one at a time, the latest config on disk wins, no served file closed.

A reload reads the config, builds a new state from it (reusing unchanged assets of the running
one) off the event loop, swaps it in between two requests, and closes the files only the
replaced state used once the requests that started before the swap are done. Reloads are
serialised: a request that arrives during one runs once more after it (several arrivals: one
more run), so the state built last is always from the config on disk last, and what to close is
always computed from the state actually replaced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from origin.service.config import Config, ConfigError, load_config, resolve_secrets
from origin.service.state import State, build_state, files_in_use, files_to_close
from origin.service.storage import SourceFile, close_all

if TYPE_CHECKING:  # the catalog's modules (SQLAlchemy) load only where a catalog is configured
    from origin.service.catalog.store import Snapshot

log = logging.getLogger("origin")

# How long a replaced file stays open for requests that took the old state before the swap (a
# segment request reads its spans in one executor call, well within this).
CLOSE_DELAY = 60.0


class Holder(Protocol):
    """Where requests find the running state (the app's ``Live``)."""

    current: State


def keep_overrides(config: Config, running: Config) -> Config:
    """``config`` with what the command line overrode kept from the running config."""
    r = running.server
    server = replace(
        config.server, host=r.host, port=r.port, workers=r.workers, access_log=r.access_log
    )
    return replace(config, server=server)


class Reloader:
    def __init__(
        self,
        live: Holder,
        path: Path,
        *,
        on_swap: Callable[[State], None] | None = None,
        close_delay: float = CLOSE_DELAY,
        snapshot: Callable[[], Awaitable[Snapshot]] | None = None,
    ) -> None:
        self.live = live
        self.path = path
        self.snapshot = snapshot  # the catalog's entries, merged into the file's
        self.on_swap = on_swap
        self.close_delay = close_delay
        self._lock = asyncio.Lock()
        self._again = False
        self._tasks: set[asyncio.Task[None]] = set()

    def request(self) -> asyncio.Task[None]:
        """Reload soon (the SIGHUP handler): now, or once more after the reload under way."""
        task = asyncio.get_running_loop().create_task(self.reload())
        self._tasks.add(task)  # a task nobody references may be collected before it ends
        task.add_done_callback(self._tasks.discard)
        return task

    async def reload(self) -> None:
        """Reload, or, during a reload, make sure another one runs after it; never raises."""
        if self._lock.locked():
            self._again = True
            log.info("reload requested during a reload: another one follows it")
            return
        async with self._lock:
            self._again = True
            while self._again:
                self._again = False
                await self._reload_once()

    async def _reload_once(self) -> None:
        old = self.live.current
        loop = asyncio.get_running_loop()
        log.info("reloading %s", self.path)
        snap = None
        if self.snapshot is not None:
            from origin.service.catalog.errors import CatalogError  # noqa: PLC0415

            try:
                snap = await self.snapshot()
            except CatalogError as e:
                log.error("reload refused, keeping the running config: %s", e)
                return
        try:
            new = await loop.run_in_executor(None, self._build, old, snap)
        except ConfigError as e:
            log.error("reload refused, keeping the running config:\n  %s", "\n  ".join(e.problems))
            return
        except Exception as e:  # a bug, not a bad config: still keep serving the old one
            log.error(
                "reload refused, keeping the running config: unexpected %s: %s",
                type(e).__name__,
                e,
                exc_info=True,
            )
            return
        # Nothing else replaces the state: ``old`` is exactly what this swap replaces.
        self.live.current = new
        new.fit_cache()
        if self.on_swap is not None:
            try:
                self.on_swap(new)
            except Exception:
                log.exception("after the reload, applying the new config failed")
        stale = files_to_close(old, new)
        if stale:
            loop.call_later(self.close_delay, self._close, stale)
        log.info("config reloaded: %d asset(s), %d refused", len(new.assets), len(new.refused))

    def _build(self, running: State, snap: Snapshot | None) -> State:
        if snap is not None:
            from origin.service.catalog.merge import compose  # noqa: PLC0415

            config = keep_overrides(compose(self.path, snap), running.config)
            return build_state(config, running)
        config = keep_overrides(load_config(self.path), running.config)
        # A generated ingest secret is read back from its file (made at the first start).
        config = resolve_secrets(config, config.server.state_dir)
        return build_state(config, running)

    def _close(self, stale: list[SourceFile]) -> None:
        # Checked again at close time: a file the running state serves from is never closed.
        in_use = files_in_use(self.live.current)
        close_all([f for f in stale if id(f) not in in_use])
