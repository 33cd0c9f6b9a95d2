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
        table = {**spec, "name": name}
        kid = spec.get("key_id")
        if isinstance(kid, str) and kid in snapshot.keys:
            if kms is None:
                log.error("catalog asset %r: no master keys to open its content key", name)
                continue
            try:
                table["key"] = kms.open(snapshot.keys[kid].envelope).key.hex()
            except EnvelopeError as e:
                log.error("catalog asset %r: its content key does not open: %s", name, e)
                continue
        tables.append(table)
    out["assets"] = tables
    out["policies"] = {
        **{n: p for n, p in snapshot.policies.items() if n not in policies},
        **raw.get("policies", {}),
    }
    return out


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
