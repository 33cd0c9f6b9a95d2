"""Manifest proxy: token propagation for HLS origins that cannot do it themselves (seed 003).

``GET /proxy/manifest?playbackUrl=<absolute upstream URL>&token=<token>`` fetches the upstream
playlist and rewrites it:

- master playlist: every variant, ``EXT-X-MEDIA``, I-frame (and image) playlist URI becomes a
  relative link back to this route with the absolute upstream child URL and the same token, so the
  native player (Safari) asks us for every media playlist too;
- media playlist: the ``EXT-X-KEY`` URI (and ``EXT-X-SESSION-KEY`` in a master) gets the token as a
  query parameter (``token_param``; AMS key delivery takes ``token=``, Alibaba ``MtsHlsUriToken=``);
  segments, ``EXT-X-MAP``, parts and preload hints become absolute upstream URLs (with the token
  only when ``segments_carry_token``), so media bytes never pass through us. The token is only
  written into URLs whose host is on ``allow_hosts`` or ``token_hosts`` (e.g. a separate key
  service): a playlist must not be able to send viewers' tokens anywhere it likes.

The rewrite works line by line on the upstream text and only touches URIs: ``m3u8`` parses (to
validate and classify) but its ``dumps`` is not used because it drops unknown tags (and
``EXT-X-MEDIA-SEQUENCE:0``), reorders tags and reformats dates.

The route fetches URLs named by its caller, so it is an SSRF surface. Guards, in order:

1. ``playbackUrl`` must be an absolute http(s) URL without userinfo (400);
2. its host (and port: a port-less entry means the scheme's default port) must be on
   ``allow_hosts`` exactly (403);
3. the host is resolved here and every address is vetted: multicast/unspecified never; link-local
   (cloud metadata) only via ``allow_addresses``; private/loopback/reserved only via
   ``allow_addresses``, ``allow_private``, or when the URL names that IP literally and it is listed
   (403 when no address survives);
4. the request goes to the vetted IP itself (Host header and TLS SNI/verification keep the name),
   and the connector's resolver refuses every lookup, so no second DNS answer (rebinding) is used;
5. redirects are followed by hand, at most 3, each hop through 1-4 again (403 when off the list);
6. bounded time (total and connect: 504), size (streamed, aborted past ``max_bytes``: 502),
   ``Accept-Encoding: identity`` (no decompression bombs), only a 200 whose body starts with
   ``#EXTM3U`` (else 502); no cookies kept, no client headers forwarded, no env proxies.

Tokens and upstream URLs (which may carry their own credentials) never reach logs or error text.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import MultiMapping
from yarl import URL

from origin.service import http
from origin.service.logs import clean
from origin.service.playlist_rewrite import (
    RewriteError,
    Rewriter,
    proxy_link,
    rewrite_playlist,
)

log = logging.getLogger("origin.proxy")

ROUTE = "/proxy/manifest"
MAX_REDIRECTS = 3
MAX_URL_LENGTH = 4096
MAX_TOKEN_LENGTH = 4096
# Bigger playlists are parsed and rewritten in a thread: m3u8 needs ~0.7 s per MiB.
INLINE_REWRITE_BYTES = 64 * 1024
USER_AGENT = "origin-manifest-proxy/0.1"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True, slots=True)
class HostRule:
    host: str  # lower-case IDNA name without trailing dot, or a normalized IP literal
    port: int | None  # None: the scheme's default port only

    def matches(self, host: str, port: int, scheme: str) -> bool:
        want = self.port if self.port is not None else _DEFAULT_PORTS[scheme]
        return host == self.host and port == want


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    enabled: bool = False
    allow_hosts: tuple[HostRule, ...] = ()
    allow_addresses: tuple[IPNetwork, ...] = ()
    allow_private: bool = False
    token_hosts: tuple[HostRule, ...] = ()  # beyond allow_hosts: where the token may go (keys)
    token_param: str = "token"
    segments_carry_token: bool = False
    max_bytes: int = 2 * 1024 * 1024
    timeout: float = 5.0
    connect_timeout: float = 2.0

    def host_allowed(self, host: str, port: int, scheme: str) -> bool:
        return any(r.matches(host, port, scheme) for r in self.allow_hosts)

    def token_allowed(self, url: str) -> bool:
        """Whether the token may be written into ``url`` (a key or segment URL for the player)."""
        try:
            t = parse_target(url)
        except ProxyError:
            return False
        rules = self.allow_hosts + self.token_hosts
        return any(r.matches(t.host, t.port, t.scheme) for r in rules)


_FIELDS = frozenset(f for f in ProxyConfig.__dataclass_fields__)
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_TOKEN_PARAM = re.compile(r"[A-Za-z0-9._~-]{1,64}")


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _normal_host(host: str) -> str | None:
    """A host name or IP literal in the form URLs are compared in, or None if it is not one."""
    h = host.strip().lower().rstrip(".")
    ip = _ip(h)
    if ip is not None:
        return str(ip)
    try:
        h = h.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if not h or len(h) > 253 or not all(_LABEL.fullmatch(label) for label in h.split(".")):
        return None
    return h


def _host_rule(entry: str) -> HostRule | str:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; a str result is the problem."""
    text = entry.strip()
    if "*" in text:
        return "wildcards are not supported: list each host"
    if "/" in text or "@" in text:
        return "must be a host or host:port, not a URL"
    port_text = ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return "bad bracketed IPv6 address"
        port_text = rest[1:]
        if _ip(host) is None:
            return "bad bracketed IPv6 address"
    elif text.count(":") > 1:
        return "write IPv6 addresses in brackets: [::1]:8080"
    else:
        host, _, port_text = text.partition(":")
    port = None
    if port_text or text.endswith(":"):
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            return "port must be 1..65535"
        port = int(port_text)
    norm = _normal_host(host)
    if norm is None:
        return "not a host name or IP address"
    ip = _ip(norm)
    if ip is not None and (ip.is_unspecified or ip.is_multicast):
        return "an unspecified or multicast address is never a valid upstream"
    return HostRule(norm, port)


def parse_proxy_config(table: Any, *, where: str) -> tuple[ProxyConfig, list[str]]:
    """The ``[proxy]`` table as a ProxyConfig and its problems (``where.field: what``)."""
    d = ProxyConfig()
    problems: list[str] = []

    def bad(name: str, what: str) -> None:
        problems.append(f"{where}.{name}: {what}")

    if not isinstance(table, dict):
        return d, [f"{where}: must be a table"]
    for key in table:
        if key not in _FIELDS:
            bad(key, "unknown field")

    def get(name: str, kind: type, default: Any) -> Any:
        if name not in table:
            return default
        v = table[name]
        ok = isinstance(v, kind) and not (kind is not bool and isinstance(v, bool))
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            ok = True
        if not ok:
            bad(name, f"must be {kind.__name__}, got {type(v).__name__}")
            return default
        return v

    def host_rules(name: str) -> list[HostRule]:
        rules: list[HostRule] = []
        for i, entry in enumerate(get(name, list, [])):
            rule = _host_rule(entry) if isinstance(entry, str) else "must be a string"
            if isinstance(rule, str):
                bad(f"{name}[{i}]", rule)
            else:
                rules.append(rule)
        return rules

    enabled = get("enabled", bool, d.enabled)
    rules = host_rules("allow_hosts")
    token_hosts = host_rules("token_hosts")
    nets: list[IPNetwork] = []
    for i, entry in enumerate(get("allow_addresses", list, [])):
        try:
            nets.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            bad(f"allow_addresses[{i}]", "must be an IP address or CIDR like 10.0.0.0/8")
    token_param = get("token_param", str, d.token_param)
    if not _TOKEN_PARAM.fullmatch(token_param):
        bad("token_param", "must be 1-64 characters of A-Z a-z 0-9 . _ ~ -")
    max_bytes = get("max_bytes", int, d.max_bytes)
    if not 1024 <= max_bytes <= 64 * 1024 * 1024:
        bad("max_bytes", f"must be 1024..67108864, got {max_bytes}")
    timeout = float(get("timeout", float, d.timeout))
    if not 0 < timeout <= 60:
        bad("timeout", f"must be > 0 and <= 60 seconds, got {timeout}")
    connect_timeout = float(get("connect_timeout", float, d.connect_timeout))
    if not 0 < connect_timeout <= 60:
        bad("connect_timeout", f"must be > 0 and <= 60 seconds, got {connect_timeout}")
    if enabled and not table.get("allow_hosts"):
        bad("allow_hosts", "an enabled proxy needs at least one allowed upstream host")
    cfg = ProxyConfig(
        enabled=enabled,
        allow_hosts=tuple(rules),
        allow_addresses=tuple(nets),
        allow_private=get("allow_private", bool, d.allow_private),
        token_hosts=tuple(token_hosts),
        token_param=token_param,
        segments_carry_token=get("segments_carry_token", bool, d.segments_carry_token),
        max_bytes=max_bytes,
        timeout=timeout,
        connect_timeout=min(connect_timeout, timeout),
    )
    return cfg, problems


# ---------------------------------------------------------------------------------------------
# Target vetting


class ProxyError(Exception):
    """A refusal or upstream failure with the status and the (token-free) text the client sees."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Target:
    url: URL  # absolute, no fragment, no userinfo
    scheme: str
    host: str  # normalized as in HostRule
    port: int


_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


def parse_target(text: str, *, what: str = "playbackUrl", status: int = 400) -> Target:
    """An absolute http(s) URL without userinfo, or ProxyError(status)."""
    if len(text) > MAX_URL_LENGTH:
        raise ProxyError(status, f"{what} is too long")
    invalid = ProxyError(status, f"{what} is not a valid absolute http(s) URL")
    # Control characters, spaces and backslashes are where URL parsers disagree.
    if _BAD_URL_CHARS.search(text):
        raise invalid
    try:
        parts = urlsplit(text)
        url = URL(text)
        port = url.port
    except ValueError:
        raise invalid from None
    if parts.scheme and parts.scheme.lower() not in _DEFAULT_PORTS:
        raise ProxyError(status, f"{what} scheme must be http or https")
    if not parts.scheme or not parts.netloc or url.scheme not in _DEFAULT_PORTS:
        raise ProxyError(status, f"{what} must be an absolute http(s) URL")
    if "@" in parts.netloc or url.user is not None or url.password is not None:
        raise ProxyError(status, f"{what} must not carry credentials (user@host)")
    if not url.raw_host or port is None:
        raise invalid
    host = _normal_host(url.raw_host)
    if host is None:
        raise invalid
    return Target(url.with_fragment(None), url.scheme, host, port)


def _unwrap(addr: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped or NAT64 IPv6 address really reaches."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr in _NAT64:
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr


def address_allowed(cfg: ProxyConfig, addr: IPAddress, *, listed_literal: bool = False) -> bool:
    """Whether we may connect to ``addr``; ``listed_literal``: the URL names it and it is listed."""
    real = _unwrap(addr)
    if real.is_unspecified or real.is_multicast:
        return False  # 0.0.0.0 connects to this very host
    if listed_literal or any(real in net or addr in net for net in cfg.allow_addresses):
        return True
    if real.is_link_local:
        return False  # 169.254.169.254 is the cloud metadata service: only by explicit address
    return real.is_global or cfg.allow_private


async def vet(cfg: ProxyConfig, target: Target, *, redirected: bool = False) -> list[IPAddress]:
    """The addresses we may connect to for ``target``, or ProxyError(403/502)."""
    if not cfg.host_allowed(target.host, target.port, target.scheme):
        if redirected:
            raise ProxyError(
                403, f"upstream redirected to a host not on the allow-list: {target.host}"
            )
        raise ProxyError(403, f"host not on the proxy allow-list: {target.host}")
    literal = _ip(target.host)
    if literal is not None:
        if not address_allowed(cfg, literal, listed_literal=True):
            raise ProxyError(403, f"address not allowed for upstream host {target.host}")
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError):
        raise ProxyError(502, f"cannot resolve upstream host {target.host}") from None
    found: list[IPAddress] = []
    for info in infos:
        ip = _ip(str(info[4][0]).partition("%")[0])
        if ip is not None and ip not in found:
            found.append(ip)
    # Only vetted addresses are ever connected to, so a mixed answer is filtered, not refused.
    vetted = [a for a in found if address_allowed(cfg, a)]
    if not vetted:
        raise ProxyError(
            403, f"upstream host {target.host} resolves to an address that is not allowed"
        )
    return vetted


# ---------------------------------------------------------------------------------------------
# Fetching


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
    if target.url.explicit_port is not None and target.port != _DEFAULT_PORTS[target.scheme]:
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


# ---------------------------------------------------------------------------------------------
# The route


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
        headers={"Cache-Control": "private, no-store"},
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
