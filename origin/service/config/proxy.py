"""The ``[proxy]`` table of the config, read into a ``ProxyConfig``."""

from __future__ import annotations

import re
from typing import Any

from origin.service.addresses import IPNetwork, parse_address, parse_network
from origin.service.config.check import Checker
from origin.service.proxy.settings import HostRule, ProxyConfig
from origin.service.proxy.target import normal_host

_FIELDS = frozenset(ProxyConfig.__dataclass_fields__)
_TOKEN_PARAM = re.compile(r"[A-Za-z0-9._~-]{1,64}")


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
        if parse_address(host) is None:
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
    norm = normal_host(host)
    if norm is None:
        return "not a host name or IP address"
    ip = parse_address(norm)
    if ip is not None and (ip.is_unspecified or ip.is_multicast):
        return "an unspecified or multicast address is never a valid upstream"
    return HostRule(norm, port)


def parse_proxy_config(table: Any, *, where: str) -> tuple[ProxyConfig, list[str]]:
    """The ``[proxy]`` table as a ProxyConfig and its problems (``where.field: what``)."""
    d = ProxyConfig()
    c = Checker()
    t = c.table(table, where)
    if t is None:
        return d, c.problems
    c.unknown(t, _FIELDS, where)

    def host_rules(name: str) -> list[HostRule]:
        rules: list[HostRule] = []
        for i, entry in enumerate(c.typed(t, name, where, list, [])):
            rule = _host_rule(entry) if isinstance(entry, str) else "must be a string"
            if isinstance(rule, str):
                c.bad(f"{where}.{name}[{i}]", rule)
            else:
                rules.append(rule)
        return rules

    enabled = c.typed(t, "enabled", where, bool, d.enabled)
    rules = host_rules("allow_hosts")
    token_hosts = host_rules("token_hosts")
    nets: list[IPNetwork] = []
    for i, entry in enumerate(c.typed(t, "allow_addresses", where, list, [])):
        net = parse_network(entry.strip() if isinstance(entry, str) else entry, strict=False)
        if net is None:
            c.bad(f"{where}.allow_addresses[{i}]", "must be an IP address or CIDR like 10.0.0.0/8")
        else:
            nets.append(net)
    token_param = c.typed(t, "token_param", where, str, d.token_param)
    if not _TOKEN_PARAM.fullmatch(token_param):
        c.bad(f"{where}.token_param", "must be 1-64 characters of A-Z a-z 0-9 . _ ~ -")
    max_bytes = c.typed(t, "max_bytes", where, int, d.max_bytes)
    if not 1024 <= max_bytes <= 64 * 1024 * 1024:
        c.bad(f"{where}.max_bytes", f"must be 1024..67108864, got {max_bytes}")
    seconds: dict[str, float] = {}
    for name in ("timeout", "connect_timeout"):
        seconds[name] = float(c.typed(t, name, where, float, getattr(d, name)))
        if not 0 < seconds[name] <= 60:
            c.bad(f"{where}.{name}", f"must be > 0 and <= 60 seconds, got {seconds[name]}")
    if enabled and not t.get("allow_hosts"):
        c.bad(f"{where}.allow_hosts", "an enabled proxy needs at least one allowed upstream host")
    cfg = ProxyConfig(
        enabled=enabled,
        allow_hosts=tuple(rules),
        allow_addresses=tuple(nets),
        allow_private=c.typed(t, "allow_private", where, bool, d.allow_private),
        token_hosts=tuple(token_hosts),
        token_param=token_param,
        segments_carry_token=c.typed(
            t, "segments_carry_token", where, bool, d.segments_carry_token
        ),
        max_bytes=max_bytes,
        timeout=seconds["timeout"],
        connect_timeout=min(seconds["connect_timeout"], seconds["timeout"]),
    )
    return cfg, c.problems
