"""The ``[[channels]]`` of the config: live channels, fed by an encoder or looping a VOD asset.

A channel takes an asset's protection options (same names, same checks, see ``protection``),
``window`` (DVR seconds) and ``segment_duration``, and either an ingest credential or
``loop = true`` with ``asset = "NAME"``.

Ingest is never open by default: an ingest channel needs ``ingest_secret`` (the HTTP Basic
password of ``ingest_user``, also accepted as a Bearer token) or ``ingest_allow`` (networks), or
both (then both must pass). ``ingest_secret = "generate"`` is made at first start and kept in
``<state_dir>/channels/<name>.secret`` (``resolve_secrets``; not at parse time, so check-config
writes nothing).

A looped channel has no ingest. It inherits its asset's protection options, all of them, unless
it gives any of its own: then it has exactly those (unset ones take their defaults), never a mix.
Its segment_duration defaults to the asset's.
"""

from __future__ import annotations

import math
import os
import secrets
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from origin.service.addresses import IPNetwork, parse_network
from origin.service.config.check import Checker, ConfigError
from origin.service.config.protection import (
    PROTECTION_FIELDS,
    KeyUse,
    parse_name,
    parse_protection,
    parse_segment_duration,
    protection_of,
)
from origin.service.keys.kms import KmsError, load_local

if TYPE_CHECKING:
    from origin.service.config import AssetConfig, Config

GENERATE = "generate"
MIN_SECRET_CHARS = 16
DEFAULT_WINDOW = 120.0
DEFAULT_SEGMENT_DURATION = 4.0
MIN_WINDOW_SEGMENTS = 3  # HLS players want three segments behind the live edge
_INGEST_FIELDS = frozenset({"ingest_user", "ingest_secret", "ingest_allow", "archive"})
_FIELDS = PROTECTION_FIELDS | _INGEST_FIELDS | {
    "name", "window", "segment_duration", "loop", "asset", "key_rotation_segments",
    "key_rotation_minutes",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    name: str
    window: Fraction  # DVR seconds kept and listed
    segment_duration: Fraction
    protection: str = "clear"
    key_id: uuid.UUID | None = None
    key: bytes | None = field(default=None, repr=False)
    iv: bytes | None = None
    hls: tuple[str, ...] | None = None  # delivery policy: schemes allowed, first the default
    dash: tuple[str, ...] | None = None
    smooth: tuple[str, ...] | None = None
    policy: str | None = None
    require_token: bool = False
    token_segments: bool = False
    loop: bool = False  # VOD-to-live: plays `asset` on the wall clock, takes no ingest
    asset: str | None = None
    ingest_user: str = "origin"
    # The resolved secret; None when there is none, or before resolve_secrets for a generated one.
    ingest_secret: str | None = field(default=None, repr=False)
    generate_secret: bool = False  # ingest_secret = "generate"
    ingest_allow: tuple[IPNetwork, ...] = ()
    archive: Path | None = None  # where ingested fragments are also written
    # Content key rotation: a new key every this many segments (None: one key for the channel).
    key_rotation: int | None = None

    @property
    def ingest(self) -> bool:
        """Whether encoders push to this channel (else it loops an asset)."""
        return not self.loop


def secret_path(state_dir: Path, name: str) -> Path:
    return state_dir / "channels" / f"{name}.secret"


def parse_channels(
    c: Checker,
    raw: Any,
    base: Path,
    *,
    assets: Sequence[AssetConfig],
    asset_names: Collection[str],
    key_use: KeyUse,
) -> tuple[ChannelConfig, ...]:
    """The channels that have no problem; every problem goes to ``c``. ``assets`` are the
    assets without errors (looped ones are taken from there; one refused only for its files
    stays, as the asset does: whoever serves the channel refuses it with its asset),
    ``asset_names`` every name given."""
    if not isinstance(raw, list):
        c.bad("channels", "must be an array of tables ([[channels]])")
        return ()
    usable = {a.name: a for a in assets}
    names: set[str] = set()
    out: list[ChannelConfig] = []
    for i, table in enumerate(raw):
        where = f"channels[{i}]"
        before = len(c.problems)
        channel = _channel(c, table, where, base, assets=usable, asset_names=asset_names)
        if channel is None:
            continue
        key_use.check(protection_of(channel), where)
        if channel.name in asset_names:
            c.bad(f"{where}.name", f"{channel.name!r} is already an asset's name")
        elif channel.name and channel.name in names:
            c.bad(f"{where}.name", f"duplicate channel name {channel.name!r}")
        names.add(channel.name)
        if len(c.problems) == before:
            out.append(channel)
    return tuple(out)


def _channel(
    c: Checker,
    raw: Any,
    where: str,
    base: Path,
    *,
    assets: dict[str, AssetConfig],
    asset_names: Collection[str],
) -> ChannelConfig | None:
    t = c.table(raw, where)
    if t is None:
        return None
    c.unknown(t, _FIELDS, where)
    name = parse_name(c, t, where)
    loop = c.typed(t, "loop", where, bool, False)
    asset_name = c.typed(t, "asset", where, str, None)
    protection = parse_protection(c, t, where, base, live=True)
    looped: AssetConfig | None = None
    if loop:
        if asset_name is None:
            c.bad(f"{where}.asset", "loop = true needs the asset to loop")
        elif asset_name in assets:
            looped = assets[asset_name]
        elif asset_name in asset_names:  # its errors are reported: the config fails anyway
            c.bad(f"{where}.asset", f"asset {asset_name!r} has errors of its own")
        else:
            c.bad(f"{where}.asset", f"no asset named {asset_name!r} in [[assets]]")
        for key in sorted(_INGEST_FIELDS & t.keys()):
            c.bad(f"{where}.{key}", "a looped channel takes no ingest")
        if looped is not None and not PROTECTION_FIELDS & t.keys():
            protection = protection_of(looped)
    elif asset_name is not None:
        c.bad(f"{where}.asset", "only a looped channel (loop = true) plays an asset")
    default_seg = float(looped.segment_duration) if looped else DEFAULT_SEGMENT_DURATION
    seg = parse_segment_duration(c, t, where, default_seg)
    window_s = c.typed(t, "window", where, float, DEFAULT_WINDOW)
    if not 0 < window_s <= 86400:
        c.bad(f"{where}.window", f"must be > 0 and <= 86400 seconds, got {window_s}")
        window_s = DEFAULT_WINDOW
    window = Fraction(window_s).limit_denominator(1000)
    if window < MIN_WINDOW_SEGMENTS * seg:
        c.bad(
            f"{where}.window",
            f"must be at least {MIN_WINDOW_SEGMENTS} x segment_duration "
            f"({float(MIN_WINDOW_SEGMENTS * seg):g} s), got {window_s:g}",
        )
    user = c.typed(t, "ingest_user", where, str, "origin")
    if not user or ":" in user or not _visible(user):
        c.bad(f"{where}.ingest_user", "must be visible ASCII with no ':' (an HTTP Basic user)")
    secret, generate = _secret(c, t, where)
    allow = _allow(c, t, where)
    if not loop and secret is None and not generate and not allow and not _tried_auth(t):
        c.bad(
            where,
            "needs ingest_secret or ingest_allow (or both): ingest is never open by default",
        )
    archive = None
    archive_raw = c.typed(t, "archive", where, str, None)
    if archive_raw is not None:
        if not archive_raw or "\0" in archive_raw:
            c.bad(f"{where}.archive", "must be a directory path")
        else:
            archive = base / archive_raw
            if archive.exists() and not archive.is_dir():
                c.bad(f"{where}.archive", f"not a directory: {archive}")
    rotation = _rotation(c, t, where, seg, protection.protection)
    return ChannelConfig(
        name=name,
        window=window,
        segment_duration=seg,
        key_rotation=rotation,
        loop=loop,
        asset=asset_name if loop else None,
        ingest_user=user,
        ingest_secret=secret,
        generate_secret=generate,
        ingest_allow=allow,
        archive=archive,
        **protection.fields(),
    )


def _rotation(
    c: Checker, t: dict[str, Any], where: str, seg: Fraction, protection: str
) -> int | None:
    """Segments per key: ``key_rotation_segments``, or ``key_rotation_minutes`` in whole
    segments (at least one)."""
    by_count = c.typed(t, "key_rotation_segments", where, int, None)
    minutes = c.typed(t, "key_rotation_minutes", where, float, None)
    if by_count is None and minutes is None:
        return None
    if by_count is not None and minutes is not None:
        c.bad(f"{where}.key_rotation_minutes", "set key_rotation_segments or _minutes, not both")
        return None
    if protection != "aes-128":
        field = "key_rotation_segments" if by_count is not None else "key_rotation_minutes"
        c.bad(f"{where}.{field}", 'rotates the content key: needs protection = "aes-128"')
        return None
    if minutes is not None:
        if not 0 < minutes <= 7 * 24 * 60:
            c.bad(f"{where}.key_rotation_minutes", f"must be > 0 and <= 10080, got {minutes}")
            return None
        return max(1, math.ceil(Fraction(minutes).limit_denominator(1000) * 60 / seg))
    assert by_count is not None
    if by_count < 1:
        c.bad(f"{where}.key_rotation_segments", f"must be >= 1, got {by_count}")
        return None
    return int(by_count)


def _visible(text: str) -> bool:
    return all("\x21" <= ch <= "\x7e" for ch in text)


def _tried_auth(t: dict[str, Any]) -> bool:
    # A malformed ingest_secret or ingest_allow is reported for itself; no second error.
    return "ingest_secret" in t or "ingest_allow" in t


def _secret(c: Checker, t: dict[str, Any], where: str) -> tuple[str | None, bool]:
    if "ingest_secret" not in t:
        return None, False
    value = t["ingest_secret"]
    if not isinstance(value, str):
        c.bad(f"{where}.ingest_secret", "must be a string (value not shown)")
        return None, False
    if value == GENERATE:
        return None, True
    if len(value) < MIN_SECRET_CHARS or not _visible(value):
        c.bad(
            f"{where}.ingest_secret",
            f'must be at least {MIN_SECRET_CHARS} visible ASCII characters, or "generate" '
            "(value not shown)",
        )
        return None, False
    return value, False


def _allow(c: Checker, t: dict[str, Any], where: str) -> tuple[IPNetwork, ...]:
    if "ingest_allow" not in t:
        return ()
    raw = t["ingest_allow"]
    if not isinstance(raw, list) or not raw:
        c.bad(f"{where}.ingest_allow", "must be a non-empty list of addresses or CIDRs")
        return ()
    nets: list[IPNetwork] = []
    for j, cidr in enumerate(raw):
        net = parse_network(cidr, strict=False)
        if net is None:
            c.bad(f"{where}.ingest_allow[{j}]", f"{cidr!r} is not an address or CIDR")
        else:
            nets.append(net)
    return tuple(nets)


class SecretError(ConfigError):
    """A generated secret could not be read or kept (the message names the file, not the secret)."""

    def __init__(self, problem: str) -> None:
        super().__init__([problem])


def resolve_secrets(config: Config, state_dir: Path) -> Config:
    """``config`` with each ``ingest_secret = "generate"`` filled in: read from
    ``<state_dir>/channels/<name>.secret`` if it exists, else generated (32 URL-safe characters)
    and written there with mode 0600; and, when an asset or channel needs signed segment URLs and
    ``server.url_signing_key`` is not set, that key the same way from
    ``<state_dir>/url-signing.key`` (64 hex digits), so every worker and every restart signs
    alike; and the master keys when ``server.envelope_keys`` is on. Raises SecretError."""
    server = config.server
    gated = any(a.require_token for a in config.assets) or any(
        ch.require_token for ch in config.channels
    )
    if gated and server.url_signing_key is None:
        path = state_dir / "url-signing.key"
        key = bytes.fromhex(_read_or_generate(path, secrets.token_hex(32), _is_hex_key))
        config = replace(config, server=replace(server, url_signing_key=key))
    # The catalog keeps its content keys only sealed, and so do rotating channels: they need
    # the master keys too.
    rotating = any(ch.key_rotation for ch in config.channels)
    if (server.envelope_keys or config.catalog is not None or rotating) and server.kms is None:
        try:
            kms = load_local(server.master_key_file, server.master_key_env, state_dir)
        except KmsError as e:
            raise SecretError(str(e)) from None
        config = replace(config, server=replace(config.server, kms=kms))
    catalog = config.catalog
    if catalog is not None and catalog.admin_key is None:
        if catalog.admin_key_env is not None:
            admin = os.environ.get(catalog.admin_key_env)
            if not admin or len(admin) < MIN_SECRET_CHARS:
                raise SecretError(
                    f"the environment variable {catalog.admin_key_env} (catalog.admin_key_env) "
                    f"must hold an admin key of at least {MIN_SECRET_CHARS} characters"
                )
        else:
            where = catalog.admin_key_file or state_dir / ADMIN_KEY_FILE
            admin = _read_or_generate(where)
        config = replace(config, catalog=replace(catalog, admin_key=admin))
    channels = []
    for ch in config.channels:
        if ch.generate_secret and ch.ingest_secret is None:
            secret = _read_or_generate(secret_path(state_dir, ch.name))
            channels.append(replace(ch, ingest_secret=secret))
        else:
            channels.append(ch)
    return replace(config, channels=tuple(channels))


ADMIN_KEY_FILE = "catalog-admin.key"


def _is_hex_key(text: str) -> bool:
    try:
        return len(bytes.fromhex(text)) >= MIN_SECRET_CHARS
    except ValueError:
        return False


def _read_or_generate(
    path: Path, fresh: str | None = None, usable: Callable[[str], bool] | None = None
) -> str:
    """The secret kept in ``path``, or ``fresh`` (default: 32 URL-safe characters) written there
    first with mode 0600; ``usable`` checks one read back (default: an ingest secret's rule)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # kept from an earlier start (or another worker won the race)
            return _read(path, usable)
        secret = fresh or secrets.token_urlsafe(24)  # 24 bytes: 32 characters
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secret + "\n")
        return secret
    except OSError as e:
        raise SecretError(f"{path}: cannot keep the secret: {e.strerror or e}") from None


def _read(path: Path, usable: Callable[[str], bool] | None = None) -> str:
    secret = path.read_text(encoding="ascii", errors="replace").strip()
    if usable is not None:
        if not usable(secret):
            raise SecretError(f"{path}: not a usable key; delete it to generate a new one")
    elif len(secret) < MIN_SECRET_CHARS or not _visible(secret):
        raise SecretError(
            f"{path}: not a usable ingest secret (at least {MIN_SECRET_CHARS} visible ASCII "
            "characters); delete it to generate a new one"
        )
    return secret
