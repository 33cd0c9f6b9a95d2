"""The delivery rules assets and live channels share: which protocol a protected title may be
streamed in, which content key a request is encrypted with, and the URL prefixes and key URI a
manifest carries."""

from __future__ import annotations

import math
import posixpath
import time
import uuid
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from aiohttp import web

from origin.core import drm, pipeline, urls
from origin.core.manifest import hls
from origin.core.mp4.avc import ParameterSets
from origin.core.mux.encrypted import TrackProtection
from origin.core.mux.fmp4 import Edit
from origin.core.track import Track
from origin.core.urls import Protocol, UrlError
from origin.service import http
from origin.service.license import CLEARKEY_PATH
from origin.service.state import ContentKey, State
from origin.service.tokens import urlsig


class Delivered(TypingProtocol):
    """What an asset's or a channel's config says about its delivery."""

    @property
    def name(self) -> str: ...
    @property
    def protection(self) -> str: ...
    @property
    def key_id(self) -> uuid.UUID | None: ...
    @property
    def iv(self) -> bytes | None: ...
    @property
    def hls(self) -> tuple[str, ...] | None: ...
    @property
    def dash(self) -> tuple[str, ...] | None: ...
    @property
    def smooth(self) -> tuple[str, ...] | None: ...


def protected(cfg: Delivered) -> bool:
    return cfg.protection == "aes-128"


_NAMES = {Protocol.HLS: "HLS", Protocol.DASH: "DASH", Protocol.SMOOTH: "Smooth Streaming"}


def allowed(cfg: Delivered, protocol: Protocol) -> tuple[str, ...]:
    """The schemes the delivery policy allows for ``protocol``, the default first ("clear" for
    unencrypted); empty: the protocol is blocked."""
    listed: tuple[str, ...] | None = getattr(cfg, protocol.value)
    if listed is not None:
        return listed
    if protected(cfg):
        return ("cbc",) if protocol is Protocol.HLS else ()
    # A clear asset streams clear by default; with a key, a URL may still ask for a scheme.
    if cfg.key_id is None:
        return ("clear",)
    return ("clear", *(s for s in pipeline.POLICY_VALUES if s != "clear"))


def refusal(cfg: Delivered, protocol: Protocol, what: str = "asset") -> str | None:
    """Why the delivery policy blocks ``protocol``, or None when it may stream."""
    if allowed(cfg, protocol):
        return None
    return (
        f"{_NAMES[protocol]} is not in {what} {cfg.name!r}'s delivery policy "
        f'(e.g. {protocol.value} = "cenc" in the config allows it)'
    )


@dataclass(frozen=True, slots=True)
class Encrypting:
    """How a request is encrypted: the scheme and the content key."""

    scheme: pipeline.Scheme
    key: ContentKey


def encrypting(
    state: State, cfg: Delivered, options: urls.Options, what: str = "asset"
) -> Encrypting | None:
    """The scheme and key a request is encrypted with, None for clear delivery. A scheme the
    policy does not allow is :class:`pipeline.Refused` (403)."""
    scheme = pipeline.choose(
        options.format, options.encryption, allowed(cfg, urls.protocol_of(options.format))
    )
    if scheme is None:
        return None
    key = state.keys.get(cfg.key_id) if cfg.key_id else None
    if key is None:
        raise UrlError(f"{what} {cfg.name!r} has no content key for encryption")
    return Encrypting(scheme, key)


def content_key(
    state: State, cfg: Delivered, options: urls.Options, what: str = "asset"
) -> ContentKey | None:
    """The key a request is encrypted with, or None for clear delivery: HLS AES-128 only (a
    live channel's; Common Encryption of live channels is not built yet)."""
    enc = encrypting(state, cfg, options, what)
    if enc is not None and enc.scheme.common:
        raise pipeline.Refused(f"{enc.scheme.value} is not built for live {what}s yet")
    return enc.key if enc is not None else None


def base_prefix(state: State, request: web.Request) -> str:
    """Prefix for child URIs: empty (relative) unless base_url forces absolute URLs."""
    base_url = state.config.server.base_url
    if not base_url:
        return ""
    return base_url.rstrip("/") + posixpath.dirname(request.path) + "/"


def key_uri(state: State, key: ContentKey | None, route: urls.MediaPath) -> str | None:
    """The EXT-X-KEY URI of a media playlist encrypted with ``key``."""
    if key is None:
        return None
    return urls.key_uri(
        key.kid,
        depth=urls.playlist_depth(route),
        base_url=state.config.server.base_url,
        edk=key.edk,
    )


SIGNATURE_STEP = 60  # seconds


def signed_query(state: State, path: str, lifetime: float) -> str:
    """The signed segment URL parameter for the folder of ``path`` (the asset's or channel's,
    after any locator), valid ``lifetime`` seconds from now."""
    folder = path[: path.lower().index(".ism") + 4]
    folder += "l/" if path[len(folder) : len(folder) + 1].lower() == "l" else "/"
    # Rounded up to the minute: every viewer authorized within it gets the same URLs, which a
    # cache keyed on the whole URL then holds once for all of them.
    exp = math.ceil((time.time() + lifetime) / SIGNATURE_STEP) * SIGNATURE_STEP
    return urlsig.query(state.signing_key, folder + "*", exp)


def segment_refusal(state: State, request: web.Request) -> web.Response | None:
    """403 unless the segment request carries a valid signed URL parameter."""
    token = request.query.get(urlsig.PARAM)
    reason = urlsig.check(state.signing_key, token, request.path, time.time())
    return None if reason is None else http.error_response(403, reason)


# --- Common Encryption ---------------------------------------------------------------------------


def license_url(state: State, request: web.Request, locator: str | None = None) -> str:
    """The ClearKey license service's absolute URL (players do not resolve a relative one
    against the manifest): under base_url, else on the host the request came to; under the
    locator a catalog asset was published with (its keys are served only there)."""
    base = state.config.server.base_url or f"{request.scheme}://{request.host}"
    return base.rstrip("/") + (f"/{locator}" if locator else "") + CLEARKEY_PATH


def host_dependent(state: State, enc: Encrypting | None, protocol: Protocol) -> bool:
    """Whether a manifest names the request's host (a DASH or Smooth manifest carrying the
    license URL with no base_url): its caches must key on the host too."""
    common = enc is not None and enc.scheme.common and protocol is not Protocol.HLS
    return common and not state.config.server.base_url


def signalling(
    state: State,
    request: web.Request,
    enc: Encrypting,
    query: str = "",
    locator: str | None = None,
) -> drm.Signalling:
    """How a Common Encryption stream announces its key (``query``: a propagated token)."""
    url = license_url(state, request, locator)
    query = "&".join(
        q for q in (f"{urls.EDK_PARAM}={enc.key.edk}" if enc.key.edk else "", query) if q
    )
    if query:
        url += "?" + query
    return drm.Signalling(enc.key.kid, enc.scheme.value, url, _systems(enc))


def _systems(enc: Encrypting) -> drm.Systems:
    """The commercial DRM systems the key's policy signals."""
    return enc.key.policy.systems if enc.key.policy is not None else drm.NO_SYSTEMS


def hls_keys(state: State, enc: Encrypting | None, depth: int, iv: bytes | None) -> list[hls.Key]:
    """The keys an HLS playlist ``depth`` folders deep signals: the key service's (identity),
    and FairPlay's ``skd://`` for cbcs when the policy names one."""
    if enc is None:
        return []
    uri = urls.key_uri(
        enc.key.kid, depth=depth, base_url=state.config.server.base_url, edk=enc.key.edk
    )
    keys = [pipeline.hls_key(enc.scheme, uri, iv)]
    skd = _systems(enc).fairplay_key_uri(enc.key.kid)
    if enc.scheme is pipeline.Scheme.CBCS and skd is not None:
        keys.append(hls.Key(skd, None, "SAMPLE-AES", drm.FAIRPLAY_KEYFORMAT))
    return keys


def protection_of(
    enc: Encrypting, track: Track, iv: bytes | None, *, smooth: bool = False
) -> TrackProtection:
    return pipeline.track_protection(enc.scheme, enc.key.kid.bytes, track, iv, smooth=smooth)


def protected_init(
    state: State,
    request: web.Request,
    enc: Encrypting,
    track: Track,
    *,
    edit: Edit,
    iv: bytes | None,
) -> bytes:
    """The init segment of a Common Encryption stream (small: built per request)."""
    sig = signalling(state, request, enc)
    return pipeline.protected_init(track, edit, protection_of(enc, track, iv), sig.psshs())


def protected_fragment(
    state: State,
    cache_key: Hashable,
    ref: pipeline.SegmentRef,
    clear: bytes,
    *,
    enc: Encrypting,
    track: Track,
    sets: ParameterSets | None,
    names: tuple[object, ...],
    iv: bytes | None,
) -> pipeline.Protected:
    """A media segment under Common Encryption, its subsample map and its plan (header and
    runs) worked out once per clear segment and kept under the segment cache's key; the
    encryption itself deferred."""
    protection = protection_of(enc, track, iv, smooth=ref.format is None)
    plan_key = (cache_key, enc.scheme.value, enc.key.kid)
    plan = state.plans.get(plan_key)
    if plan is None:
        smap = state.subsamples.get(cache_key)
        if smap is None:
            nls = 4 if ref.format is None else None  # Smooth fragments re-prefix NAL units
            smap = pipeline.subsample_map(track, sets, clear, nal_length_size=nls)
            state.subsamples.put(cache_key, smap, cost=smap.cost)
        plan = pipeline.protection_plan(ref, clear, protection, smap, (*names, enc.key.kid))
        state.plans.put(plan_key, plan, cost=plan.cost)
    return pipeline.protected_body(
        ref, clear, cipher=enc.key.samples, protection=protection, plan=plan
    )
