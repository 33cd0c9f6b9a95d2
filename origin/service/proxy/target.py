"""The URLs the manifest proxy is asked to fetch: parsed strictly, hosts normalized for matching."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from yarl import URL

from origin.service.addresses import parse_address

MAX_URL_LENGTH = 4096
DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


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
    if parts.scheme and parts.scheme.lower() not in DEFAULT_PORTS:
        raise ProxyError(status, f"{what} scheme must be http or https")
    if not parts.scheme or not parts.netloc or url.scheme not in DEFAULT_PORTS:
        raise ProxyError(status, f"{what} must be an absolute http(s) URL")
    if "@" in parts.netloc or url.user is not None or url.password is not None:
        raise ProxyError(status, f"{what} must not carry credentials (user@host)")
    if not url.raw_host or port is None:
        raise invalid
    host = normal_host(url.raw_host)
    if host is None:
        raise invalid
    return Target(url.with_fragment(None), url.scheme, host, port)


def normal_host(host: str) -> str | None:
    """A host name or IP literal in the form URLs are compared in, or None if it is not one."""
    h = host.strip().lower().rstrip(".")
    ip = parse_address(h)
    if ip is not None:
        return str(ip)
    try:
        h = h.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if not h or len(h) > 253 or not all(_LABEL.fullmatch(label) for label in h.split(".")):
        return None
    return h
