"""The built-in player and status page: ``/`` (and ``/player``), ``/status``.

The page lists every asset and live channel (:mod:`.listing`) and plays the one chosen with
hls.js, dash.js or Shaka Player, served from the files vendored into this package
(``vendor/``, pinned, with their licenses: ``scripts/vendor_players.py``), so it plays on a
machine with no internet access. Its Content-Security-Policy lets it load nothing from another
host. ``/status`` shows, for a person, what ``/metrics`` counts (:mod:`.overview`).
``[server] player = false`` switches all of it off (the routes are not there: 404).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from origin.service import http
from origin.service.live.channels import CHANNELS
from origin.service.player.listing import listing, title
from origin.service.player.overview import overview
from origin.service.served import STATE

PREFIX = "/player/"  # the page's scripts, styles, vendored players and data
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
}
_TEXT = "text/plain; charset=utf-8"
# The page's scripts change with the package; the vendored players with their pinned version,
# which the page's URLs carry (?v=), so a browser may keep them a day.
_STATIC_MAX_AGE = "public, max-age=300"
_VENDOR_MAX_AGE = "public, max-age=86400"


@dataclass(slots=True)
class _File:
    body: bytes
    content_type: str
    etag: str
    cache_control: str
    gzipped: bytes | None = None


class Files:
    """The package's page files, read on first request and kept (a few MB at most)."""

    def __init__(self) -> None:
        self._files: dict[str, _File] = {}
        self._root = resources.files(__package__ or "origin.service.player")

    def get(self, name: str) -> _File | None:
        found = self._files.get(name)
        if found is not None:
            return found
        parts = name.split("/")
        if (
            not parts
            or parts[0] not in ("static", "vendor")
            or any(p in ("", ".", "..") for p in parts)
        ):
            return None
        node = self._root.joinpath(*parts)
        if not node.is_file():
            return None
        body = node.read_bytes()
        licence = parts[:2] == ["vendor", "licenses"]  # whatever its name ends with: text
        content_type = _TEXT if licence else _TYPES.get(PurePosixPath(parts[-1]).suffix)
        if content_type is None:
            return None
        cache = _VENDOR_MAX_AGE if parts[0] == "vendor" else _STATIC_MAX_AGE
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        found = self._files[name] = _File(body, content_type, etag, cache)
        return found


FILES = web.AppKey("player_files", Files)


def content_security_policy(base_url: str | None) -> str:
    """Everything from this host only (plus the configured base_url's host, where manifests
    send players); blob: for the media source and hls.js's worker, data: for the favicon."""
    media = "'self'"
    if base_url:
        u = urlsplit(base_url)
        media += f" {u.scheme}://{u.netloc}"
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {media}",
            f"media-src {media} blob:",
            "worker-src 'self' blob:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'self'",
        ]
    )


async def _send(
    request: web.Request, f: _File, extra: dict[str, str] | None = None
) -> web.Response:
    headers = {
        "Content-Type": f.content_type,
        "ETag": f.etag,
        "X-Content-Type-Options": "nosniff",
        **http.cache_headers(f.cache_control),
        **(extra or {}),
    }
    if request.headers.get("If-None-Match") == f.etag:
        return web.Response(
            status=304, headers={k: v for k, v in headers.items() if k != "Content-Type"}
        )
    body = f.body
    if len(body) > 1024 and "gzip" in request.headers.get("Accept-Encoding", ""):
        if f.gzipped is None:  # once per file, off the event loop
            f.gzipped = await asyncio.to_thread(gzip.compress, f.body, 6)
        body = f.gzipped
        headers["Content-Encoding"] = "gzip"
    headers["Vary"] = "Accept-Encoding"
    return web.Response(body=body, headers=headers)


def _page(name: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        f = request.app[FILES].get(f"static/{name}")
        if f is None:  # the package was installed without its page files
            return http.error_response(404, "the player page is not installed")
        csp = content_security_policy(request.app[STATE].current.config.server.base_url)
        return await _send(
            request,
            f,
            {
                "Content-Security-Policy": csp,
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-cache",
            },
        )

    return handler


async def _file(request: web.Request) -> web.StreamResponse:
    """``/player/vendor/...`` (the players, their licenses) or ``/player/NAME`` (static/)."""
    name = request.match_info["name"]
    path = name if name.startswith("vendor/") else f"static/{name}"
    page = path.startswith("static/") and name.endswith(".html")  # only with its CSP, above
    f = None if page else request.app[FILES].get(path)
    if f is None:
        return http.error_response(404, "no such file")
    return await _send(request, f)


async def _catalog(request: web.Request) -> web.StreamResponse:
    body = listing(request.app[STATE].current, request.app[CHANNELS])
    return web.json_response(body, headers=http.cache_headers(http.NO_STORE))


async def _title(request: web.Request) -> web.StreamResponse:
    kind, name = request.match_info["kind"], request.match_info["name"]
    body = title(request.app[STATE].current, request.app[CHANNELS], kind, name)
    if body is None:
        return http.error_response(404, f"no {'channel' if kind == 'live' else 'asset'} {name!r}")
    return web.json_response(body, headers=http.cache_headers(http.NO_STORE))


async def _status(request: web.Request) -> web.StreamResponse:
    return web.json_response(overview(request.app), headers=http.cache_headers(http.NO_STORE))


def setup_player(app: web.Application) -> None:
    """The page's routes (before the catch-all stream route)."""
    app[FILES] = Files()
    index = _page("index.html")
    app.router.add_get("/", index)
    app.router.add_get("/player", index)
    app.router.add_get("/status", _page("status.html"))
    app.router.add_get(PREFIX + "catalog.json", _catalog)
    app.router.add_get(PREFIX + "status.json", _status)
    app.router.add_get(PREFIX + "titles/{kind:vod|live}/{name}.json", _title)
    app.router.add_get(PREFIX + "{name:.+}", _file)
