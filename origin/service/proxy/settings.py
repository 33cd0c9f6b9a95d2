"""What the manifest proxy may fetch and where the viewer's token may go (the ``[proxy]`` model)."""

from __future__ import annotations

from dataclasses import dataclass

from origin.service.addresses import IPNetwork
from origin.service.proxy.target import DEFAULT_PORTS, ProxyError, parse_target


@dataclass(frozen=True, slots=True)
class HostRule:
    host: str  # lower-case IDNA name without trailing dot, or a normalized IP literal
    port: int | None  # None: the scheme's default port only

    def matches(self, host: str, port: int, scheme: str) -> bool:
        want = self.port if self.port is not None else DEFAULT_PORTS[scheme]
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
