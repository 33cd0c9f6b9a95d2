"""The management API's plumbing: the admin-key guard that turns the catalog's and the
checker's errors into exact statuses (400/401/404/409/422/503, JSON with the field), request
bodies, and this process's catalog link and reloader."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from origin.service import http
from origin.service.catalog.errors import CatalogError, Conflict, Missing, Unavailable
from origin.service.catalog.store import Catalog, Snapshot
from origin.service.catalog.sync import Link
from origin.service.config import read_toml
from origin.service.reload import Reloader
from origin.service.served import STATE

PREFIX = "/api/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Invalid(Exception):
    """A request body that is not what the API takes: 422 with the field, 400 for not JSON."""

    def __init__(self, field: str, reason: str, status: int = 422) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status


def json_response(status: int, body: object) -> web.Response:
    return web.json_response(body, status=status, headers=http.cache_headers(http.NO_STORE))


def error(status: int, message: str, field: str | None = None) -> web.Response:
    body: dict[str, object] = {"error": message}
    if field is not None:
        body["field"] = field
    return json_response(status, body)


def process_link(app: web.Application) -> tuple[Link, Reloader]:
    """This process's catalog link and reloader (made here when the app runs without
    ``origin serve``, as in the handler tests)."""
    from origin.service.app import follow_config  # noqa: PLC0415 - the app imports this module

    live = app[STATE]
    config = live.current.config
    assert config.catalog is not None and config.path is not None
    if live.catalog is None:
        live.catalog = Link(config.catalog, live)
    if live.reloader is None:
        live.reloader = Reloader(
            live,
            config.path,
            snapshot=live.catalog.snapshot,
            on_swap=lambda s: follow_config(app, s),
        )
    return live.catalog, live.reloader


def guarded(handler: Handler) -> Handler:
    async def run(request: web.Request) -> web.StreamResponse:
        live = request.app[STATE]
        catalog = live.current.config.catalog
        sent = request.headers.get("Authorization", "")
        scheme, _, token = sent.partition(" ")
        expected = catalog.admin_key if catalog is not None else None
        if (
            expected is None
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(token.strip().encode(), expected.encode())
        ):
            resp = error(401, "an admin key is needed: Authorization: Bearer <admin key>")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="origin management"'
            return resp
        try:
            return await handler(request)
        except Invalid as e:
            return error(e.status, e.reason, e.field)
        except Missing as e:
            return error(404, str(e))
        except Conflict as e:
            return error(409, str(e))
        except Unavailable as e:
            return error(503, str(e))
        except CatalogError as e:
            return error(409, str(e))

    return run


async def body_of(request: web.Request) -> dict[str, Any]:
    try:
        raw = await request.read()
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise Invalid("body", "not valid JSON", 400) from None
    if not isinstance(body, dict):
        raise Invalid("body", "must be a JSON object", 400)
    return body


async def applied(request: web.Request) -> Snapshot:
    """After a write: reload this node now (so the answer is already true here)."""
    link, reloader = process_link(request.app)
    await reloader.reload()
    return await link.snapshot()


async def catalog_of(request: web.Request) -> tuple[Catalog, Snapshot]:
    link, _ = process_link(request.app)
    return await link.catalog(), await link.snapshot()


def toml_of(request: web.Request) -> dict[str, Any]:
    path = request.app[STATE].current.config.path
    assert path is not None
    return read_toml(path)
