"""The management API's live channels: ``[[channels]]`` tables kept in the catalog, judged among
everything else the server has (a looped channel names an asset, a key id a catalog key); ingest
secrets are never shown."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from origin.service import http
from origin.service.catalog.errors import Conflict, Missing
from origin.service.catalog.guard import (
    Invalid,
    applied,
    body_of,
    catalog_of,
    guarded,
    json_response,
    toml_of,
)
from origin.service.catalog.merge import merged_raw
from origin.service.catalog.store import Snapshot
from origin.service.config import ConfigError, parse_config
from origin.service.served import STATE


def _channel_json(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    shown = {**spec, "name": name}
    if "ingest_secret" in shown and shown["ingest_secret"] != "generate":
        shown["ingest_secret"] = "(set, not shown)"
    return shown


def _check_channel(request: web.Request, name: str, spec: dict[str, Any], snap: Snapshot) -> None:
    """Judge ``spec`` as a ``[[channels]]`` table among everything else the server has (a
    looped channel names an asset; a key id, a catalog key)."""
    if "key" in spec or "key_file" in spec:
        field = "key" if "key" in spec else "key_file"
        raise Invalid(field, "content keys are made with POST /api/v1/keys, named by key_id")
    kid = spec.get("key_id")
    if isinstance(kid, str) and kid.lower() not in snap.keys:
        raise Invalid("key_id", "no such content key (POST /api/v1/keys makes one)")
    candidate = dataclasses.replace(snap, channels={**snap.channels, name: spec})
    kms = request.app[STATE].current.config.server.kms
    raw = merged_raw(toml_of(request), candidate, kms)
    index = next(i for i, c in enumerate(raw["channels"]) if c.get("name") == name)
    path = request.app[STATE].current.config.path
    assert path is not None
    try:
        parse_config(raw, base=path.parent, source=None)
    except ConfigError as e:
        prefix = f"channels[{index}]"
        mine = [p for p in e.problems if p.startswith(prefix)] or e.problems
        where, _, reason = mine[0].partition(": ")
        raise Invalid(where.removeprefix(prefix).lstrip(".") or "body", reason) from None


@guarded
async def list_channels(request: web.Request) -> web.StreamResponse:
    _, snap = await catalog_of(request)
    shown = [_channel_json(n, s) for n, s in snap.channels.items()]
    return json_response(200, {"channels": shown})


@guarded
async def get_channel(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    _, snap = await catalog_of(request)
    if name not in snap.channels:
        raise Missing(f"no channel {name!r} in the catalog")
    return json_response(200, _channel_json(name, snap.channels[name]))


@guarded
async def put_channel(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    body = await body_of(request)
    if body.pop("name", name) != name:
        raise Invalid("name", "differs from the URL's")
    raw = toml_of(request)
    if name in {c.get("name") for c in raw.get("channels", []) if isinstance(c, dict)}:
        raise Conflict(f"channel {name!r} is defined in the config file (read-only)")
    catalog, snap = await catalog_of(request)
    _check_channel(request, name, body, snap)
    created = await catalog.put_channel(name, body)
    await applied(request)
    return json_response(201 if created else 200, _channel_json(name, body))


@guarded
async def delete_channel(request: web.Request) -> web.StreamResponse:
    catalog, _ = await catalog_of(request)
    await catalog.delete_channel(request.match_info["name"])
    await applied(request)
    return web.Response(status=204, headers=http.cache_headers(http.NO_STORE))
