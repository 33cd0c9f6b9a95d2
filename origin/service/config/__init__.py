"""TOML configuration: the file as a whole, its ``[server]`` and ``[[assets]]``, as dataclasses.

Every error is reported at once (``check.Checker``); ``[policies.NAME]`` tables are read in
``policies``, the ``[proxy]`` table in ``proxy``.

Each error names the file, the field (``assets[1].key``) and what is wrong. Key material is never
echoed back, not even when it is malformed. A missing file (or a directory) in an asset's
``files`` is an error too, but one that refuses that asset only: the config still loads, with the
problem in ``Config.file_problems``, so one deleted title never takes a whole origin down.
"""

from __future__ import annotations

import os
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from origin.service.addresses import IPNetwork, parse_network
from origin.service.config.check import Checker
from origin.service.config.policies import parse_policy
from origin.service.config.proxy import parse_proxy_config
from origin.service.keytext import parse_iv, parse_key
from origin.service.policy import Policy
from origin.service.proxy.settings import ProxyConfig

PROTECTIONS = ("clear", "aes-128")
# How DASH and Smooth are delivered for an asset whose `protection` is an HLS-only scheme
# (aes-128): only "clear" until Common Encryption exists. Unset = blocked (AMS: a protocol not in a
# delivery policy is blocked; an asset with no delivery policy streams every protocol in the clear).
DELIVERIES = ("clear",)


class ConfigError(Exception):
    """One or more problems in a config file."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    base_url: str | None = None
    cache_mb: int = 256
    cors_origins: tuple[str, ...] = ()  # empty: "*"
    cors_max_age: int = 86400
    access_log: bool = True
    manifest_max_age: int = 86400
    segment_max_age: int = 31536000
    # Peers whose X-Forwarded-For is believed (ip restrictions); nobody's by default.
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # Longest request path (bytes, as sent) answered with anything but 414. The query is not
    # counted: it carries tokens (up to 8 KiB, refused by the policy beyond) and is never cached.
    max_url_bytes: int = 4096
    header_timeout: float = 10.0  # seconds to send a complete request head
    keepalive_timeout: float = 30.0  # seconds an idle connection stays open between requests
    drain_timeout: float = 15.0  # seconds SIGTERM waits for responses in flight


@dataclass(frozen=True, slots=True)
class AssetConfig:
    name: str
    files: tuple[Path, ...]
    segment_duration: Fraction
    protection: str = "clear"
    key_id: uuid.UUID | None = None
    key: bytes | None = field(default=None, repr=False)
    iv: bytes | None = None
    dash: str | None = None
    smooth: str | None = None
    policy: str | None = None  # the content key's authorization policy; None: open
    require_token: bool = False  # playlists/manifests need a valid token too
    token_segments: bool = False  # propagated tokens also go on segment URLs


@dataclass(frozen=True, slots=True)
class Config:
    path: Path | None
    server: ServerConfig
    assets: tuple[AssetConfig, ...]
    policies: Mapping[str, Policy] = field(default_factory=dict)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    # Errors that refuse one asset only (its files are missing or not files); check-config
    # reports them like any other error, serve refuses those assets and serves the rest.
    file_problems: tuple[str, ...] = ()


_SERVER_FIELDS = {f for f in ServerConfig.__dataclass_fields__}
_ASSET_FIELDS = {
    "name", "files", "segment_duration", "protection", "key_id", "key", "key_file", "iv",
    "dash", "smooth", "policy", "require_token", "token_segments",
}  # fmt: skip


def load_config(path: Path) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror or e}"]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{path}: not valid TOML: {e}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    except RecursionError:  # tomllib recurses per nesting level
        raise ConfigError([f"{path}: not valid TOML: nested too deeply"]) from None
    return parse_config(raw, base=path.parent, source=str(path), path=path)


def parse_config(
    raw: dict[str, Any], *, base: Path, source: str, path: Path | None = None
) -> Config:
    c = Checker(source)
    for key in raw:
        if key not in ("server", "assets", "policies", "proxy"):
            c.bad(key, "unknown section (expected [server], [[assets]], [policies.NAME], [proxy])")
    server = _server(c, raw.get("server", {}))
    policies = _policies(c, raw.get("policies", {}), base)
    proxy, proxy_problems = parse_proxy_config(raw.get("proxy", {}), where="proxy")
    c.extend(proxy_problems)
    assets_raw = raw.get("assets", [])
    assets: list[AssetConfig] = []
    if not isinstance(assets_raw, list):
        c.bad("assets", "must be an array of tables ([[assets]])")
        assets_raw = []
    names: set[str] = set()
    keys: dict[uuid.UUID, bytes] = {}
    key_policies: dict[uuid.UUID, str | None] = {}
    for i, table in enumerate(assets_raw):
        before = c.fatal_count()
        asset = _asset(c, table, f"assets[{i}]", base)
        if asset is None:
            continue
        # The checks across assets and policies run on an asset with errors of its own too, so
        # one pass reports everything.
        if (
            asset.policy is not None
            and asset.policy not in policies
            and not any(p.startswith(f"{source}: policies.{asset.policy}") for p in c.problems)
        ):
            c.bad(f"assets[{i}].policy", f"no policy named {asset.policy!r} in [policies]")
        if asset.require_token and asset.policy is None:
            c.bad(f"assets[{i}].require_token", "needs a policy with a token option")
        if (
            asset.key_id is not None
            and key_policies.setdefault(asset.key_id, asset.policy) != asset.policy
        ):
            c.bad(f"assets[{i}].policy", f"key_id {asset.key_id} is used with another policy")
        if asset.name and asset.name in names:
            c.bad(f"assets[{i}].name", f"duplicate asset name {asset.name!r}")
        names.add(asset.name)
        if (
            asset.key_id is not None
            and asset.key is not None
            and keys.setdefault(asset.key_id, asset.key) != asset.key
        ):
            c.bad(f"assets[{i}].key", f"key_id {asset.key_id} is used with a different key")
        if c.fatal_count() == before:
            assets.append(asset)
    if c.fatal_count():
        raise ConfigError(c.problems)
    return Config(path, server, tuple(assets), policies, proxy, tuple(c.problems))


def _policies(c: Checker, raw: Any, base: Path) -> dict[str, Policy]:
    if not isinstance(raw, dict):
        c.bad("policies", "must be a table of [policies.NAME]")
        return {}
    out: dict[str, Policy] = {}
    for name, table in raw.items():
        policy, problems = parse_policy(name, table, where=f"policies.{name}", base=base)
        c.extend(problems)
        if policy is not None:
            out[name] = policy
    return out


def _server(c: Checker, raw: Any) -> ServerConfig:
    t = c.table(raw, "server")
    if t is None:
        return ServerConfig()
    c.unknown(t, _SERVER_FIELDS, "server")
    d = ServerConfig()
    host = c.typed(t, "host", "server", str, d.host)
    port = c.typed(t, "port", "server", int, d.port)
    if not 0 <= port <= 65535:
        c.bad("server.port", f"must be 0..65535, got {port}")
    workers = c.typed(t, "workers", "server", int, d.workers)
    if not 1 <= workers <= 256:
        c.bad("server.workers", f"must be 1..256, got {workers}")
    base_url = c.typed(t, "base_url", "server", str, "") or None
    if base_url and not base_url.startswith(("http://", "https://")):
        c.bad("server.base_url", "must be an absolute http(s) URL")
    cache_mb = c.typed(t, "cache_mb", "server", int, d.cache_mb)
    if cache_mb < 0:
        c.bad("server.cache_mb", "must be >= 0")
    origins = c.typed(t, "cors_origins", "server", list, [])
    for j, o in enumerate(origins):
        if not isinstance(o, str) or not o.startswith(("http://", "https://")) or o.endswith("/"):
            c.bad(f"server.cors_origins[{j}]", "must be an origin like https://player.example")
    proxies: list[IPNetwork] = []
    for j, cidr in enumerate(c.typed(t, "trusted_proxies", "server", list, [])):
        net = parse_network(cidr, strict=False)
        if net is None:
            c.bad(f"server.trusted_proxies[{j}]", f"{cidr!r} is not an address or CIDR")
        else:
            proxies.append(net)
    ints = {}
    for name in ("cors_max_age", "manifest_max_age", "segment_max_age"):
        ints[name] = c.typed(t, name, "server", int, getattr(d, name))
        if ints[name] < 0:
            c.bad(f"server.{name}", "must be >= 0")
    max_url_bytes = c.typed(t, "max_url_bytes", "server", int, d.max_url_bytes)
    if max_url_bytes < 256:
        c.bad("server.max_url_bytes", f"must be >= 256, got {max_url_bytes}")
    seconds: dict[str, float] = {}
    for name in ("header_timeout", "keepalive_timeout", "drain_timeout"):
        value = float(c.typed(t, name, "server", float, getattr(d, name)))
        # A drain of 0 closes every connection at once; a zero header/idle timeout serves nobody.
        zero_ok = name == "drain_timeout"
        if not (value >= 0 if zero_ok else value > 0) or not value <= 3600:
            bound = ">= 0" if zero_ok else "> 0"
            c.bad(f"server.{name}", f"must be {bound} and <= 3600 seconds, got {value}")
            value = getattr(d, name)
        seconds[name] = value
    return ServerConfig(
        host=host,
        port=port,
        workers=workers,
        base_url=base_url,
        cache_mb=cache_mb,
        cors_origins=tuple(o for o in origins if isinstance(o, str)),
        access_log=c.typed(t, "access_log", "server", bool, d.access_log),
        trusted_proxies=tuple(proxies),
        max_url_bytes=max_url_bytes,
        header_timeout=seconds["header_timeout"],
        keepalive_timeout=seconds["keepalive_timeout"],
        drain_timeout=seconds["drain_timeout"],
        **ints,
    )


def _file_problem(p: Path) -> str | None:
    """Why ``p`` cannot be served as a source, or None."""
    if p.is_file():
        return None if os.access(p, os.R_OK) else f"not readable: {p}"
    if p.is_dir():
        return f"is a directory, not a file: {p}"
    if p.exists():
        return f"not a regular file: {p}"
    return f"no such file: {p}"


def _asset(c: Checker, raw: Any, where: str, base: Path) -> AssetConfig | None:
    """The asset as far as it could be read (None only when it is not a table); its problems
    go to ``c``."""
    t = c.table(raw, where)
    if t is None:
        return None
    c.unknown(t, _ASSET_FIELDS, where)
    name = c.typed(t, "name", where, str, "")
    if not name:
        c.bad(f"{where}.name", "is required")
    elif not all(ch.isalnum() or ch in "._~-" for ch in name) or not name[0].isalnum():
        c.bad(f"{where}.name", f"{name!r} must be letters, digits and . _ ~ - (a URL name)")
    files_raw = c.typed(t, "files", where, list, [])
    files: list[Path] = []
    if "files" not in t:
        c.bad(f"{where}.files", "is required")
    elif not files_raw and isinstance(t["files"], list):
        c.bad(f"{where}.files", "must list at least one file")
    for j, f in enumerate(files_raw):
        if not isinstance(f, str) or not f:
            c.bad(f"{where}.files[{j}]", "must be a path string")
            continue
        p = Path(f) if Path(f).is_absolute() else base / f
        problem = _file_problem(p)
        if problem:
            c.bad(f"{where}.files[{j}]", problem, asset_only=True)
        files.append(p)
    seg = c.typed(t, "segment_duration", where, float, 6.0)
    if not 0.5 <= seg <= 60:
        c.bad(f"{where}.segment_duration", f"must be between 0.5 and 60 seconds, got {seg}")
        seg = 6.0  # nan and inf have no Fraction; the asset is not used anyway
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
    delivery: dict[str, str | None] = {}
    for proto in ("dash", "smooth"):
        value = c.typed(t, proto, where, str, None)
        if value is not None and value not in DELIVERIES:
            c.bad(f"{where}.{proto}", f"must be one of {', '.join(DELIVERIES)}, got {value!r}")
        delivery[proto] = value
    policy = c.typed(t, "policy", where, str, None)
    require_token = c.typed(t, "require_token", where, bool, False)
    token_segments = c.typed(t, "token_segments", where, bool, False)
    return AssetConfig(
        name=name,
        files=tuple(files),
        segment_duration=Fraction(seg).limit_denominator(1000),
        protection=protection,
        key_id=key_id,
        key=key,
        iv=iv,
        dash=delivery["dash"],
        smooth=delivery["smooth"],
        policy=policy,
        require_token=require_token,
        token_segments=token_segments,
    )


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
