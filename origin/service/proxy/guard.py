"""The manifest proxy's guard (SSRF): the host allow-list, and which addresses may be dialled.

Multicast/unspecified never; link-local (cloud metadata) only via ``allow_addresses``;
private/loopback/reserved only via ``allow_addresses``, ``allow_private``, or when the URL names
that IP literally and it is listed. IPv4-mapped and NAT64 addresses are judged by the IPv4 address
they reach.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from origin.service.addresses import IPAddress, parse_address, unmapped
from origin.service.proxy.settings import ProxyConfig
from origin.service.proxy.target import ProxyError, Target

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _unwrap(addr: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped or NAT64 IPv6 address really reaches."""
    real = unmapped(addr)
    if isinstance(real, ipaddress.IPv6Address) and real in _NAT64:
        return ipaddress.IPv4Address(int(real) & 0xFFFFFFFF)
    return real


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
    literal = parse_address(target.host)
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
        ip = parse_address(str(info[4][0]).partition("%")[0])
        if ip is not None and ip not in found:
            found.append(ip)
    # Only vetted addresses are ever connected to, so a mixed answer is filtered, not refused.
    vetted = [a for a in found if address_allowed(cfg, a)]
    if not vetted:
        raise ProxyError(
            403, f"upstream host {target.host} resolves to an address that is not allowed"
        )
    return vetted
