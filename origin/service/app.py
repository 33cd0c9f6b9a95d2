"""The aiohttp application: routes, authorizes, caches and writes. No media logic here."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from origin.core import pipeline, urls
from origin.core.errors import MediaError, NotFoundError
from origin.core.urls import Format, Protocol, UrlError
from origin.service import auth, delivery, fastpath, http, metrics
from origin.service.cache import ENTRY_OVERHEAD, ROUTE_CACHE_BYTES, ByteLRU
from origin.service.catalog.view import LOCATOR_MISS_MAX_AGE, Locator
from origin.service.cors import Cors
from origin.service.license import setup_keys
from origin.service.live.channels import CHANNELS, setup_channels
from origin.service.live.ingest import expect, ingest
from origin.service.live.player import TIME_PATH, clock, live_stream
from origin.service.logs import (
    REQUEST_ID,
    REQUESTS,
    AccessFormat,
    access_line,
    clean,
    new_request_id,
)
from origin.service.player import setup_player
from origin.service.proxy.route import PROXY, setup_proxy
from origin.service.served import INFLIGHT, ROUTES, STATE, Live
from origin.service.state import Asset, State
from origin.service.status import channels_status, gauges, health, metrics_page, ready
from origin.service.storage import SourceUnavailable, read_spans
from origin.service.tokens.verified import VERIFIED

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_MANIFEST_TYPES = {
    Protocol.HLS: http.CT_M3U8,
    Protocol.DASH: http.CT_MPD,
    Protocol.SMOOTH: http.CT_SMOOTH,
}


class AccessLogger(AbstractAccessLogger):
    """Method, path, status, size, time (:func:`logs.access_line`)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        access_line(
            self.logger,
            request.remote,
            request.method,
            request.path,
            response.status,
            response.body_length,
            time,
            request.headers.get("User-Agent"),
            response.headers.get(REQUEST_ID),
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


_REQUEST_ID_OK = re.compile(r"[!-~]{1,128}")  # visible ASCII, bounded: it is echoed and logged


@web.middleware
async def request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Echo a client's X-Request-Id (a sane one), or make one when access lines are JSON."""
    given = request.headers.get(REQUEST_ID)
    rid = given if given is not None and _REQUEST_ID_OK.fullmatch(given) else None
    if rid is None and AccessFormat.json:
        rid = new_request_id()
    response = await handler(request)
    if rid is not None:
        response.headers[REQUEST_ID] = rid
    return response


@web.middleware
async def url_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """414 for a path longer than ``server.max_url_bytes``, before anything parses or keeps it.

    The query does not count: it carries viewers' tokens, whose size the policies bound."""
    limit = request.app[STATE].current.config.server.max_url_bytes
    path = request.raw_path.partition("?")[0]
    if len(path) > limit:
        REQUESTS.info("path of %d bytes from %s refused (414)", len(path), clean(request.remote))
        return http.error_response(414, f"URI too long: the path is over {limit} bytes")
    return await handler(request)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a short, exact status; nothing internal reaches the client."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status >= 400 and not e.text:
            return http.error_response(e.status, e.reason)
        raise
    except UrlError as e:
        return http.error_response(400, f"bad request: {e}")
    except NotFoundError as e:
        return http.error_response(404, f"not found: {e}")
    except pipeline.Refused as e:
        return http.error_response(403, f"forbidden: {e}")
    except MediaError as e:
        REQUESTS.error("media error on %s: %s", clean(request.path), e)
        reason = f": {e.public}" if isinstance(e, SourceUnavailable) else ""
        return http.error_response(503, f"source media unavailable{reason}")
    except Exception:
        REQUESTS.exception("internal error on %s", clean(request.path))
        return http.error_response(500, "internal error")


async def _asset(state: State, name: str) -> Asset:
    asset = await state.asset(name)
    if asset is None:
        if name in state.refused:
            raise NotFoundError(f"asset {name!r} could not be loaded")
        raise NotFoundError(f"no asset {name!r}")
    return asset


def _route(request: web.Request) -> urls.Path | None:
    routes = request.app[ROUTES]
    route = routes.get(request.path)
    if route is None:
        route = urls.parse_path(request.path)  # raises UrlError (400): not cached
        if route is not None:  # None (404) is not cached either
            routes.put(request.path, route, cost=len(request.path) + ENTRY_OVERHEAD)
    return route


async def stream(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE].current
    route = _route(request)
    if route is None:
        raise NotFoundError("no such resource")
    if route.live:
        return await live_stream(request, state, route)
    published = _published(state, route)
    if isinstance(published, web.Response):
        return published
    asset = await _asset(state, route.asset)
    protocol = urls.protocol_of(route.options.format)
    refusal = delivery.refusal(asset.config, protocol)
    if refusal:
        return http.error_response(403, refusal)
    srv = state.config.server
    if isinstance(route, urls.FragmentPath):
        return await _fragment(request, state, asset, route, published)
    if asset.config.require_token:
        policy = state.config.policies[asset.config.policy or ""]
        decision = auth.decide(request, policy, asset.config.key_id, srv.trusted_proxies)
        if not decision.allowed:
            return auth.refusal_response(decision)
    enc = delivery.encrypting(state, asset.config, route.options)
    token = auth.request_token(request)
    query = token.query() if token else ""
    # A response that embeds a viewer's token, or that only an authorized viewer may see, must
    # never be handed to another viewer by a shared cache.
    private = query or asset.config.require_token
    manifest_cc = (
        http.PRIVATE if private else f"public, max-age={_max_age(srv.manifest_max_age, published)}"
    )
    # Gated: the segment URLs it lists carry a signature of their own (never cached). An HLS
    # master lists playlists, not segments: it needs none.
    signature = ""
    lists_segments = not isinstance(route, urls.MasterPath) or protocol is not Protocol.HLS
    if asset.config.require_token and lists_segments:
        lifetime = srv.signed_url_lifetime + math.ceil(asset.presentation.duration)
        signature = delivery.signed_query(state, request.path, lifetime)
    # A manifest that names the request's host (a license URL) is cached per host.
    host = request.host if delivery.host_dependent(state, enc, protocol) else ""
    scheme = enc.scheme.value if enc else ""
    etag = http.make_etag(
        asset.version, request.path, srv.base_url or "", query, signature, host, scheme
    )
    cache_key = f"{host}\n{request.path}" if host else request.path
    body = None if query or signature else state.manifests.get(cache_key)
    if body is None:
        try:
            text = _manifest(state, request, asset, route, enc, query=query, signature=signature)
            body = text.encode()
        except pipeline.UnsupportedError as e:
            return http.error_response(409, str(e))
        if not query and not signature:
            cost = len(body) + len(cache_key) + ENTRY_OVERHEAD
            state.manifests.put(cache_key, body, cost=cost)
    if not private:
        # The same bytes for every viewer until a reload (or the end of its locator).
        fastpath.allow(request, until=published.ends_at if published else None)
    return http.entity_response(
        request,
        body,
        content_type=_MANIFEST_TYPES[protocol],
        etag=etag,
        cache_control=manifest_cc,
        last_modified=asset.last_modified,
    )


def _manifest(
    state: State,
    request: web.Request,
    asset: Asset,
    route: urls.MasterPath | urls.MediaPath,
    enc: delivery.Encrypting | None,
    *,
    query: str = "",
    signature: str = "",
) -> str:
    """Build a manifest; ``query`` (a propagated token) goes on every URL it writes,
    ``signature`` (signed segment URLs) on every segment URL."""
    pres = asset.presentation
    base = delivery.base_prefix(state, request)
    iv = asset.config.iv
    # A catalog asset's keys are served under its locator (/{locator}/key): one folder up.
    published = route.locator if asset.config.name in state.config.published.assets else None
    up = 1 if published else 0
    if isinstance(route, urls.MasterPath):
        protocol = urls.protocol_of(route.options.format)
        common = enc is not None and enc.scheme.common
        sig = delivery.signalling(state, request, enc, query, published) if enc and common else None
        if protocol is Protocol.SMOOTH:
            protection = sig.smooth_protection() if sig else None
            return pipeline.smooth_manifest(
                pres, signature=signature, options=route.options, protection=protection
            )
        if protocol is Protocol.DASH:
            cps = sig.content_protection() if sig else ()
            return pipeline.dash_manifest(
                pres, route.options, base=base, signature=signature, protection=cps
            )
        depth = 2 if route.locator else 1
        keys = delivery.hls_keys(state, enc, depth - up, iv)
        return pipeline.master_playlist(
            pres, route.options, base=base, query=query, session_keys=keys, common=common
        )
    keys = delivery.hls_keys(state, enc, urls.playlist_depth(route) - up, iv)
    return pipeline.media_playlist(
        pres,
        route.track,
        route.rendition,
        route.options,
        key_uri=keys[0].uri if keys else None,
        iv=iv,
        scheme=enc.scheme if enc else pipeline.Scheme.AES_128,
        extra_keys=keys[1:],
        base=base,
        query=query,
        segment_query=query if asset.config.token_segments else "",
        signature=signature,
    )


async def _clear_segment(
    request: web.Request, state: State, asset: Asset, ref: pipeline.SegmentRef
) -> bytes:
    """The clear segment from the LRU, or built once even under concurrent misses."""
    cache_key = (asset.version, ref)
    data = state.segments.get(cache_key)
    if data is not None:
        return data
    inflight = request.app[INFLIGHT]
    pending = inflight.get(cache_key)
    if pending is not None:
        return await asyncio.shield(pending)
    fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    inflight[cache_key] = fut
    try:
        started = time.perf_counter()
        pres = asset.presentation
        plan = pipeline.plan_reads(pres, ref)
        chunks = await read_spans(asset.files, plan.spans)
        data = pipeline.build_segment(pres, ref, plan, chunks)
        fmt = ref.format.value if ref.format is not None else "smooth"
        metrics.observe_build(fmt, time.perf_counter() - started)
        state.segments.put(cache_key, data)
        fut.set_result(data)
        return data
    except BaseException as e:
        fut.set_exception(e)
        fut.exception()  # retrieved: waiters re-raise it, nobody logs "never retrieved"
        raise
    finally:
        del inflight[cache_key]


def _published(state: State, route: urls.Path) -> Locator | web.Response | None:
    """A catalog asset streams only through a locator valid now (that locator); others as the
    config says (None). An unknown, not yet valid, expired or deleted one is a 404 that a CDN
    keeps only briefly."""
    published = state.config.published
    if route.asset not in published.assets:
        return None
    loc = published.locator_for(route.locator, route.asset, time.time())
    if loc is None:
        return http.error_response(
            404,
            f"no asset {route.asset!r} under this locator",
            {"Cache-Control": f"public, max-age={LOCATOR_MISS_MAX_AGE}"},
        )
    return loc


def _max_age(configured: int, loc: Locator | None) -> int:
    """A cached response lives no longer than the locator it was published under."""
    if loc is None or loc.ends_at is None:
        return configured
    return max(0, min(configured, int(loc.ends_at - time.time())))


async def _fragment(
    request: web.Request,
    state: State,
    asset: Asset,
    route: urls.FragmentPath,
    published: Locator | None = None,
) -> web.StreamResponse:
    if asset.config.require_token and (refused := delivery.segment_refusal(state, request)):
        return refused
    pres = asset.presentation
    ref = pipeline.resolve(pres, route)
    enc = delivery.encrypting(state, asset.config, route.options)
    body: bytes | bytearray | pipeline.Encrypted | pipeline.Protected
    iv = b""
    if enc is not None and enc.scheme.common:
        iv = enc.scheme.value.encode()
        r = pres.rendition(ref.track, ref.rendition)
        if ref.index == urls.INIT:
            body = delivery.protected_init(
                state, request, enc, r.track, edit=r.edit, iv=asset.config.iv
            )
        else:
            clear = await _clear_segment(request, state, asset, ref)
            body = delivery.protected_fragment(
                state,
                (asset.version, ref),
                ref,
                clear,
                enc=enc,
                track=r.track,
                sets=asset.sets_of(r.id, r.track),
                names=(asset.config.name,),
                iv=asset.config.iv,
            )
    else:
        clear = await _clear_segment(request, state, asset, ref)
        body = clear
        if enc is not None:  # encrypted as it is written: a slice at a time when it is big
            body, iv = pipeline.encrypted_body(ref, clear, enc.key.cipher, asset.config.iv)
    if route.options.format is Format.HLS_TS:
        ctype = http.CT_TS
    else:  # fMP4 for HLS, DASH and Smooth
        ctype = http.CT_AUDIO_MP4 if route.track == "audio" else http.CT_VIDEO_MP4
    srv = state.config.server
    return http.entity_response(
        request,
        body,
        content_type=ctype,
        etag=http.make_etag(asset.version, request.path, iv.hex()),
        cache_control=f"public, max-age={_max_age(srv.segment_max_age, published)}",
        last_modified=asset.last_modified,
    )


async def _ingest(request: web.Request) -> web.StreamResponse:
    return await ingest(request, request.app[STATE])


async def _ingest_expect(request: web.Request) -> web.StreamResponse | None:
    return await expect(request, request.app[STATE])


async def _close_state(app: web.Application) -> AsyncIterator[None]:
    """The app owns the state it serves: on cleanup, the files of the one current then close (a
    reload closes those of the states it replaced)."""
    yield
    app[STATE].current.close()


def follow_config(app: web.Application, state: State) -> None:
    """After a reload: settings read outside the state follow the new config."""
    if PROXY in app:  # the route exists from start-up; its settings follow the config
        app[PROXY].config = state.config.proxy
    app[CHANNELS].sync(state)  # channels keep their window across reloads
    VERIFIED.clear()  # verified tokens: the policies may have changed


def build_app(state: State) -> web.Application:
    """The application serving ``state``; it closes the state's files on cleanup."""
    cors = Cors(state.config.server.cors_origins, state.config.server.cors_max_age)
    app = web.Application(
        middlewares=[request_id, cors.middleware, url_limit, errors], client_max_size=64 * 1024
    )
    app[STATE] = Live(state)
    app[INFLIGHT] = {}
    app[ROUTES] = ByteLRU(ROUTE_CACHE_BYTES)
    fastpath.setup(app, lambda: app[STATE].current.answers)
    setup_channels(app, app[STATE])
    app.router.add_get("/healthz", health)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/metrics", metrics_page)
    app.cleanup_ctx.append(lambda a: metrics.run_flushing(a, gauges(a)))
    app.router.add_get("/channels", channels_status)
    app.router.add_get(TIME_PATH, clock)
    setup_keys(app)
    setup_proxy(app, state.config.proxy)  # before the catch-all route
    if state.config.catalog is not None:
        from origin.service.catalog.api import setup_api  # noqa: PLC0415 - SQLAlchemy: only here

        setup_api(app)
    if state.config.server.player:
        setup_player(app)
    app.router.add_get("/{tail:.*}", stream)
    ingest_path = r"/{channel:[^/]+}.isml/{stream:[Ss]treams\(.*}"
    app.router.add_post(ingest_path, _ingest, expect_handler=_ingest_expect)
    app.router.add_put(ingest_path, _ingest, expect_handler=_ingest_expect)
    app.cleanup_ctx.append(_close_state)
    return app
