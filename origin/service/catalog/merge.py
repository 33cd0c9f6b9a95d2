"""The catalog merged into the TOML config: its assets and policies become ``[[assets]]`` and
``[policies.NAME]`` tables (so one checker judges both), its sealed keys are opened with the
master keys into the assets that use them, and its locators are published with them.

The TOML file's entries are read-only catalog entries: a catalog entry of the same name is
never merged (the API refuses to make one, 409).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any

from origin.core.crypto.envelope import EnvelopeError
from origin.service.catalog.store import Snapshot
from origin.service.catalog.view import Published
from origin.service.config import Config, parse_config, read_toml, resolve_secrets
from origin.service.keys.kms import Kms

log = logging.getLogger("origin.catalog")


def toml_names(raw: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The asset and policy names the TOML file defines."""
    assets = raw.get("assets", [])
    names = (
        {a.get("name") for a in assets if isinstance(a, dict)}
        if isinstance(assets, list)
        else set()
    )
    policies = raw.get("policies", {})
    return {n for n in names if isinstance(n, str)}, set(policies) if isinstance(
        policies, dict
    ) else set()


def merged_raw(raw: dict[str, Any], snapshot: Snapshot, kms: Kms | None) -> dict[str, Any]:
    """``raw`` (the TOML tables) with the catalog's assets and policies added."""
    out = copy.copy(raw)
    assets, policies = toml_names(raw)
    tables = list(raw.get("assets", []))
    for name, spec in snapshot.assets.items():
        if name in assets:
            log.warning("catalog asset %r: the config file defines it, the file's wins", name)
            continue
        table = _with_key({**spec, "name": name}, snapshot, kms, f"catalog asset {name!r}")
        if table is not None:
            tables.append(table)
    out["assets"] = tables
    toml_channels = raw.get("channels", [])
    toml_channels = toml_channels if isinstance(toml_channels, list) else []
    taken = {c.get("name") for c in toml_channels if isinstance(c, dict)}
    out["channels"] = list(toml_channels)
    for name, spec in snapshot.channels.items():
        if name in taken:
            log.warning("catalog channel %r: the config file defines it, the file's wins", name)
            continue
        table = _with_key({**spec, "name": name}, snapshot, kms, f"catalog channel {name!r}")
        if table is not None:
            out["channels"].append(table)
    out["policies"] = {
        **{n: p for n, p in snapshot.policies.items() if n not in policies},
        **raw.get("policies", {}),
    }
    return out


def _with_key(
    table: dict[str, Any], snapshot: Snapshot, kms: Kms | None, what: str
) -> dict[str, Any] | None:
    """``table`` with its catalog content key opened into ``key`` (None: it cannot be)."""
    kid = table.get("key_id")
    if not isinstance(kid, str) or kid not in snapshot.keys:
        return table
    if kms is None:
        log.error("%s: no master keys to open its content key", what)
        return None
    try:
        return {**table, "key": kms.open(snapshot.keys[kid].envelope).key.hex()}
    except EnvelopeError as e:
        log.error("%s: its content key does not open: %s", what, e)
        return None


def compose(path: Path, snapshot: Snapshot | None) -> Config:
    """The config to serve: the TOML file at ``path`` and, when given, the catalog's entries.
    Raises ConfigError (with the catalog's entries named by their place in the merged list)."""
    raw = read_toml(path)
    base = parse_config(raw, base=path.parent, source=str(path), path=path)
    base = resolve_secrets(base, base.server.state_dir)
    if snapshot is None:
        return base
    merged = merged_raw(raw, snapshot, base.server.kms)
    config = parse_config(merged, base=path.parent, source=f"{path} + catalog", path=path)
    config = dataclasses.replace(
        config, server=dataclasses.replace(config.server, kms=base.server.kms)
    )
    config = resolve_secrets(config, config.server.state_dir)
    toml_assets, _ = toml_names(raw)
    mine = frozenset(n for n in snapshot.assets if n not in toml_assets)
    owners: dict[str, set[str]] = {}
    for name in mine:
        kid = snapshot.assets[name].get("key_id")
        if isinstance(kid, str):
            owners.setdefault(kid.lower(), set()).add(name)
    published = Published(
        snapshot.version,
        mine,
        {loc.id.lower(): loc for loc in snapshot.locators},
        {kid: frozenset(names) for kid, names in owners.items()},
        dict(snapshot.records),
    )
    return dataclasses.replace(config, published=published)
