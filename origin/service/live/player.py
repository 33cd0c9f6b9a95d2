"""What players get from a live channel (``/{channel}.isml/...``): manifests built from the
channel's current view, segments muxed (and encrypted) from it, and the clock DASH players sync to.

Caching, for players and CDNs: manifests are short-lived (half a segment), carry an ETag of the
view's version so a CDN revalidates with 304, and are built once per view; a segment never
changes once published (long max-age); a segment not there yet is a 404 a CDN keeps for one
second only; one that slid out of the window is a 410.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from aiohttp import web

from origin.core import pipeline, urls
from origin.core.errors import NotFoundError
from origin.core.live.model import ChannelView
from origin.core.urls import Format, Protocol
from origin.service import auth, delivery, fastpath, http
from origin.service.cache import ENTRY_OVERHEAD
from origin.service.live.channels import CHANNELS, LiveChannel
from origin.service.state import ContentKey, State

TIME_PATH = "/time"
_TYPES = {Protocol.HLS: http.CT_M3U8, Protocol.DASH: http.CT_MPD, Protocol.SMOOTH: http.CT_SMOOTH}


def _retry_soon(reason: str) -> web.Response:
    """404 that a CDN may keep for one second: the thing will exist soon."""
    return http.error_response(404, reason, {"Cache-Control": "public, max-age=1"})


def time_url(state: State, request: web.Request) -> str:
    """The absolute URL of the clock (dash.js resolves a relative one against the page)."""
    root = state.config.server.base_url or f"{request.scheme}://{request.host}"
    return root.rstrip("/") + TIME_PATH


async def clock(request: web.Request) -> web.StreamResponse:
    """The time, ISO 8601 in UTC to the millisecond (UTCTiming http-iso / http-xsdate)."""
    now = datetime.now(UTC)
    text = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    return web.Response(
        text=text, content_type="text/plain", headers=http.cache_headers(http.NO_STORE)
    )


async def live_stream(request: web.Request, state: State, route: urls.Path) -> web.StreamResponse:
    """A GET on ``/{channel}.isml/...``."""
    lc = request.app[CHANNELS].get(route.asset)
    if lc is None:
        raise NotFoundError(f"no channel {route.asset!r}")
    protocol = urls.protocol_of(route.options.format)
    refusal = delivery.refusal(lc.config, protocol, "channel")
    if refusal:
        return http.error_response(403, refusal)
    view = lc.index.view
    if view is None:
        return _retry_soon(f"channel {route.asset!r} has no stream yet: no encoder has sent one")
    if isinstance(route, urls.FragmentPath):
        return await _segment(request, state, lc, view, route)
    cfg = lc.config
    if cfg.require_token:
        policy = state.config.policies[cfg.policy or ""]
        decision = auth.decide(request, policy, cfg.key_id, state.config.server.trusted_proxies)
        if not decision.allowed:
            return auth.refusal_response(decision)
    key = delivery.content_key(state, lc.config, route.options, "channel")
    token = auth.request_token(request)
    query = token.query() if token else ""
    half = max(1, math.floor(view.segment_duration / 2))
    private = query or cfg.require_token
    cache_control = "private, max-age=1" if private else f"public, max-age={half}"
    if view.ended:
        cache_control = http.PRIVATE if private else "public, max-age=3600"
    version: tuple[int, ...] = (view.version,)
    published = view
    until: float | None = None  # when this answer stops being the channel's (DASH)
    if protocol is Protocol.DASH:
        # DASH segments become available at their wall-clock time, not when pushed.
        now = datetime.now(UTC)
        dash_view = pipeline.live_available_at(view, now)
        if dash_view is None:
            return _retry_soon(f"channel {route.asset!r}: no segment is available yet")
        next_at = pipeline.live_next_available(view, now)
        until = next_at.timestamp() if next_at is not None else None
        view = dash_view
        version += tuple(len(r.segments) for r in view.renditions())
    tag = ".".join(map(str, version))
    # Gated: the segment URLs it lists carry a signature of their own (never cached).
    signature = ""
    if cfg.require_token:
        lifetime = state.config.server.signed_url_lifetime + float(view.window)
        signature = delivery.signed_query(state, request.path, lifetime)
    etag = http.make_etag(lc.config.name, str(lc.generation), tag, request.path, query, signature)
    cache_key = ("live", lc.generation, version, request.path)
    body = None if query or signature else state.manifests.get(cache_key)
    if body is None:
        text = _manifest(
            state, request, lc, view, route, key=key, tag=tag, query=query, signature=signature
        )
        body = text.encode()
        if not query and not signature:
            state.manifests.put(
                cache_key, body, cost=len(body) + len(request.path) + ENTRY_OVERHEAD
            )
    if not private:
        index = lc.index
        shown = published.version  # not the view itself: a stale answer must not pin a window

        def current() -> bool:
            return index.view is not None and index.view.version == shown

        # The same bytes for every viewer while the channel shows this view (and, for DASH,
        # until its next segment's availability time).
        fastpath.allow(request, until=until, check=current)
    return http.entity_response(
        request,
        body,
        content_type=_TYPES[protocol],
        etag=etag,
        cache_control=cache_control,
        ranges=False,
    )


def _manifest(
    state: State,
    request: web.Request,
    lc: LiveChannel,
    view: ChannelView,
    route: urls.MasterPath | urls.MediaPath,
    *,
    key: ContentKey | None,
    tag: str,
    query: str,
    signature: str,
) -> str:
    base = delivery.base_prefix(state, request)
    if isinstance(route, urls.MasterPath):
        protocol = urls.protocol_of(route.options.format)
        if protocol is Protocol.SMOOTH:
            return pipeline.live_smooth_manifest(view, signature=signature)
        if protocol is Protocol.DASH:
            now = datetime.fromtimestamp(lc.publish_time(tag), UTC)
            return pipeline.live_dash_manifest(
                view,
                route.options,
                base=base,
                now=now,
                utc_timing_url=time_url(state, request),
                signature=signature,
            )
        return pipeline.live_master_playlist(view, route.options, base=base, query=query)
    rotated = None
    if key is not None and lc.keys is not None:
        keys = lc.keys
        listed = view.rendition(route.track, route.rendition)
        if listed is not None and listed.segments:
            keys.forget_before(listed.segments[0].number)

        def rotated(number: int) -> str:
            uri = delivery.key_uri(state, keys.key_for(number, state.config), route)
            assert uri is not None
            return uri

    return pipeline.live_media_playlist(
        view,
        route.track,
        route.rendition,
        route.options,
        key_uri=delivery.key_uri(state, key, route) if rotated is None else None,
        rotated_key_uri=rotated,
        iv=lc.config.iv,
        base=base,
        query=query,
        segment_query=query if lc.config.token_segments else "",
        signature=signature,
    )


async def _segment(
    request: web.Request, state: State, lc: LiveChannel, view: ChannelView, route: urls.FragmentPath
) -> web.StreamResponse:
    if lc.config.require_token and (refused := delivery.segment_refusal(state, request)):
        return refused
    fmt = route.options.format
    if route.time == urls.INIT and (fmt is None or fmt is Format.HLS_TS):
        raise NotFoundError("MPEG-TS and Smooth Streaming have no initialization segment")
    rendition = view.rendition(route.track, route.rendition)
    if rendition is None:
        raise NotFoundError(f"no {route.track} rendition {route.rendition}")
    key = delivery.content_key(state, lc.config, route.options, "channel")
    try:
        # Looked up in the view first: a cached segment that slid out is gone all the same.
        ref = pipeline.live_segment_ref(view, fmt, route.track, route.rendition, route.time)
        cache_key = ("live", lc.generation, fmt, route.track, route.rendition, route.time)
        body: bytes | bytearray | None = state.segments.get(cache_key)
        if body is None:
            if route.time == urls.INIT:
                body = pipeline.live_init_segment(view, route.track, route.rendition)
            else:
                body = pipeline.live_segment(view, fmt, route.track, route.rendition, route.time)
            state.segments.put(cache_key, body)
    except pipeline.NotYetAvailable as e:
        return _retry_soon(f"not yet available: {e}")
    except pipeline.SlidOut as e:
        return http.error_response(410, f"gone: {e}", {"Cache-Control": "public, max-age=60"})
    iv = b""
    out: bytes | bytearray | pipeline.Encrypted = body
    if key is not None and lc.keys is not None and ref.index != urls.INIT:
        key = lc.keys.key_for(ref.index, state.config)  # its period's key
    if key is not None:  # encrypted as it is written: a slice at a time when it is big
        out, iv = pipeline.encrypted_body(ref, body, key.cipher, lc.config.iv)
    if fmt is Format.HLS_TS:
        ctype = http.CT_TS
    else:
        ctype = http.CT_AUDIO_MP4 if route.track == "audio" else http.CT_VIDEO_MP4
    return http.entity_response(
        request,
        out,
        content_type=ctype,
        etag=http.make_etag(lc.config.name, str(lc.generation), request.path, iv.hex()),
        cache_control=f"public, max-age={state.config.server.segment_max_age}",
    )
