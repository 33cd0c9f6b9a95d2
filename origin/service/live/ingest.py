"""Live ingest: ``POST``/``PUT /{channel}.isml/Streams({stream})`` from an encoder.

The AMS fragmented-MP4 ingest is one long chunked POST per stream (``ftyp``+``moov``, then
``moof``+``mdat`` pairs); DASH-IF CMAF ingest (Interface 1) sends a track's CMAF header and then
each segment, as one long POST or one request per object. Both feed the same parser and index:
a fragment is indexed, and so playable, the moment its ``mdat`` is complete.

Credentials are checked from the request head alone: 401/403 before a byte of the body is read.
Bad ingest ends that connection with a 4xx and a log line naming the channel, stream and
reason; what was indexed keeps playing.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from origin.core import urls
from origin.core.errors import IngestError
from origin.core.live.ingest import Header, StreamParser
from origin.core.live.model import Chunk
from origin.service import http
from origin.service.live.archive import ArchiveFile
from origin.service.live.auth import check_ingest
from origin.service.live.channels import CHANNELS, LiveChannel
from origin.service.logs import clean
from origin.service.metrics import RECORD

log = logging.getLogger("origin.live")

MAX_BOX = 64 << 20  # a fragment larger than this is refused (413)


def _closing(resp: web.Response) -> web.Response:
    resp.force_close()  # the body (or its rest) is still on the wire
    return resp


def _admit(request: web.Request, state_of: object) -> tuple[LiveChannel, str] | web.Response:
    """The channel and stream a request may push to, or the refusal: from the head alone."""
    path = urls.parse_ingest_path(request.path)
    if path is None:
        return http.error_response(404, "not found: no such resource")
    state = state_of.current  # type: ignore[attr-defined]
    lc = request.app[CHANNELS].get(path.channel)
    if lc is None:
        return _closing(http.error_response(404, f"not found: no channel {path.channel!r}"))
    denied = check_ingest(
        lc.config, request.headers, request.remote, state.config.server.trusted_proxies
    )
    if denied is not None:
        log.warning(
            "ingest %s/%s from %s refused (%d): %s",
            lc.config.name,
            clean(path.stream),
            clean(request.remote),
            denied.status,
            denied.reason,
        )
        return _closing(http.error_response(denied.status, denied.reason, denied.headers))
    return lc, path.stream


async def expect(request: web.Request, state_of: object) -> web.StreamResponse | None:
    """``Expect: 100-continue`` (ffmpeg sends it with credentials in the URL): refuse before
    the client sends its body, or let it send."""
    admitted = _admit(request, state_of)
    if isinstance(admitted, web.StreamResponse):
        return admitted
    if request.headers.get("Expect", "").lower() != "100-continue":
        return http.error_response(417, "expectation failed: only 100-continue is understood")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the 100 is not part of the response
    return None


# Playlists an HLS or DASH muxer PUTs beside its segments (ffmpeg ``-f hls -method PUT``): the
# origin makes its own, so they are read and dropped.
_MANIFEST_NAMES = (".m3u8", ".mpd")


async def ingest(request: web.Request, state_of: object) -> web.StreamResponse:
    admitted = _admit(request, state_of)
    if isinstance(admitted, web.StreamResponse):
        return admitted
    path = urls.parse_ingest_path(request.path)
    if path is not None and path.name and path.name.lower().endswith(_MANIFEST_NAMES):
        try:
            async for _ in request.content.iter_any():
                pass
        except (ConnectionError, HttpProcessingError, aiohttp.ClientError):
            return _closing(http.error_response(400, "bad request: the body is incomplete"))
        return web.Response(status=200, text="ok\n", headers=http.cache_headers(http.NO_STORE))
    return await _receive(request, *admitted)


async def _receive(request: web.Request, lc: LiveChannel, stream: str) -> web.StreamResponse:
    channel = lc.config.name
    known = lc.headers.get(stream)
    parser = StreamParser(
        max_box=MAX_BOX,
        tracks=known.tracks if known else None,
        defaults=known.defaults if known else None,
    )
    conn = lc.index.connect(stream)
    archive: ArchiveFile | None = None
    if lc.config.archive is not None:
        archive = lc.archives.get(stream)
    clean_end = False
    fragments = 0
    try:
        async for data in request.content.iter_any():
            for event in parser.feed(data):
                if isinstance(event, Header):
                    conn.header(event.tracks)
                    lc.headers[stream] = event  # its tracks and trex defaults
                    if lc.config.archive is not None:
                        if archive is not None:
                            await archive.close()
                        archive = ArchiveFile.start(lc.config.archive, channel, stream, time.time())
                        lc.archives[stream] = archive
                elif isinstance(event, Chunk):
                    conn.chunk(event, time.time())
                    fragments += 1
                    RECORD.fragments[channel] += 1
            if archive is not None:
                await archive.write(data)
        parser.close()
        clean_end = parser.ended
    except IngestError as e:
        log.warning("ingest %s/%s refused (%d): %s", channel, clean(stream), e.status, e)
        conn.close(time.time(), clean=False)
        return _closing(http.error_response(e.status, f"ingest refused: {e}"))
    except (ConnectionError, HttpProcessingError, aiohttp.ClientError, asyncio.IncompleteReadError):
        log.info("ingest %s/%s: the connection dropped", channel, clean(stream))
        conn.close(time.time(), clean=False)
        return _closing(http.error_response(400, "bad request: the body is incomplete"))
    finally:
        if archive is not None and clean_end:
            await archive.close()
            lc.archives.pop(stream, None)
        if not conn.closed:
            conn.close(time.time(), clean=clean_end)
    log.info(
        "ingest %s/%s: %s after %d fragment(s)",
        channel,
        clean(stream),
        "stream ended" if clean_end else "request complete",
        fragments,
    )
    return web.Response(status=200, text="ok\n", headers=http.cache_headers(http.NO_STORE))
