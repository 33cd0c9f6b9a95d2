"""Fetching an upstream playlist: pinned to vetted addresses, redirects re-vetted, bounded.

The request goes to the vetted IP itself (Host header and TLS SNI/verification keep the name) and
the connector's resolver refuses every lookup, so no second DNS answer (rebinding) is used.
Bounded time (504), size (502), ``Accept-Encoding: identity``, only a 200 whose body starts with
``#EXTM3U``; no cookies kept, no client headers forwarded, no env proxies.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from origin.service.addresses import IPAddress
from origin.service.proxy.guard import vet
from origin.service.proxy.settings import ProxyConfig
from origin.service.proxy.target import DEFAULT_PORTS, ProxyError, Target, parse_target

MAX_REDIRECTS = 3
USER_AGENT = "origin-manifest-proxy/0.1"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class _RefusingResolver(AbstractResolver):
    """Requests name a vetted IP; a host name reaching the connector is a bug, not a lookup."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        raise OSError(f"manifest proxy never resolves through the connector ({host})")

    async def close(self) -> None:
        return None


def new_session(
    cfg: ProxyConfig, *, ssl_context: ssl.SSLContext | None = None
) -> aiohttp.ClientSession:
    """The shared client; ``ssl_context`` replaces the system trust store (tests, private CAs)."""
    connector = aiohttp.TCPConnector(
        limit=64,
        limit_per_host=16,
        use_dns_cache=False,
        resolver=_RefusingResolver(),
        ssl=ssl_context if ssl_context is not None else True,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),  # viewers must not share upstream cookies
        auto_decompress=False,
        trust_env=False,  # an HTTP(S)_PROXY would connect by name, around the vetting
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=cfg.connect_timeout),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    )


@dataclass(slots=True)
class Upstream:
    url: str  # the final URL, after redirects: relative URIs resolve against it
    text: str


def _pinned(target: Target, addr: IPAddress) -> tuple[URL, dict[str, str]]:
    url = target.url.with_host(str(addr))  # keeps scheme, port, path and query as they are
    host = f"[{target.host}]" if ":" in target.host else target.host
    if target.url.explicit_port is not None and target.port != DEFAULT_PORTS[target.scheme]:
        host = f"{host}:{target.port}"
    return url, {"Host": host}


async def _body(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    too_large = ProxyError(502, f"upstream playlist is larger than {limit} bytes")
    if resp.content_length is not None and resp.content_length > limit:
        raise too_large
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        buf += chunk
        if len(buf) > limit:
            raise too_large
    return bytes(buf)


async def _get_once(
    session: aiohttp.ClientSession, cfg: ProxyConfig, target: Target, addrs: list[IPAddress]
) -> tuple[int, str | None, bytes]:
    """One GET (no redirects) to the first vetted address that accepts a connection."""
    last: Exception | None = None
    for addr in addrs:
        url, headers = _pinned(target, addr)
        try:
            async with session.get(
                url,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=cfg.connect_timeout),
                server_hostname=target.host if target.scheme == "https" else None,
            ) as resp:
                if resp.status in _REDIRECTS:
                    return resp.status, resp.headers.get("Location"), b""
                if resp.status != 200:
                    return resp.status, None, b""
                encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise ProxyError(502, "upstream sent a compressed playlist; asked for identity")
                return 200, None, await _body(resp, cfg.max_bytes)
        except aiohttp.ClientConnectorError as e:
            last = e  # try the next vetted address
    raise ProxyError(502, f"cannot connect to upstream host {target.host}") from last


async def fetch_playlist(
    session: aiohttp.ClientSession, cfg: ProxyConfig, target: Target
) -> Upstream:
    """GET the playlist behind ``target``: vetted, pinned, redirects re-vetted, bounded."""
    try:
        async with asyncio.timeout(cfg.timeout):
            for hop in range(MAX_REDIRECTS + 1):
                addrs = await vet(cfg, target, redirected=hop > 0)
                status, location, body = await _get_once(session, cfg, target, addrs)
                if status in _REDIRECTS:
                    if location is None:
                        raise ProxyError(502, f"upstream answered {status} without a Location")
                    nxt = urljoin(str(target.url), location)
                    target = parse_target(nxt, what="upstream redirect", status=403)
                    continue
                if status != 200:
                    raise ProxyError(502, f"upstream answered {status}")
                return Upstream(str(target.url), _playlist_text(body))
            raise ProxyError(502, f"upstream redirected more than {MAX_REDIRECTS} times")
    except TimeoutError:
        raise ProxyError(504, "upstream did not answer in time") from None
    except aiohttp.ClientError as e:
        raise ProxyError(502, f"upstream request failed ({type(e).__name__})") from None


def _playlist_text(body: bytes) -> str:
    not_playlist = ProxyError(502, "upstream response is not an HLS playlist")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise not_playlist from None
    text = text.removeprefix("\ufeff")
    if not text.lstrip().startswith("#EXTM3U"):
        raise not_playlist
    return text
