"""Authorizing requests: where a token comes from, who the client is, and what to answer.

Tokens arrive as ``Authorization: Bearer <token>`` (hls.js ``xhrSetup``, Shaka request filters),
or in the query as ``token=`` (the Safari convention of the AMS blog) or ``MtsHlsUriToken=``
(Alibaba). A token that came in a manifest's query is propagated by the caller into every URL
that manifest writes, under the same parameter name, so native players that cannot add headers
(Safari/AVPlayer, ExoPlayer, ffmpeg) carry it all the way to the key service.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from origin.service import http
from origin.service.addresses import IPAddress, IPNetwork, in_networks, parse_address, unmapped
from origin.service.policy import Decision, Policy, authorize

QUERY_PARAMS = ("token", "MtsHlsUriToken")
NIL_KID = uuid.UUID(int=0)


def _parse_ip(text: str) -> IPAddress | None:
    """An address as a peer or X-Forwarded-For writes it. Cached, as peers repeat and parsing
    one costs as much as the rest of an open key request; only strings as short as an address
    can be, so a client's long X-Forwarded-For entries cannot fill the cache (4096 x 64 bytes)."""
    return _parse_short_ip(text) if len(text) <= _MAX_ADDRESS_TEXT else _parse_any_ip(text)


_MAX_ADDRESS_TEXT = 64  # "[" IPv6 with a zone "]:" port is shorter


def _parse_any_ip(text: str) -> IPAddress | None:
    t = text.strip()
    if t.startswith("["):  # [v6] or [v6]:port
        end = t.find("]")
        if end < 0 or (t[end + 1 :] and not t[end + 1 :].startswith(":")):
            return None
        t = t[1:end]
    elif t.count(":") == 1:  # v4:port
        t = t.partition(":")[0]
    addr = parse_address(t)
    return None if addr is None else unmapped(addr)


_parse_short_ip = functools.lru_cache(maxsize=4096)(_parse_any_ip)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[IPNetwork]
) -> IPAddress | None:
    """The client's address: the direct peer, or, when the peer is a trusted proxy, the rightmost
    X-Forwarded-For entry that is not itself a trusted proxy.

    Only entries appended by trusted proxies are believed; anything further left could have been
    written by the client. Several X-Forwarded-For headers must be joined with "," in order. An
    entry that does not parse where an address must be gives None (unknown), which no address
    restriction allows.
    """
    addr = _parse_ip(peer) if peer else None
    if addr is None or not forwarded_for or not forwarded_for.strip():
        return addr
    if not in_networks(trusted_proxies, addr):
        return addr
    for entry in reversed(forwarded_for.split(",")):
        hop = _parse_ip(entry)
        if hop is None:
            return None
        addr = hop
        if not in_networks(trusted_proxies, hop):
            return hop
    return addr  # every hop is a trusted proxy: the furthest one is the client


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (``Bearer=<token>`` too, as Azure
    Media Player sends it); None for a missing header or another scheme."""
    if not authorization:
        return None
    scheme, token = authorization[:6], authorization[6:]
    if scheme.lower() != "bearer" or not token or token[0] not in " =":
        return None
    return token[1:].strip() or None


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    param: str | None  # the query parameter it came in, None for a header

    def query(self) -> str:
        """The encoded ``name=value`` that carries it on in URLs ('' for header tokens)."""
        return urlencode({self.param: self.value}) if self.param else ""


def request_token(request: web.Request) -> Token | None:
    header = bearer_token(request.headers.get("Authorization"))
    if header:
        return Token(header, None)
    for name in QUERY_PARAMS:
        value = request.query.get(name)
        if value:
            return Token(value, name)
    return None


def decide(
    request: web.Request,
    policy: Policy,
    kid: uuid.UUID | None,
    trusted_proxies: Sequence[IPNetwork],
) -> Decision:
    token = request_token(request)
    forwarded = ",".join(request.headers.getall("X-Forwarded-For", [])) or None
    return authorize(
        policy,
        kid=kid or NIL_KID,
        token=token.value if token else None,
        client_ip=client_ip(request.remote, forwarded, trusted_proxies),
        now=time.time(),
    )


def refusal_response(decision: Decision) -> web.Response:
    headers = {"WWW-Authenticate": decision.www_authenticate} if decision.www_authenticate else None
    prefix = "unauthorized" if decision.status == 401 else "forbidden"
    return http.error_response(decision.status, f"{prefix}: {decision.reason}", headers)
