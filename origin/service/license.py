"""Key delivery: the raw 16-byte keys of HLS (``/key?kid=``, AES-128 and SAMPLE-AES identity)
and W3C ClearKey licenses for Common Encryption (``POST /clearkey``), behind the same content
key authorization policies, refusing alike: 400 malformed, 401 no or bad token, 403 refused by
the policy, 404 unknown key."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from origin.core import drm, urls
from origin.core.crypto.envelope import EnvelopeError
from origin.core.errors import NotFoundError
from origin.core.urls import UrlError
from origin.service import auth, fastpath, http, metrics
from origin.service.live.channels import CHANNELS
from origin.service.logs import REQUESTS, clean
from origin.service.served import STATE
from origin.service.state import ContentKey, State, content_key

CLEARKEY_PATH = "/clearkey"
CT_JSON = "application/json"


def _closing(resp: web.Response) -> web.Response:
    resp.force_close()  # the rest of the body is still on the wire: the connection is spent
    return resp


async def _read_body(request: web.Request, state: State) -> bytes | web.Response:
    """The request body within the head's deadline, or the response that ends the request."""
    try:
        async with asyncio.timeout(state.config.server.header_timeout):
            return await request.read()
    except TimeoutError:
        REQUESTS.info("key request body from %s not sent in time", clean(request.remote))
        return _closing(http.error_response(408, "request timeout: the body did not arrive"))
    except web.HTTPRequestEntityTooLarge:
        return _closing(http.error_response(413, "request body too large"))
    except (ConnectionResetError, HttpProcessingError):
        # The client went away (or cut its body short): not a server error, and nothing can
        # be sent on a closed connection; 400 if anything can still be.
        REQUESTS.info("key request body from %s incomplete", clean(request.remote))
        return _closing(http.error_response(400, "bad request: the body is incomplete"))


ENVELOPES_KEPT = 4096  # opened envelopes per process (each a key schedule: ~1 KB)


def _envelopes(request: web.Request, state: State) -> dict[uuid.UUID, ContentKey] | web.Response:
    """The keys of the request's ``edk`` envelopes by key id (none when this node has no
    master keys: it serves what it knows), or the refusal: 400 for what is not an envelope,
    403 for one that does not open (tampered, another master) or names an unknown policy."""
    tokens = request.query.getall(urls.EDK_PARAM, [])
    kms = state.config.server.kms
    if not tokens or kms is None:
        return {}
    out = {}
    for token in tokens:
        key = state.envelopes.get(token)
        if key is None:
            try:
                opened = kms.open(token)
            except EnvelopeError as e:
                if e.malformed:
                    return http.error_response(400, f"bad request: {e}")
                metrics.RECORD.key_refused(403, "envelope")
                return http.error_response(403, f"refused: {e}")
            if opened.policy is not None and opened.policy not in state.config.policies:
                metrics.RECORD.key_refused(403, "envelope policy")
                return http.error_response(
                    403, f"refused: the envelope's policy {opened.policy!r} is not known here"
                )
            key = content_key(state.config, opened.kid, opened.key, opened.policy)
            if len(state.envelopes) >= ENVELOPES_KEPT:
                state.envelopes.pop(next(iter(state.envelopes)))
            state.envelopes[token] = key
        out[key.kid] = key
    return out


def _authorize(
    request: web.Request, state: State, kid: uuid.UUID, opened: dict[uuid.UUID, ContentKey]
) -> tuple[ContentKey, float | None] | web.Response:
    """The key and how long the request's token trusts it, or the refusal."""
    key = opened.get(kid) or state.keys.get(kid) or request.app[CHANNELS].rotated_key(kid)
    locator = request.match_info.get("locator")
    if key is None or not state.config.published.key_allowed(str(kid), locator, time.time()):
        raise NotFoundError(f"no key {kid}" + (" under this locator" if locator else ""))
    until: float | None = None
    if key.policy is not None:
        decision = auth.decide(request, key.policy, kid, state.config.server.trusted_proxies)
        if not decision.allowed:
            metrics.RECORD.key_refused(decision.status, decision.reason)
            return auth.refusal_response(decision)
        until = decision.until
    return key, until


def _allow_replay(request: web.Request, state: State, key: ContentKey, until: float | None) -> None:
    if str(key.kid) in state.config.published.keys:
        return  # a catalog key: its locator is checked on every request (revocation is at once)
    if key.policy is None or key.policy.options[0].open:
        fastpath.allow(request)  # handed to anyone who asks, until a reload
    elif until is not None:
        # Allowed by its token alone: the same request (the token is part of the fast path's
        # key, in the query or in Authorization) is allowed until the token's trust ends.
        fastpath.allow(request, until=until)


async def key_service(request: web.Request) -> web.StreamResponse:
    """Key delivery: the 16 raw key bytes for ``?kid=``, when the key's policy allows it."""
    state = request.app[STATE].current
    kid_text = request.query.get("kid")
    if kid_text is None:
        raise UrlError("missing kid")
    try:
        kid = uuid.UUID(kid_text.strip("{}"))
    except ValueError:
        raise UrlError("kid is not a UUID") from None
    opened = _envelopes(request, state)
    if isinstance(opened, web.Response):
        return opened
    authorized = _authorize(request, state, kid, opened)
    if isinstance(authorized, web.Response):
        return authorized
    key, until = authorized
    if request.method == "POST":
        # AMS clients POST an empty body; drain whatever came, within the head's deadline.
        body = await _read_body(request, state)
        if isinstance(body, web.Response):
            return body
    _allow_replay(request, state, key, until)
    return web.Response(
        body=key.key,
        content_type=http.CT_KEY,
        headers={**http.cache_headers(http.NO_STORE), "Pragma": "no-cache"},
    )


async def clearkey_license(request: web.Request) -> web.StreamResponse:
    """A W3C ClearKey license: the JWK set of the requested key ids, each authorized by its
    key's policy (one refusal refuses the request)."""
    state = request.app[STATE].current
    body = await _read_body(request, state)
    if isinstance(body, web.Response):
        return body
    try:
        kids = drm.parse_license_request(body)
    except drm.LicenseRequestError as e:
        return http.error_response(400, f"bad request: {e}")
    opened = _envelopes(request, state)
    if isinstance(opened, web.Response):
        return opened
    keys: list[tuple[uuid.UUID, bytes]] = []
    for kid in dict.fromkeys(kids):
        authorized = _authorize(request, state, kid, opened)
        if isinstance(authorized, web.Response):
            return authorized
        keys.append((kid, authorized[0].key))
    return web.Response(
        body=drm.license_response(keys),
        content_type=CT_JSON,
        headers={**http.cache_headers(http.NO_STORE), "Pragma": "no-cache"},
    )


def setup_keys(app: web.Application) -> None:
    # Under a streaming locator too: a catalog asset's keys are served only there.
    for prefix in ("", "/{locator}"):
        app.router.add_get(f"{prefix}/key", key_service)
        app.router.add_post(f"{prefix}/key", key_service)
        app.router.add_post(f"{prefix}{CLEARKEY_PATH}", clearkey_license)
