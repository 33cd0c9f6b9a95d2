"""Keeping a server's state in step with the catalog.

Every process polls the catalog's change counter (``changes``' highest id) every
``catalog.poll_interval`` seconds and reloads when it moved: a change made through any node (or
any worker) is served everywhere within one interval plus a reload. Polling rather than
PostgreSQL's LISTEN/NOTIFY: one code path for SQLite and PostgreSQL, no connection held open
per worker, and the delay is bounded by the interval either way. The node that made a change
reloads at once, before its API answers.

When the database cannot be read, the server keeps serving what it had, reports it in /readyz
(503) and logs it once; when it can again, it reloads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from origin.service.catalog.errors import Unavailable
from origin.service.catalog.store import Catalog, Snapshot, redacted
from origin.service.catalog.view import CatalogConfig
from origin.service.served import Live

log = logging.getLogger("origin.catalog")


def initial_snapshot(cfg: CatalogConfig) -> Snapshot:
    """The catalog as it is now, read before the server's loop starts (migrating it first);
    Unavailable when the database cannot be reached."""

    async def read() -> Snapshot:
        catalog = await Catalog.open(cfg.database_url)
        try:
            return await catalog.snapshot()
        finally:
            await catalog.close()

    return asyncio.run(read())


class Link:
    """This process's connection to the catalog, opened on its loop."""

    def __init__(self, cfg: CatalogConfig, live: Live) -> None:
        self.cfg = cfg
        self.live = live
        self._catalog: Catalog | None = None
        self._opening = asyncio.Lock()  # the watcher and a request may both open it first
        self.seen = live.current.config.published.version

    async def catalog(self) -> Catalog:
        async with self._opening:
            if self._catalog is None:
                self._catalog = await Catalog.open(self.cfg.database_url)
        return self._catalog

    async def snapshot(self) -> Snapshot:
        snap = await (await self.catalog()).snapshot()
        self.seen = max(self.seen, snap.version)
        return snap

    async def close(self) -> None:
        if self._catalog is not None:
            await self._catalog.close()

    async def watch(self, reload: Callable[[], Awaitable[None]]) -> None:
        """Poll until cancelled; ``reload`` when the catalog changed or came back."""
        while True:
            await asyncio.sleep(self.cfg.poll_interval)
            try:
                version = await (await self.catalog()).version()
            except Unavailable as e:
                if self.live.catalog_problem is None:
                    log.error(
                        "catalog %s unavailable, serving what was loaded: %s",
                        redacted(self.cfg.database_url),
                        e,
                    )
                self.live.catalog_problem = "the catalog database cannot be read"
                continue
            if self.live.catalog_problem is not None:
                log.warning("catalog %s is back", redacted(self.cfg.database_url))
                self.live.catalog_problem = None
                await reload()
            elif version != self.seen:
                await reload()
