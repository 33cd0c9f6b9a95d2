"""The management API (``/api/v1/…``, JSON), with AMS v3's nouns: assets, content keys,
content key authorization policies and streaming locators.

It exists only where ``[catalog]`` is configured, and every request needs ``Authorization:
Bearer <admin key>`` (401 otherwise, nothing changed; see :mod:`.guard`). Bodies are the JSON of
the config's tables, judged by the config's own checker: malformed JSON is 400, a field that is
wrong 422 with the field and the reason, an unknown name 404, one that exists (or is still in
use) 409, a database that cannot be reached 503. A change is applied on this node before the
answer (a reload), and on the others within their poll interval. Content keys are never
returned.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from origin.core import urls
from origin.service import http
from origin.service.catalog import channels_api, openapi, storage_api
from origin.service.catalog.errors import Conflict, Missing
from origin.service.catalog.guard import (
    PREFIX,
    Handler,
    Invalid,
    applied,
    body_of,
    catalog_of,
    guarded,
    json_response,
    toml_of,
)
from origin.service.catalog.merge import toml_names
from origin.service.catalog.store import Snapshot
from origin.service.catalog.view import Locator
from origin.service.config import ConfigError, parse_config
from origin.service.keytext import parse_key
from origin.service.served import STATE

KEY_BYTES = 16

# ---- assets ----------------------------------------------------------------------------------


def _check_asset(
    request: web.Request, name: str, spec: dict[str, Any], snap: Snapshot
) -> dict[str, Any]:
    """``spec`` as stored, once the config's checker accepts it as an ``[[assets]]`` table."""
    if "key" in spec or "key_file" in spec:
        field = "key" if "key" in spec else "key_file"
        raise Invalid(field, "content keys are made with POST /api/v1/keys, named by key_id")
    table = {**spec, "name": name}
    kid = spec.get("key_id")
    if isinstance(kid, str):
        stored = snap.keys.get(kid.lower())
        if stored is None:
            raise Invalid("key_id", "no such content key (POST /api/v1/keys makes one)")
        kms = request.app[STATE].current.config.server.kms
        assert kms is not None  # a catalog's config always has its master keys
        table["key"] = kms.open(stored.envelope).key.hex()
        spec = {**spec, "key_id": kid.lower()}
    raw = toml_of(request)
    policies = {**snap.policies, **raw.get("policies", {})}
    path = request.app[STATE].current.config.path
    assert path is not None
    try:
        parsed = parse_config(
            {"assets": [table], "policies": policies}, base=path.parent, source=None
        )
    except ConfigError as e:
        raise _field_error(e.problems[0]) from None
    if parsed.file_problems:
        raise _field_error(parsed.file_problems[0])
    return spec


def _field_error(problem: str) -> Invalid:
    where, _, reason = problem.partition(": ")
    field = where.removeprefix("assets[0].").removeprefix("assets[0]")
    return Invalid(field or "body", reason or problem)


def _asset_json(request: web.Request, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    state = request.app[STATE].current
    if name in state.assets:
        status = {"state": "loaded"}
    elif name in state.pending:
        status = {"state": "indexed on its first request"}
    elif name in state.refused:
        status = {"state": "refused", "reason": state.refused[name]}
    else:
        status = {"state": "not loaded yet"}
    return {"name": name, **spec, **status}


@guarded
async def list_assets(request: web.Request) -> web.StreamResponse:
    _, snap = await catalog_of(request)
    out = [_asset_json(request, n, s) for n, s in snap.assets.items()]
    return json_response(200, {"assets": out})


@guarded
async def create_asset(request: web.Request) -> web.StreamResponse:
    body = await body_of(request)
    name = body.pop("name", None)
    if not isinstance(name, str) or not name:
        raise Invalid("name", "is required (a string)")
    catalog, snap = await catalog_of(request)
    if name in toml_names(toml_of(request))[0]:
        raise Conflict(f"asset {name!r} is defined in the config file (read-only)")
    if name in snap.assets:
        raise Conflict(f"asset {name!r} exists")
    spec = _check_asset(request, name, body, snap)
    await catalog.put_asset(name, spec, create=True)
    await applied(request)
    return json_response(201, _asset_json(request, name, spec))


@guarded
async def get_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    _, snap = await catalog_of(request)
    if name not in snap.assets:
        raise Missing(f"no asset {name!r} in the catalog")
    return json_response(200, _asset_json(request, name, snap.assets[name]))


@guarded
async def replace_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    body = await body_of(request)
    if body.pop("name", name) != name:
        raise Invalid("name", "differs from the URL's (an asset is not renamed)")
    catalog, snap = await catalog_of(request)
    if name not in snap.assets:
        raise Missing(f"no asset {name!r} in the catalog")
    spec = _check_asset(request, name, body, snap)
    await catalog.put_asset(name, spec, create=False)
    await applied(request)
    return json_response(200, _asset_json(request, name, spec))


@guarded
async def delete_asset(request: web.Request) -> web.StreamResponse:
    catalog, _ = await catalog_of(request)
    await catalog.delete_asset(request.match_info["name"])
    await applied(request)
    return web.Response(status=204, headers=http.cache_headers(http.NO_STORE))


# ---- content keys ----------------------------------------------------------------------------


def _key_json(kid: str, master_id: str, created_at: float) -> dict[str, Any]:
    return {"key_id": kid, "master_key": master_id, "created_at": created_at}


@guarded
async def create_key(request: web.Request) -> web.StreamResponse:
    body = await body_of(request)
    unknown = sorted(set(body) - {"key_id", "key"})
    if unknown:
        raise Invalid(unknown[0], "unknown field")
    try:
        kid = uuid.UUID(str(body["key_id"])) if "key_id" in body else uuid.uuid4()
    except ValueError:
        raise Invalid("key_id", "must be a UUID") from None
    if "key" in body:  # imported (hex or base64), else made here
        key = parse_key(str(body["key"])) if isinstance(body["key"], str) else None
        if key is None or len(key) != KEY_BYTES:
            raise Invalid("key", "must be 16 bytes in hex or base64 (value not shown)")
    else:
        key = os.urandom(KEY_BYTES)
    kms = request.app[STATE].current.config.server.kms
    assert kms is not None
    catalog, _ = await catalog_of(request)
    envelope = kms.seal(kid, key, None)
    await catalog.add_key(str(kid), envelope, kms.current)
    await applied(request)
    return json_response(201, _key_json(str(kid), kms.current, time.time()))


@guarded
async def list_keys(request: web.Request) -> web.StreamResponse:
    _, snap = await catalog_of(request)
    keys = [_key_json(k.kid, k.master_id, k.created_at) for k in snap.keys.values()]
    return json_response(200, {"keys": keys})


@guarded
async def get_key(request: web.Request) -> web.StreamResponse:
    _, snap = await catalog_of(request)
    found = snap.keys.get(request.match_info["kid"].lower())
    if found is None:
        raise Missing(f"no key {request.match_info['kid']}")
    return json_response(200, _key_json(found.kid, found.master_id, found.created_at))


@guarded
async def delete_key(request: web.Request) -> web.StreamResponse:
    kid = request.match_info["kid"].lower()
    catalog, _ = await catalog_of(request)

    def user(assets: dict[str, dict[str, Any]]) -> str | None:
        return next((n for n, s in assets.items() if s.get("key_id") == kid), None)

    await catalog.delete_key(kid, user)
    await applied(request)
    return web.Response(status=204, headers=http.cache_headers(http.NO_STORE))


@guarded
async def reseal_keys(request: web.Request) -> web.StreamResponse:
    """Master key rotation: every content key sealed again with the current master key."""
    kms = request.app[STATE].current.config.server.kms
    assert kms is not None
    catalog, _ = await catalog_of(request)

    def reseal(stored: Any) -> tuple[str, str]:
        opened = kms.open(stored.envelope)
        return kms.seal(opened.kid, opened.key, None), kms.current

    count = await catalog.reseal_keys(reseal)
    await applied(request)
    return json_response(200, {"resealed": count, "master_key": kms.current})


# ---- policies --------------------------------------------------------------------------------


@guarded
async def put_policy(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    body = await body_of(request)
    if name in toml_names(toml_of(request))[1]:
        raise Conflict(f"policy {name!r} is defined in the config file (read-only)")
    path = request.app[STATE].current.config.path
    assert path is not None
    try:
        parse_config({"policies": {name: body}}, base=path.parent, source=None)
    except ConfigError as e:
        where, _, reason = e.problems[0].partition(": ")
        raise Invalid(where.removeprefix(f"policies.{name}.") or "body", reason) from None
    catalog, _ = await catalog_of(request)
    created = await catalog.put_policy(name, body)
    await applied(request)
    return json_response(201 if created else 200, {"name": name, **body})


@guarded
async def list_policies(request: web.Request) -> web.StreamResponse:
    _, snap = await catalog_of(request)
    return json_response(200, {"policies": [{"name": n, **p} for n, p in snap.policies.items()]})


@guarded
async def get_policy(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    _, snap = await catalog_of(request)
    if name not in snap.policies:
        raise Missing(f"no policy {name!r} in the catalog")
    return json_response(200, {"name": name, **snap.policies[name]})


@guarded
async def delete_policy(request: web.Request) -> web.StreamResponse:
    catalog, _ = await catalog_of(request)
    await catalog.delete_policy(request.match_info["name"])
    await applied(request)
    return web.Response(status=204, headers=http.cache_headers(http.NO_STORE))


# ---- streaming locators ----------------------------------------------------------------------


def _time(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise Invalid(name, "must be Unix seconds (a number) or null")
    return float(value)


def _locator_json(request: web.Request, loc: Locator) -> dict[str, Any]:
    server = request.app[STATE].current.config.server
    root = (server.base_url or f"{request.scheme}://{request.host}").rstrip("/")
    base = f"{root}/{loc.id}/"
    return {
        **loc.json(),
        "valid_now": loc.valid_at(time.time()),
        "urls": {
            "hls": base + urls.master_uri(loc.asset, urls.Format.HLS_TS),
            "hls_fmp4": base + urls.master_uri(loc.asset, urls.Format.HLS_CMAF),
            "dash": base + urls.master_uri(loc.asset, urls.Format.DASH_CSF),
            "smooth": base + urls.master_uri(loc.asset, None),
        },
    }


@guarded
async def create_locator(request: web.Request) -> web.StreamResponse:
    body = await body_of(request)
    unknown = sorted(set(body) - {"id", "asset", "starts_at", "ends_at"})
    if unknown:
        raise Invalid(unknown[0], "unknown field")
    asset = body.get("asset")
    if not isinstance(asset, str) or not asset:
        raise Invalid("asset", "is required (an asset's name)")
    try:
        locator_id = str(uuid.UUID(str(body["id"]))) if "id" in body else str(uuid.uuid4())
    except ValueError:
        raise Invalid("id", "must be a UUID") from None
    starts, ends = _time(body, "starts_at"), _time(body, "ends_at")
    if starts is not None and ends is not None and ends <= starts:
        raise Invalid("ends_at", "must be after starts_at")
    loc = Locator(locator_id, asset, starts, ends, time.time())
    catalog, _ = await catalog_of(request)
    await catalog.add_locator(loc)
    await applied(request)
    return json_response(201, _locator_json(request, loc))


@guarded
async def list_locators(request: web.Request) -> web.StreamResponse:
    _, snap = await catalog_of(request)
    asset = request.query.get("asset")
    locs = [loc for loc in snap.locators if asset is None or loc.asset == asset]
    return json_response(200, {"locators": [_locator_json(request, loc) for loc in locs]})


@guarded
async def get_locator(request: web.Request) -> web.StreamResponse:
    _, snap = await catalog_of(request)
    wanted = request.match_info["id"].lower()
    found = next((loc for loc in snap.locators if loc.id == wanted), None)
    if found is None:
        raise Missing(f"no locator {request.match_info['id']}")
    return json_response(200, _locator_json(request, found))


@guarded
async def delete_locator(request: web.Request) -> web.StreamResponse:
    catalog, _ = await catalog_of(request)
    await catalog.delete_locator(request.match_info["id"].lower())
    await applied(request)
    return web.Response(status=204, headers=http.cache_headers(http.NO_STORE))


async def _close_link(app: web.Application) -> AsyncIterator[None]:
    yield
    link = app[STATE].catalog
    if link is not None:
        await link.close()


def setup_api(app: web.Application) -> None:
    """The management routes, before the catch-all route (only with a [catalog])."""
    app.cleanup_ctx.append(_close_link)
    handlers: dict[tuple[str, str], Handler] = {
        ("get", "/assets"): list_assets,
        ("post", "/assets"): create_asset,
        ("get", "/assets/{name}"): get_asset,
        ("put", "/assets/{name}"): replace_asset,
        ("delete", "/assets/{name}"): delete_asset,
        ("get", "/keys"): list_keys,
        ("post", "/keys"): create_key,
        ("post", "/keys/reseal"): reseal_keys,
        ("get", "/keys/{kid}"): get_key,
        ("delete", "/keys/{kid}"): delete_key,
        ("get", "/policies"): list_policies,
        ("get", "/policies/{name}"): get_policy,
        ("put", "/policies/{name}"): put_policy,
        ("delete", "/policies/{name}"): delete_policy,
        ("get", "/locators"): list_locators,
        ("post", "/locators"): create_locator,
        ("get", "/locators/{id}"): get_locator,
        ("delete", "/locators/{id}"): delete_locator,
        ("get", "/channels"): channels_api.list_channels,
        ("get", "/channels/{name}"): channels_api.get_channel,
        ("put", "/channels/{name}"): channels_api.put_channel,
        ("delete", "/channels/{name}"): channels_api.delete_channel,
        ("post", "/storage/encrypt"): storage_api.encrypt_source,
        ("get", "/storage/records"): storage_api.list_storage_records,
        ("post", "/storage/records"): storage_api.put_storage_record,
    }
    described = {(method, path) for method, path, *_ in openapi.ROUTES}
    assert described == set(handlers), "the OpenAPI table and the routes differ"
    for (method, path), handler in handlers.items():
        app.router.add_route(method.upper(), PREFIX + path, handler)
    app.router.add_get(f"{PREFIX}/openapi.json", describe)


async def describe(request: web.Request) -> web.StreamResponse:
    """The OpenAPI description: what the API offers, nothing of what it holds (no key)."""
    return json_response(200, openapi.document(PREFIX))
