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
from origin.service.catalog.view import CatalogConfig, Published
from origin.service.config.channels import ChannelConfig as ChannelConfig
from origin.service.config.channels import SecretError as SecretError
from origin.service.config.channels import parse_channels
from origin.service.config.channels import resolve_secrets as resolve_secrets
from origin.service.config.check import Checker
from origin.service.config.check import ConfigError as ConfigError
from origin.service.config.policies import parse_policy
from origin.service.config.protection import (
    DELIVERIES as DELIVERIES,
)
from origin.service.config.protection import (
    PROTECTIONS as PROTECTIONS,
)
from origin.service.config.protection import (
    KeyUse,
    parse_name,
    parse_protection,
    parse_segment_duration,
    protection_of,
)
from origin.service.config.proxy import parse_proxy_config
from origin.service.keys.kms import LocalKms
from origin.service.policy import Policy
from origin.service.proxy.settings import ProxyConfig

DEFAULT_STATE_DIR = Path("~/.local/state/origin")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    base_url: str | None = None
    cache_mb: int = 32  # a small machine can afford it; a CDN in front absorbs repeats
    # When assets are indexed: "startup" (every one before listening; a broken one is refused
    # then) or "lazy" (each on its first request: a catalog of thousands starts at once).
    index: str = "startup"
    # Signed segment URLs of assets and channels with require_token (origin.service.tokens.urlsig):
    # the HMAC key (None: generated once and kept in state_dir, see resolve_secrets), and how long
    # a signed URL stays valid past the manifest answer (VOD: plus the title's duration).
    url_signing_key: bytes | None = field(default=None, repr=False)
    signed_url_lifetime: int = 600
    cors_origins: tuple[str, ...] = ()  # empty: "*"
    cors_max_age: int = 86400
    access_log: bool = True
    # The built-in player and status page (/, /player, /status): an origin behind a CDN may not
    # want them answered.
    player: bool = True
    # "text" (one line: peer, request, status, size, time) or "json" (one object per line, with
    # the user agent and a request id, X-Request-Id then generated when the client sent none).
    access_log_format: str = "text"
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
    # Seconds after SIGTERM during which /readyz answers 503 while the server still accepts and
    # serves (a load balancer takes it out of rotation), before the drain starts.
    drain_delay: float = 0.0
    # Where state that must survive restarts is kept (generated ingest secrets); relative to the
    # config file's folder.
    state_dir: Path = field(default_factory=DEFAULT_STATE_DIR.expanduser)
    # Envelope keys (seed 002): key URIs carry the content key sealed by the master key (``edk``),
    # so any node with the master key serves it without knowing the asset. The master keys from
    # the variable master_key_env, else master_key_file, else <state_dir>/master.keys.
    envelope_keys: bool = False
    master_key_file: Path | None = None
    master_key_env: str | None = None
    # The master keys themselves, read by resolve_secrets (None until then, or when unused).
    kms: LocalKms | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class AssetConfig:
    name: str
    files: tuple[Path, ...]
    segment_duration: Fraction
    protection: str = "clear"
    key_id: uuid.UUID | None = None
    key: bytes | None = field(default=None, repr=False)
    iv: bytes | None = None
    hls: tuple[str, ...] | None = None  # delivery policy: schemes allowed, first the default
    dash: tuple[str, ...] | None = None
    smooth: tuple[str, ...] | None = None
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
    channels: tuple[ChannelConfig, ...] = ()  # [[channels]]: live, ingested or looped
    catalog: CatalogConfig | None = None  # [catalog]: assets, keys, policies in a database
    # What the catalog added (its assets, its locators), merged in by origin.service.catalog.
    published: Published = field(default_factory=Published)


_SERVER_FIELDS = {f for f in ServerConfig.__dataclass_fields__} - {"kms"}  # read, not written
INDEX_MODES = ("startup", "lazy")
MIN_SIGNING_KEY_BYTES = 16
_ASSET_FIELDS = {
    "name", "files", "segment_duration", "protection", "key_id", "key", "key_file", "iv",
    "hls", "dash", "smooth", "policy", "require_token", "token_segments",
}  # fmt: skip


def load_config(path: Path) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem."""
    return parse_config(read_toml(path), base=path.parent, source=str(path), path=path)


def read_toml(path: Path) -> dict[str, Any]:
    """The config file's tables as read (ConfigError if it is not TOML)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror or e}"]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{path}: not valid TOML: {e}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    except RecursionError:  # tomllib recurses per nesting level
        raise ConfigError([f"{path}: not valid TOML: nested too deeply"]) from None


def parse_config(
    raw: dict[str, Any], *, base: Path, source: str | None, path: Path | None = None
) -> Config:
    c = Checker(source)
    for key in raw:
        if key not in ("server", "assets", "channels", "policies", "proxy", "catalog"):
            expected = "[server], [[assets]], [[channels]], [policies.NAME], [proxy], [catalog]"
            c.bad(key, f"unknown section (expected {expected})")
    server = _server(c, raw.get("server", {}), base)
    policies = _policies(c, raw.get("policies", {}), base)
    proxy, proxy_problems = parse_proxy_config(raw.get("proxy", {}), where="proxy")
    c.extend(proxy_problems)
    assets_raw = raw.get("assets", [])
    assets: list[AssetConfig] = []
    if not isinstance(assets_raw, list):
        c.bad("assets", "must be an array of tables ([[assets]])")
        assets_raw = []
    names: set[str] = set()
    key_use = KeyUse(c, policies)
    for i, table in enumerate(assets_raw):
        before = c.fatal_count()
        asset = _asset(c, table, f"assets[{i}]", base)
        if asset is None:
            continue
        key_use.check(protection_of(asset), f"assets[{i}]")
        if asset.name and asset.name in names:
            c.bad(f"assets[{i}].name", f"duplicate asset name {asset.name!r}")
        names.add(asset.name)
        if c.fatal_count() == before:
            assets.append(asset)
    channels = parse_channels(
        c, raw.get("channels", []), base, assets=assets, asset_names=names, key_use=key_use
    )
    catalog = _catalog(c, raw.get("catalog"), base, server.state_dir)
    if c.fatal_count():
        raise ConfigError(c.problems)
    return Config(
        path, server, tuple(assets), policies, proxy, tuple(c.problems), channels, catalog
    )


CATALOG_FILE = "catalog.db"
_CATALOG_FIELDS = {"database_url", "admin_key_file", "admin_key_env", "poll_interval"}


def _catalog(c: Checker, raw: Any, base: Path, state_dir: Path) -> CatalogConfig | None:
    if raw is None:
        return None
    t = c.table(raw, "catalog")
    if t is None:
        return None
    c.unknown(t, _CATALOG_FIELDS, "catalog")
    url = c.typed(t, "database_url", "catalog", str, "") or f"sqlite:///{state_dir / CATALOG_FILE}"
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        c.bad("catalog.database_url", "must be sqlite:///PATH or postgresql://…")
    elif url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_absolute():
        url = f"sqlite:///{base / url.removeprefix('sqlite:///')}"
    key_file = c.typed(t, "admin_key_file", "catalog", str, None)
    key_env = c.typed(t, "admin_key_env", "catalog", str, None)
    if key_file is not None and key_env is not None:
        c.bad("catalog.admin_key_env", "set admin_key_file or admin_key_env, not both")
    poll = float(c.typed(t, "poll_interval", "catalog", float, 2.0))
    if not 0.1 <= poll <= 3600:
        c.bad("catalog.poll_interval", f"must be 0.1..3600 seconds, got {poll}")
    return CatalogConfig(
        url,
        admin_key_file=base / Path(key_file).expanduser() if key_file else None,
        admin_key_env=key_env or None,
        poll_interval=poll,
    )


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


def _server(c: Checker, raw: Any, base: Path) -> ServerConfig:
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
    signing_key = None
    signing_hex = c.typed(t, "url_signing_key", "server", str, None)
    if signing_hex is not None:
        try:
            signing_key = bytes.fromhex(signing_hex)
        except ValueError:
            signing_key = b""
        if len(signing_key) < MIN_SIGNING_KEY_BYTES:
            c.bad(
                "server.url_signing_key",
                f"must be at least {MIN_SIGNING_KEY_BYTES} bytes in hex (value not shown)",
            )
            signing_key = None
    lifetime = c.typed(t, "signed_url_lifetime", "server", int, d.signed_url_lifetime)
    if not 10 <= lifetime <= 7 * 86400:
        c.bad("server.signed_url_lifetime", f"must be 10..604800 seconds, got {lifetime}")
        lifetime = d.signed_url_lifetime
    log_format = c.typed(t, "access_log_format", "server", str, d.access_log_format)
    if log_format not in ("text", "json"):
        c.bad("server.access_log_format", f'must be "text" or "json", got {log_format!r}')
        log_format = d.access_log_format
    index = c.typed(t, "index", "server", str, d.index)
    if index not in INDEX_MODES:
        c.bad("server.index", f"must be one of {', '.join(INDEX_MODES)}, got {index!r}")
        index = d.index
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
    for name in ("header_timeout", "keepalive_timeout", "drain_timeout", "drain_delay"):
        value = float(c.typed(t, name, "server", float, getattr(d, name)))
        # A drain of 0 closes every connection at once; a zero header/idle timeout serves nobody.
        zero_ok = name in ("drain_timeout", "drain_delay")
        if not (value >= 0 if zero_ok else value > 0) or not value <= 3600:
            bound = ">= 0" if zero_ok else "> 0"
            c.bad(f"server.{name}", f"must be {bound} and <= 3600 seconds, got {value}")
            value = getattr(d, name)
        seconds[name] = value
    master_file = c.typed(t, "master_key_file", "server", str, None)
    master_env = c.typed(t, "master_key_env", "server", str, None)
    if master_file is not None and master_env is not None:
        c.bad("server.master_key_env", "set master_key_file or master_key_env, not both")
    state_dir = d.state_dir
    state_raw = c.typed(t, "state_dir", "server", str, None)
    if state_raw is not None:
        if not state_raw or "\0" in state_raw:
            c.bad("server.state_dir", "must be a directory path")
        else:
            state_dir = base / Path(state_raw).expanduser()  # an absolute path stays as it is
    return ServerConfig(
        host=host,
        state_dir=state_dir,
        port=port,
        workers=workers,
        base_url=base_url,
        cache_mb=cache_mb,
        index=index,
        url_signing_key=signing_key,
        signed_url_lifetime=lifetime,
        cors_origins=tuple(o for o in origins if isinstance(o, str)),
        access_log=c.typed(t, "access_log", "server", bool, d.access_log),
        player=c.typed(t, "player", "server", bool, d.player),
        access_log_format=log_format,
        trusted_proxies=tuple(proxies),
        max_url_bytes=max_url_bytes,
        header_timeout=seconds["header_timeout"],
        keepalive_timeout=seconds["keepalive_timeout"],
        drain_delay=seconds["drain_delay"],
        drain_timeout=seconds["drain_timeout"],
        envelope_keys=c.typed(t, "envelope_keys", "server", bool, d.envelope_keys),
        master_key_file=base / Path(master_file).expanduser() if master_file else None,
        master_key_env=master_env or None,
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
    name = parse_name(c, t, where)
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
    seg = parse_segment_duration(c, t, where, 6.0)
    protection = parse_protection(c, t, where, base)
    return AssetConfig(name=name, files=tuple(files), segment_duration=seg, **protection.fields())
