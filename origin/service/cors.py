"""CORS on every route, errors included (hls.js, dash.js and Shaka fetch with XHR/fetch).

Default: ``Access-Control-Allow-Origin: *``. With an allow-list the request's Origin is reflected
when listed, with ``Access-Control-Allow-Credentials: true`` and ``Vary: Origin`` (a wildcard is
not allowed with credentials, and caches must key on Origin).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from origin.service import http

ALLOW_METHODS = "GET, HEAD, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Range, Content-Type, If-None-Match, If-Range"
# Date: dash.js syncs its clock to a live Smooth manifest's Date header (Smooth has no UTCTiming).
EXPOSE_HEADERS = "Content-Length, Content-Range, ETag, Accept-Ranges, WWW-Authenticate, Date"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Cors:
    def __init__(self, origins: Sequence[str], max_age: int) -> None:
        self.origins = frozenset(origins)
        self.max_age = max_age
        self._wildcard = {
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Expose-Headers": EXPOSE_HEADERS,
        }

    def headers(self, origin: str | None) -> dict[str, str]:
        if not self.origins:
            return dict(self._wildcard)
        h = {"Vary": "Origin"}
        if origin is not None and origin in self.origins:
            h["Access-Control-Allow-Origin"] = origin
            h["Access-Control-Allow-Credentials"] = "true"
            h["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        return h

    def preflight(self, request: web.Request) -> web.Response:
        h = self.headers(request.headers.get("Origin"))
        if "Access-Control-Allow-Origin" in h:
            h["Access-Control-Allow-Methods"] = ALLOW_METHODS
            h["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            h["Access-Control-Max-Age"] = str(self.max_age)
        h.pop("Access-Control-Expose-Headers", None)
        h.update(http.cache_headers(http.NO_STORE))
        return web.Response(status=204, headers=h)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return self.preflight(request)
        try:
            response = await handler(request)
        except web.HTTPException as e:
            response = e
        if not self.origins:  # the common case, on every response: no Vary to merge
            response.headers.update(self._wildcard)
            if isinstance(response, web.HTTPException):
                raise response
            return response
        for k, v in self.headers(request.headers.get("Origin")).items():
            if k == "Vary" and "Vary" in response.headers:
                if "origin" not in response.headers["Vary"].lower():
                    response.headers["Vary"] += ", Origin"
                continue
            response.headers[k] = v
        if isinstance(response, web.HTTPException):
            raise response
        return response
