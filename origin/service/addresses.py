"""IP addresses and networks as the config and requests write them, parsed in one place.

Used by the policies' IP restriction, the trusted proxies of ``X-Forwarded-For`` and the manifest
proxy's address guard.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


def parse_address(text: str) -> IPAddress | None:
    """An IPv4 or IPv6 address, or None if ``text`` is not one."""
    try:
        return ip_address(text)
    except ValueError:
        return None


def parse_network(value: object, *, strict: bool) -> IPNetwork | None:
    """A network (or a single address as /32 or /128), or None. Only strings count:
    ``ip_network(5)`` would quietly mean 0.0.0.5. ``strict`` refuses host bits (10.0.0.1/8)."""
    if not isinstance(value, str):
        return None
    try:
        return ip_network(value, strict=strict)
    except ValueError:
        return None


def unmapped(addr: IPAddress) -> IPAddress:
    """The IPv4 address behind an IPv4-mapped IPv6 one (``::ffff:a.b.c.d``, as a dual-stack
    socket reports IPv4 peers), so that it matches IPv4 networks; else ``addr``."""
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def in_networks(networks: Sequence[IPNetwork], address: IPAddress | None) -> bool:
    return address is not None and any(address in net for net in networks)
