"""The operations endpoints: /healthz (alive), /readyz (in rotation), /metrics (Prometheus),
/channels (live channels' state)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from origin.service import http, metrics
from origin.service.cache import ByteLRU
from origin.service.fastpath import FAST
from origin.service.live.channels import CHANNELS
from origin.service.served import ROUTES, STATE


async def health(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE].current
    caches = {
        "segments": state.segments.stats(),
        "manifests": state.manifests.stats(),
        "routes": request.app[ROUTES].stats(),
        "answers": state.answers.stats(),  # the fast path's, looked up uncounted
    }
    return web.json_response(
        {
            "assets": sorted([*state.assets, *state.pending]),
            "refused": sorted(state.refused),
            "not_indexed": len(state.pending),  # server.index = "lazy": until first requested
            "caches": caches,
            "fast_path": {"hits": request.app[FAST].hits},
        },
        headers=http.cache_headers(http.NO_STORE),
    )


async def ready(request: web.Request) -> web.StreamResponse:
    """Readiness for a load balancer: 200 once the config is loaded and the server listens
    (assets indexed, or waiting for their first request with index = "lazy"); 503 while it
    drains after SIGTERM, and while the catalog's database cannot be read (it still serves what
    it had). /healthz stays 200 (alive) throughout."""
    live = request.app[STATE]
    state = live.current
    ok = not live.draining and live.catalog_problem is None
    body: dict[str, object] = {
        "ready": ok,
        "assets": len(state.assets) + len(state.pending),
        "refused": len(state.refused),
        "not_indexed": len(state.pending),
    }
    if state.config.catalog is not None:
        catalog: dict[str, object] = {"version": state.config.published.version}
        if live.catalog_problem is not None:
            catalog["problem"] = live.catalog_problem
        body["catalog"] = catalog
    status = 200 if ok else 503
    return web.json_response(body, status=status, headers=http.cache_headers(http.NO_STORE))


async def metrics_page(request: web.Request) -> web.StreamResponse:
    """Prometheus text exposition (see origin.service.metrics)."""
    body, content_type = metrics.render(gauges(request.app)())
    return web.Response(
        body=body, headers={"Content-Type": content_type, **http.cache_headers(http.NO_STORE)}
    )


def gauges(app: web.Application) -> Callable[[], list[metrics.Gauges]]:
    """What /metrics and the flush read now: caches, lazy assets, live ingest lag."""

    def read(ex: metrics.Exported) -> None:
        state = app[STATE].current
        caches: dict[str, ByteLRU[Any]] = {
            "segments": state.segments,
            "manifests": state.manifests,
            "routes": app[ROUTES],
            "answers": state.answers,
        }
        for name, cache in caches.items():
            ex.cache_bytes.labels(name).set(cache.used)
            ex.cache_capacity.labels(name).set(cache.capacity)
            if name != "answers":  # the fast path looks its answers up uncounted
                ex.lookups(name, cache.hits, cache.misses)
        ex.lookups("answers", app[FAST].hits, 0)
        ex.not_indexed.set(len(state.pending))
        now = time.time()
        for name, lc in app[CHANNELS].by_name.items():
            for stream in lc.index.status(now).streams:
                if stream.lag is not None:
                    ex.lag.labels(name, stream.stream_id).set(stream.lag)

    return lambda: [read]


async def channels_status(request: web.Request) -> web.StreamResponse:
    """Each channel's state: connected streams, newest fragment, window, ingest lag."""
    return web.json_response(
        {"channels": channel_report(request.app)}, headers=http.cache_headers(http.NO_STORE)
    )


def channel_report(app: web.Application) -> list[dict[str, Any]]:
    """What /channels and the status page say of each channel (never its ingest credential)."""
    now = time.time()
    out = []
    for name, lc in app[CHANNELS].by_name.items():
        st = lc.index.status(now)
        out.append(
            {
                "name": name,
                "state": st.state,
                "loop": bool(lc.config.loop),
                "window": st.window,
                "segments": st.segments,
                "streams": [
                    {
                        "stream": s.stream_id,
                        "connections": s.connections,
                        "tracks": list(s.tracks),
                        "last_fragment": s.last_fragment,
                        "lag": s.lag,
                    }
                    for s in st.streams
                ],
            }
        )
    return out
