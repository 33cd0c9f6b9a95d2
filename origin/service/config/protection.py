"""What assets and channels share: protection, delivery and authorization options, and the
segment duration, read and checked in one place.

``[[assets]]`` and ``[[channels]]`` take the same ``protection``/``key_id``/``key``/``key_file``/
``iv``/``dash``/``smooth``/``policy``/``require_token``/``token_segments`` fields with the same
meaning; the checks across tables (a key_id with one key and one policy, a policy that exists)
run over both, so a channel cannot reuse an asset's key_id with another key.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from origin.service.config.check import Checker
from origin.service.keytext import parse_iv, parse_key
from origin.service.policy import Policy

PROTECTIONS = ("clear", "aes-128")
# The delivery policy of a protected asset: per protocol, the schemes it may be streamed with
# (``hls = ["cbc", "cbcs"]``, ``dash = "cenc"``), the first the default when a URL names none;
# "clear" allows it unencrypted. Unset: HLS gets AES-128 ("cbc"), DASH and Smooth are blocked
# (AMS: a protocol not in a delivery policy is blocked; an asset with no delivery policy streams
# every protocol in the clear).
DELIVERIES = {
    "hls": ("clear", "cbc", "cenc", "cbcs"),
    "dash": ("clear", "cenc", "cbcs"),
    "smooth": ("clear", "cenc"),  # PIFF is cenc's
}
LIVE_DELIVERIES = ("clear", "cbc")
PROTECTION_FIELDS = frozenset(
    {"protection", "key_id", "key", "key_file", "iv", "hls", "dash", "smooth", "policy",
     "require_token", "token_segments"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Protection:
    protection: str = "clear"
    key_id: uuid.UUID | None = None
    key: bytes | None = field(default=None, repr=False)
    iv: bytes | None = None
    hls: tuple[str, ...] | None = None
    dash: tuple[str, ...] | None = None
    smooth: tuple[str, ...] | None = None
    policy: str | None = None  # the content key's authorization policy; None: open
    require_token: bool = False  # playlists/manifests need a valid token too
    token_segments: bool = False  # propagated tokens also go on segment URLs

    def fields(self) -> dict[str, Any]:
        """The options as keyword arguments for AssetConfig / ChannelConfig."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def parse_protection(
    c: Checker, t: dict[str, Any], where: str, base: Path, *, live: bool = False
) -> Protection:
    """The protection options of table ``t`` (located at ``where``); problems go to ``c``.
    ``live``: a channel's, whose delivery cannot be Common Encryption yet."""
    protection = c.typed(t, "protection", where, str, "clear")
    if protection not in PROTECTIONS:
        c.bad(f"{where}.protection", f"must be one of {', '.join(PROTECTIONS)}, got {protection!r}")
    key_id = None
    if "key_id" in t:
        try:
            key_id = uuid.UUID(str(t["key_id"]))
        except ValueError:
            c.bad(f"{where}.key_id", "must be a UUID")
    key = _key(c, t, where, base)
    iv = None
    if "iv" in t:
        iv = parse_iv(str(t["iv"]))
        if iv is None:
            c.bad(f"{where}.iv", "must be 0x followed by 32 hex digits")
    if protection == "aes-128":
        if key is None and "key" not in t and "key_file" not in t:
            c.bad(f"{where}.key", "protection aes-128 needs key or key_file")
        if key_id is None and "key_id" not in t:
            c.bad(f"{where}.key_id", "protection aes-128 needs key_id")
    if key is not None and key_id is None and "key_id" not in t:
        c.bad(f"{where}.key_id", "a key needs a key_id")
    delivery = {proto: _delivery(c, t, where, proto, live=live) for proto in DELIVERIES}
    encrypted = any(v != "clear" for vs in delivery.values() if vs for v in vs)
    if encrypted and protection != "aes-128":
        if "key" not in t and "key_file" not in t:
            c.bad(f"{where}.key", "an encrypted delivery needs key or key_file")
        if "key_id" not in t:
            c.bad(f"{where}.key_id", "an encrypted delivery needs key_id")
    return Protection(
        protection=protection,
        key_id=key_id,
        key=key,
        iv=iv,
        hls=delivery["hls"],
        dash=delivery["dash"],
        smooth=delivery["smooth"],
        policy=c.typed(t, "policy", where, str, None),
        require_token=c.typed(t, "require_token", where, bool, False),
        token_segments=c.typed(t, "token_segments", where, bool, False),
    )


def _delivery(
    c: Checker, t: dict[str, Any], where: str, proto: str, *, live: bool
) -> tuple[str, ...] | None:
    """``t[proto]``: one scheme or a list of them, each one this protocol can carry."""
    if proto not in t:
        return None
    raw = t[proto]
    values = [raw] if isinstance(raw, str) else raw
    allowed = DELIVERIES[proto]
    if live:
        allowed = tuple(v for v in allowed if v in LIVE_DELIVERIES)
        if isinstance(values, list) and any(v in ("cenc", "cbcs") for v in values):
            c.bad(f"{where}.{proto}", "Common Encryption of live channels is not built yet")
            return None
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        c.bad(f"{where}.{proto}", f"must be one of {', '.join(allowed)} or a list of them")
        return None
    for v in values:
        if v not in allowed:
            c.bad(f"{where}.{proto}", f"must be one of {', '.join(allowed)}, got {v!r}")
    if len(set(values)) != len(values):
        c.bad(f"{where}.{proto}", "lists a scheme twice")
    return tuple(values)


def parse_name(c: Checker, t: dict[str, Any], where: str) -> str:
    """``t["name"]``, a name that goes into URLs as it is; reported when missing or not one."""
    name: str = c.typed(t, "name", where, str, "")
    if not name:
        c.bad(f"{where}.name", "is required")
    elif not all(ch.isalnum() or ch in "._~-" for ch in name) or not name[0].isalnum():
        c.bad(f"{where}.name", f"{name!r} must be letters, digits and . _ ~ - (a URL name)")
    return name


def parse_segment_duration(c: Checker, t: dict[str, Any], where: str, default: float) -> Fraction:
    seg = c.typed(t, "segment_duration", where, float, default)
    if not 0.5 <= seg <= 60:
        c.bad(f"{where}.segment_duration", f"must be between 0.5 and 60 seconds, got {seg}")
        seg = default  # nan and inf have no Fraction; the table is not used anyway
    return Fraction(seg).limit_denominator(1000)


class KeyUse:
    """The checks across tables: each key_id has one key and one policy, policies exist."""

    def __init__(self, c: Checker, policies: Mapping[str, Policy]) -> None:
        self.c = c
        self.policies = policies
        self.keys: dict[uuid.UUID, bytes] = {}
        self.key_policies: dict[uuid.UUID, str | None] = {}

    def check(self, p: Protection, where: str) -> None:
        c = self.c
        # Run on a table with errors of its own too, so one pass reports everything; a policy
        # that failed to parse has its own errors already.
        prefix = f"{c.source}: " if c.source else ""
        if (
            p.policy is not None
            and p.policy not in self.policies
            and not any(q.startswith(f"{prefix}policies.{p.policy}") for q in c.problems)
        ):
            c.bad(f"{where}.policy", f"no policy named {p.policy!r} in [policies]")
        if p.require_token and p.policy is None:
            c.bad(f"{where}.require_token", "needs a policy with a token option")
        if p.key_id is not None and self.key_policies.setdefault(p.key_id, p.policy) != p.policy:
            c.bad(f"{where}.policy", f"key_id {p.key_id} is used with another policy")
        if (
            p.key_id is not None
            and p.key is not None
            and self.keys.setdefault(p.key_id, p.key) != p.key
        ):
            c.bad(f"{where}.key", f"key_id {p.key_id} is used with a different key")


def _key(c: Checker, t: dict[str, Any], where: str, base: Path) -> bytes | None:
    if "key" in t and "key_file" in t:
        c.bad(where, "give key or key_file, not both")
        return None
    if "key" in t:
        key = parse_key(t["key"]) if isinstance(t["key"], str) else None
        if key is None:
            c.bad(f"{where}.key", "must be 16 bytes as 32 hex digits or base64 (value not shown)")
        return key
    if "key_file" in t:
        f = t["key_file"]
        p = Path(f) if isinstance(f, str) and Path(f).is_absolute() else base / str(f)
        try:
            data = p.read_bytes()
        except OSError as e:
            c.bad(f"{where}.key_file", f"cannot read {p}: {e.strerror or e}")
            return None
        except ValueError:  # a NUL in the path
            c.bad(f"{where}.key_file", f"cannot read {p!r}: not a valid path")
            return None
        key = data if len(data) == 16 else parse_key(data.decode("ascii", "replace"))
        if key is None:
            c.bad(f"{where}.key_file", f"{p} must hold 16 raw bytes, 32 hex digits or base64")
        return key
    return None


def protection_of(table: object) -> Protection:
    """The protection options of an AssetConfig or ChannelConfig (the same field names)."""
    return Protection(**{name: getattr(table, name) for name in Protection.__dataclass_fields__})
