"""The ``GET /proxy/manifest`` route: query checks, fetch, rewrite; the shared client session."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import MultiMapping

from origin.service import http
from origin.service.logs import clean
from origin.service.proxy.fetch import fetch_playlist, new_session
from origin.service.proxy.playlist_rewrite import (
    RewriteError,
    Rewriter,
    proxy_link,
    rewrite_playlist,
)
from origin.service.proxy.settings import ProxyConfig
from origin.service.proxy.target import ProxyError, parse_target

log = logging.getLogger("origin.proxy")

ROUTE = "/proxy/manifest"
MAX_TOKEN_LENGTH = 4096
# Bigger playlists are parsed and rewritten in a thread: m3u8 needs ~0.7 s per MiB.
INLINE_REWRITE_BYTES = 64 * 1024


class Proxy:
    """Per-app proxy state; ``config`` may be swapped on reload (the route stays registered)."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.session: aiohttp.ClientSession | None = None


PROXY: web.AppKey[Proxy] = web.AppKey("proxy", Proxy)


def _one(query: MultiMapping[str], name: str) -> str:
    values = query.getall(name, [])
    if not values or not values[0]:
        raise ProxyError(400, f"missing {name}")
    if len(values) > 1:
        raise ProxyError(400, f"{name} given more than once")
    return values[0]


def _token(query: MultiMapping[str]) -> str:
    token = _one(query, "token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise ProxyError(400, "token is too long")
    if not all(" " <= ch <= "~" for ch in token):
        raise ProxyError(400, "token must be printable ASCII")
    return token


async def manifest_proxy(request: web.Request) -> web.StreamResponse:
    proxy = request.app[PROXY]
    cfg = proxy.config
    session = proxy.session
    if not cfg.enabled:  # disabled by a config reload; the route itself stays until restart
        return http.error_response(404, "not found: manifest proxy disabled")
    if session is None:  # only between startup and cleanup_ctx, never while serving
        return http.error_response(503, "manifest proxy not ready")
    try:
        target = parse_target(_one(request.query, "playbackUrl"))
        token = _token(request.query)
        upstream = await fetch_playlist(session, cfg, target)
        route_name = request.path.rstrip("/").rpartition("/")[2]
        rw = Rewriter(
            base=upstream.url,
            token=token,
            token_param=cfg.token_param,
            segments_carry_token=cfg.segments_carry_token,
            link=lambda child: proxy_link(route_name, child, token),
            token_ok=cfg.token_allowed,
        )
        try:
            if len(upstream.text) <= INLINE_REWRITE_BYTES:
                body = rewrite_playlist(upstream.text, rw)
            else:
                loop = asyncio.get_running_loop()
                body = await loop.run_in_executor(None, rewrite_playlist, upstream.text, rw)
        except RewriteError as e:
            raise ProxyError(502, f"upstream playlist refused: {e}") from None
        if rw.withheld:
            hosts = ", ".join(sorted(rw.withheld))
            log.warning("manifest proxy: token withheld from hosts not listed: %s", clean(hosts))
    except ProxyError as e:
        level = logging.WARNING if e.status >= 500 else logging.INFO
        log.log(level, "manifest proxy %d: %s", e.status, clean(e.reason))
        return http.error_response(e.status, e.reason)
    return web.Response(
        body=body.encode(),
        content_type=http.CT_M3U8,
        # It embeds the viewer's token: no shared cache may keep or serve it to anyone else.
        headers=http.cache_headers(http.PRIVATE),
    )


def setup_proxy(app: web.Application, cfg: ProxyConfig) -> None:
    """Register ``GET /proxy/manifest`` and the shared client session (a no-op when disabled).

    Call it before any catch-all route is added.
    """
    if not cfg.enabled:
        return
    app[PROXY] = Proxy(cfg)

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        proxy = app[PROXY]
        proxy.session = new_session(proxy.config)
        try:
            yield
        finally:
            await proxy.session.close()
            proxy.session = None

    app.cleanup_ctx.append(session_ctx)
    app.router.add_get(ROUTE, manifest_proxy)
