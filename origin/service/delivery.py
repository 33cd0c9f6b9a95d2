"""The delivery rules assets and live channels share: which protocol a protected title may be
streamed in, which content key a request is encrypted with, and the URL prefixes and key URI a
manifest carries."""

from __future__ import annotations

import math
import posixpath
import time
import uuid
from typing import Protocol as TypingProtocol

from aiohttp import web

from origin.core import pipeline, urls
from origin.core.urls import Protocol, UrlError
from origin.service import http
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
    def dash(self) -> str | None: ...
    @property
    def smooth(self) -> str | None: ...


def protected(cfg: Delivered) -> bool:
    return cfg.protection == "aes-128"


def refusal(cfg: Delivered, protocol: Protocol, what: str = "asset") -> str | None:
    """Why the delivery policy blocks ``protocol``, or None when it may stream."""
    if protocol is Protocol.HLS or not protected(cfg):
        return None
    if getattr(cfg, protocol.value) == "clear":
        return None
    name = {Protocol.DASH: "DASH", Protocol.SMOOTH: "Smooth Streaming"}[protocol]
    return (
        f"{name} is not in {what} {cfg.name!r}'s delivery policy: its AES-128 "
        f'protection is for HLS ({protocol.value} = "clear" in the config allows it)'
    )


def content_key(
    state: State, cfg: Delivered, options: urls.Options, what: str = "asset"
) -> ContentKey | None:
    """The key a request is encrypted with, or None for clear delivery."""
    if pipeline.scheme_for(options.format) is None:
        return None  # no scheme for this protocol: the delivery policy allowed it clear
    if options.encryption is None and not protected(cfg):
        return None
    key = state.keys.get(cfg.key_id) if cfg.key_id else None
    if key is None:
        raise UrlError(f"{what} {cfg.name!r} has no content key for encryption=cbc")
    return key


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
        key.kid, depth=urls.playlist_depth(route), base_url=state.config.server.base_url
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
