"""A misbehaving upstream for the proxy tests: redirects, slow, huge, not a playlist (127.0.0.1)."""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

from tests.support.server import SAMPLE_KEY, SAMPLE_KID

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN = "tok.SECRET-4711_x~y"
MAX_BYTES = 65536
FORMATS = ["m3u8-aapl", "m3u8-cmaf"]

RICH_MASTER = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-CONTENT-STEERING:SERVER-URI="/steer.json",PATHWAY-ID="a"
#EXT-X-SESSION-DATA:DATA-ID="com.example.title",VALUE="x,URI="
#EXT-X-SESSION-KEY:METHOD=AES-128,URI="/keys/s?kid=1"
#EXT-FOO-VENDOR:whatever,URI="untouched.bin"
#EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS="avc1.4d401e,mp4a.40.2",AUDIO="aud"
video/low.m3u8?x=1
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="a,URI=",DEFAULT=YES,URI="audio/en.m3u8"
# a plain comment
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100,URI="video/iframes.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=2000,CODECS="avc1.4d401e,mp4a.40.2",AUDIO="aud"
https://cdn.example/video/high.m3u8
"""

RICH_MEDIA = """#EXTM3U\r
#EXT-X-VERSION:6\r
#EXT-X-ALLOW-CACHE:NO\r
#EXT-X-TARGETDURATION:4\r
#EXT-X-MEDIA-SEQUENCE:0\r
#EXT-X-PLAYLIST-TYPE:VOD\r
#EXT-X-MAP:URI="init.mp4",BYTERANGE="700@0"\r
#EXT-X-KEY:METHOD=AES-128,URI="../keys/k?kid=7&token=stale",IV=0x00000000000000000000000000000001\r
#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:00Z\r
#EXT-VENDOR-CUE:OUT=4\r
#EXTINF:4.000,no-desc\r
seg0.m4s\r
#EXT-X-DISCONTINUITY\r
#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://asset-7",KEYFORMAT="com.apple.streamingkeydelivery"\r
#EXT-X-BYTERANGE:100@700\r
#EXTINF:4.000,\r
/abs/seg1.m4s?sig=abc\r
#EXT-X-KEY:METHOD=AES-128,URI="https://keys.elsewhere.example/k?kid=9"\r
#EXTINF:2.000,\r
http://other.example/seg2.m4s\r
#EXT-X-ENDLIST\r
"""


@dataclass
class Helper:
    base: str
    hits: list[str] = field(default_factory=list)  # path?query of every request, in order


def _helper_app(helper: Helper, upstream: str) -> web.Application:
    routes = web.RouteTableDef()
    up_port = urlsplit(upstream).port

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        helper.hits.append(request.raw_path)
        return await handler(request)

    def m3u8_text(text: str) -> web.Response:
        return web.Response(text=text, content_type="application/vnd.apple.mpegurl")

    @routes.get("/master.m3u8")
    async def master(request: web.Request) -> web.Response:
        return m3u8_text(RICH_MASTER)

    @routes.get("/echo-host.m3u8")
    async def echo_host(request: web.Request) -> web.Response:
        return m3u8_text(f"#EXTM3U\n#X-HOST:{request.headers.get('Host')}\n")

    @routes.get("/media.m3u8")
    async def media(request: web.Request) -> web.Response:
        return m3u8_text(RICH_MEDIA)

    redirects = {
        "off": "http://127.0.0.1:1/x.m3u8",  # a port that is not listed: refused, never dialled
        "offhost": "http://origin.invalid/x.m3u8",
        "file": "file:///etc/passwd",
        "creds": f"http://user:pw@127.0.0.1:{up_port}/x.m3u8",
        "loop": "/redirect/loop",
        "upstream": f"{upstream}/sample.ism/manifest(format=m3u8-aapl)",
    }

    @routes.get("/redirect/{name}")
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(redirects[request.match_info["name"]])

    @routes.get("/chain/{n}")
    async def chain(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        raise web.HTTPFound(f"/chain/{n - 1}" if n > 1 else "/media.m3u8")  # n redirects

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(6)
        return m3u8_text("#EXTM3U\n")

    @routes.get("/big")
    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()  # chunked: no Content-Length to refuse up front
        resp.content_type = "application/vnd.apple.mpegurl"
        await resp.prepare(request)
        await resp.write(b"#EXTM3U\n")
        for _ in range(64):
            await resp.write(b"#" + b"x" * 4095)
        return resp

    @routes.get("/big-declared")
    async def big_declared(request: web.Request) -> web.Response:
        return m3u8_text("#EXTM3U\n" + "#" * (4 * MAX_BYTES))

    @routes.get("/html")
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>not a playlist</html>", content_type="text/html")

    @routes.get("/missing")
    async def missing(request: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    @routes.get("/gzip")
    async def gz(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b"#EXTM3U\n"),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/vnd.apple.mpegurl"},
        )

    # An AMS-style origin whose key service insists on ?token=: the upstream sample behind it.
    @routes.get("/tokened/key")
    async def tokened_key(request: web.Request) -> web.Response:
        if request.query.get("token") != TOKEN or request.query.get("kid") != SAMPLE_KID:
            raise web.HTTPUnauthorized()
        return web.Response(body=SAMPLE_KEY, content_type="application/octet-stream")

    @routes.get("/tokened/{tail:.*}")
    async def tokened(request: web.Request) -> web.Response:
        url = upstream + request.raw_path.removeprefix("/tokened")
        async with (
            aiohttp.ClientSession() as s,
            s.get(URL(url, encoded=True)) as r,
        ):
            body = await r.read()
            return web.Response(status=r.status, body=body, content_type=r.content_type)

    app = web.Application(middlewares=[record])
    app.add_routes(routes)
    return app


@contextmanager
def run_helper(upstream: str) -> Iterator[Helper]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    helper = Helper("")

    async def start() -> web.AppRunner:
        runner = web.AppRunner(_helper_app(helper, upstream), access_log=None, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        helper.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return runner

    async def stop(runner: web.AppRunner) -> None:
        await runner.cleanup()
        # Handlers still running (/slow, whose client gave up) end here, not at interpreter exit.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    runner = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield helper
    finally:
        asyncio.run_coroutine_threadsafe(stop(runner), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
