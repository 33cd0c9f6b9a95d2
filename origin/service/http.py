"""HTTP response rules for players and CDNs: validators, byte ranges, cache headers.

Modelled on aiohttp's ``web_fileresponse``: strong ETag, ``If-None-Match`` (else
``If-Modified-Since``) → 304, a single ``Range`` → 206, an unsatisfiable one → 416 with
``Content-Range: bytes */len``; ``If-Range`` with a different validator serves the whole entity.
A multi-range request is answered with the whole entity (RFC 9110 lets a server ignore Range),
which every player handles.

A body may be :class:`~origin.service.sliced.Deferred` (an encrypted segment not encrypted yet):
a 304, a 416 or a HEAD never computes it, and a whole one bigger than a slice is made and written
a slice at a time (:mod:`origin.service.sliced`), so that it does not hold the event loop.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any

from aiohttp import web

from origin.service import metrics, sliced

CT_M3U8 = "application/vnd.apple.mpegurl"
CT_TS = "video/mp2t"
CT_VIDEO_MP4 = "video/mp4"
CT_AUDIO_MP4 = "audio/mp4"
CT_KEY = "application/octet-stream"
CT_MPD = "application/dash+xml"
CT_SMOOTH = "application/vnd.ms-sstr+xml"

# Cache-Control values. PRIVATE: a response that embeds a viewer's token, or that only an
# authorized viewer may see; no shared cache may keep it.
NO_STORE = "no-store"
PRIVATE = "private, no-store"


def cache_headers(value: str) -> dict[str, str]:
    """The Cache-Control header, as a fresh dict callers may add to."""
    return {"Cache-Control": value}


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str, length: int) -> tuple[int, int] | None:
    """One ``bytes=`` range as (start, stop), None to serve everything; raises when unsatisfiable.

    Malformed headers are ignored (served whole), as RFC 9110 §14.2 allows.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            n = int(last)
            if n <= 0 or n > 2**63:
                raise RangeNotSatisfiable
            return max(length - n, 0), length
        start = int(first)
        stop = int(last) + 1 if last else length
    except ValueError:
        return None
    if start < 0 or (last and stop <= start):
        return None  # e.g. bytes=5-3: malformed, serve the whole entity
    if start >= length:
        raise RangeNotSatisfiable
    return start, min(stop, length)


def make_etag(*parts: str) -> str:
    """A strong validator from what determines the bytes (source version, URL, key id, IV)."""
    h = hashlib.blake2b("\x00".join(parts).encode(), digest_size=12)
    return f'"{h.hexdigest()}"'


def _etag_match(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    for candidate in header.split(","):
        c = candidate.strip()
        if c.startswith("W/"):
            c = c[2:]  # weak comparison for If-None-Match (RFC 9110 §13.1.2)
        if c == etag:
            return True
    return False


@functools.lru_cache(maxsize=1024)
def http_date(ts: float) -> str:
    """RFC 9110 date; cached because it is asked for the same few source mtimes every request.

    Bounded by count, which here bounds bytes: the keys are source files' mtimes (never request
    data) and every entry is one float and one 29-character string."""
    return formatdate(ts, usegmt=True)


def entity_response(
    request: web.Request,
    body: bytes | bytearray | memoryview | sliced.Deferred,
    *,
    content_type: str,
    etag: str | None,
    cache_control: str,
    last_modified: float | None = None,
    ranges: bool = True,
    extra: Mapping[str, str] | None = None,
) -> web.Response:
    """A 200/206/304/416 response for a complete entity, honouring validators and Range."""
    headers = cache_headers(cache_control)
    if etag:
        headers["ETag"] = etag
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified)
    if ranges:
        headers["Accept-Ranges"] = "bytes"
    if extra:
        headers.update(extra)
    inm = request.headers.get("If-None-Match")
    if etag and inm is not None and _etag_match(inm, etag):
        return web.Response(status=304, headers=headers)
    # RFC 9110 §13.1.3: only without If-None-Match, at the resolution of an HTTP date.
    if inm is None and last_modified is not None and request.method in ("GET", "HEAD"):
        since = request.if_modified_since
        if since is not None and int(last_modified) <= since.timestamp():
            return web.Response(status=304, headers=headers)
    length = len(body)
    rng = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if ranges and rng and (if_range is None or (etag is not None and if_range.strip() == etag)):
        try:
            span = parse_range(rng, length)
        except RangeNotSatisfiable:
            headers["Content-Range"] = f"bytes */{length}"
            return web.Response(
                status=416,
                headers=headers,
                text="range not satisfiable\n",
                content_type="text/plain",
            )
        if span is not None:
            start, stop = span
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{length}"
            return web.Response(
                status=206,
                body=memoryview(_made(body))[start:stop],
                headers=headers,
                content_type=content_type,
            )
    content: Any = body
    if not isinstance(body, (bytes, bytearray, memoryview)):
        if length > sliced.SLICED_FROM or request.method == "HEAD":  # a HEAD never makes it
            content = sliced.SlicedPayload(body, content_type)
        else:
            started = time.perf_counter()
            content = body.whole()  # small: one write, no task step
            metrics.observe_encrypt(time.perf_counter() - started)
    return web.Response(body=content, headers=headers, content_type=content_type)


def _made(body: bytes | bytearray | memoryview | sliced.Deferred) -> bytes | bytearray | memoryview:
    return body if isinstance(body, (bytes, bytearray, memoryview)) else body.whole()


def error_response(
    status: int, reason: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A short plain-text error that no cache keeps."""
    h = cache_headers(NO_STORE)
    if headers:
        h.update(headers)
    return web.Response(status=status, text=reason + "\n", content_type="text/plain", headers=h)
