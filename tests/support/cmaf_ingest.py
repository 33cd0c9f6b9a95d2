"""A small DASH-IF Live Media Ingest client, Interface 1 (CMAF ingest), for the end-to-end tests.

Follows the DASH-IF Live Media Ingest Protocol (Technical Specification, v1.2), paraphrased:
- §4 General Ingest Protocol Behavior: media objects are sent with HTTP POST (or PUT); the source
  authenticates (Basic, or a bearer token in ``Authorization``); on a 4xx answer (400 bad request,
  401/403 not authorised, 404 no such publishing point) the source stops and does not retry the
  same request; on 5xx or a failed connection it retries, re-establishing the session.
- §5.2 General Protocol and Track Format Requirements: each CMAF track is its own stream at its
  own URL, here ``{base}/{channel}.isml/Streams({track_name})``; the CMAF header (``ftyp`` +
  ``moov``) is sent first, then the CMAF segments (``styp`` + ``moof`` + ``mdat``) in order as they
  become available (in real time), either each as its own request or all in one long-running
  chunked POST.
- §5.8 Failover and Connection Error Handling: after a reconnect the CMAF header is sent again
  before the next segment; a source that restarts continues its timeline (``timeline_offset``,
  done by rewriting each segment's ``tfdt``: a tiny patcher here, independent of origin code).

The tracks come from ffmpeg (``tracks_from_ffmpeg``), not from the code under test: one
``-f mp4 -movflags cmaf+frag_keyframe+empty_moov+default_base_moof`` file per track, split into
header and segments by the top-level box walker below. ffmpeg 5.1 writes no ``styp`` (and a
trailing ``mfra``): the splitter prefixes each segment with a ``styp`` (major brand ``cmfs``) and
drops what follows the last ``mdat``; ``default_base_moof`` keeps the ``trun`` offsets relative to
the ``moof``, so the prefix moves nothing. Video segments are one 2 s GOP; audio is cut every
``gop_seconds`` (``-frag_duration``) on AAC frame boundaries (2.005 s, and a short last one).
"""

from __future__ import annotations

import asyncio
import base64
import struct
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.support.media import FFMPEG

STYP = struct.pack(">I4s4sI4s4s", 24, b"styp", b"cmfs", 0, b"cmfs", b"cmfc")


def top_boxes(data: bytes, *, partial: bool = False) -> list[tuple[str, int, int]]:
    """(type, start, end) of each top-level box; raises on a truncated box unless ``partial``
    (then the boxes before it: for a body still arriving)."""
    out: list[tuple[str, int, int]] = []
    pos = 0
    while pos < len(data):
        if partial and pos + 8 > len(data):
            break
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size == 1:
            if partial and pos + 16 > len(data):
                break
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        if partial and size >= 8 and pos + size > len(data):
            break
        if size < 8 or pos + size > len(data):
            raise ValueError(f"bad box {kind!r} at {pos}")
        out.append((kind.decode("latin-1"), pos, pos + size))
        pos += size
    return out


def _child(data: bytes, start: int, end: int, kind: bytes, header: int = 8) -> tuple[int, int]:
    pos = start + header
    while pos < end:
        size, raw = struct.unpack_from(">I4s", data, pos)
        if raw == kind:
            return pos, pos + size
        pos += size
    raise ValueError(f"no {kind!r}")


def _path(data: bytes, start: int, end: int, *kinds: bytes, top: bool = False) -> tuple[int, int]:
    for i, kind in enumerate(kinds):
        start, end = _child(data, start, end, kind, 0 if top and i == 0 else 8)
    return start, end


def timescale(header: bytes) -> int:
    """The track's media timescale (``moov/trak/mdia/mdhd``)."""
    start, _ = _path(header, 0, len(header), b"moov", b"trak", b"mdia", b"mdhd", top=True)
    version = header[start + 8]
    return struct.unpack_from(">I", header, start + (28 if version == 1 else 20))[0]


def read_tfdt(segment: bytes) -> int:
    start, _ = _tfdt(segment)
    version = segment[start + 8]
    return struct.unpack_from(">Q" if version == 1 else ">I", segment, start + 12)[0]


def _tfdt(segment: bytes) -> tuple[int, int]:
    moof = next((s, e) for k, s, e in top_boxes(segment) if k == "moof")
    return _path(segment, *moof, b"traf", b"tfdt")


def shift_tfdt(segment: bytes, ticks: int) -> bytes:
    """The segment with its ``tfdt`` moved by ``ticks``; same size (no offsets change)."""
    start, _ = _tfdt(segment)
    version = segment[start + 8]
    value = read_tfdt(segment) + ticks
    if value < 0 or (version == 0 and value >= 1 << 32):
        raise ValueError(f"tfdt {value} does not fit a version {version} tfdt")
    out = bytearray(segment)
    struct.pack_into(">Q" if version == 1 else ">I", out, start + 12, value)
    return bytes(out)


def segment_duration(segment: bytes) -> int:
    """Sum of the sample durations of the fragment's (single) track run, in media ticks."""
    moof = next((s, e) for k, s, e in top_boxes(segment) if k == "moof")
    traf = _child(segment, *moof, b"traf")
    tfhd, _ = _child(segment, *traf, b"tfhd")
    tfhd_flags = struct.unpack_from(">I", segment, tfhd + 8)[0] & 0xFFFFFF
    pos, default = tfhd + 16, 0
    for bit, width in ((0x1, 8), (0x2, 4)):
        pos += width if tfhd_flags & bit else 0
    if tfhd_flags & 0x8:
        default = struct.unpack_from(">I", segment, pos)[0]
    trun, _ = _child(segment, *traf, b"trun")
    flags = struct.unpack_from(">I", segment, trun + 8)[0] & 0xFFFFFF
    count = struct.unpack_from(">I", segment, trun + 12)[0]
    pos = trun + 16 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
    if not flags & 0x100:
        return default * count
    stride = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    return sum(struct.unpack_from(">I", segment, pos + i * stride)[0] for i in range(count))


@dataclass
class CmafTrack:
    name: str
    header: bytes
    segments: list[bytes]
    durations: list[float]  # seconds, one per segment
    timescale: int


def split_track(name: str, data: bytes) -> CmafTrack:
    """A CMAF track file -> header (everything before the first moof/styp) + segments."""
    boxes = top_boxes(data)
    first = next(i for i, (k, _, _) in enumerate(boxes) if k in ("styp", "moof"))
    header = data[: boxes[first][1]]
    # A segment starts at a styp, or at a moof not preceded by one; trailing mfra etc. dropped.
    cuts = [
        s
        for i, (k, s, _) in enumerate(boxes)
        if i >= first and (k == "styp" or (k == "moof" and boxes[i - 1][0] != "styp"))
    ]
    ends = [*cuts[1:], boxes[-1][2]]
    segments = [data[a:b] for a, b in zip(cuts, ends, strict=True)]
    segments = [s[: _media_end(s)] for s in segments]
    segments = [s if s[4:8] == b"styp" else STYP + s for s in segments]
    scale = timescale(header)
    return CmafTrack(name, header, segments, [segment_duration(s) / scale for s in segments], scale)


def _media_end(segment: bytes) -> int:
    return max(e for k, _, e in top_boxes(segment) if k == "mdat")


CMAF_FLAGS = ["-f", "mp4", "-movflags", "cmaf+frag_keyframe+empty_moov+default_base_moof"]


def tracks_from_ffmpeg(
    tmpdir: Path,
    seconds: float,
    *,
    heights: tuple[int, ...] = (240, 360),
    gop_seconds: float = 2,
    fps: int = 25,
    audio: bool = True,
) -> list[CmafTrack]:
    """CMAF tracks made by ffmpeg (as fast as it can, not real time): ``video_{h}p`` per height,
    aligned 2 s GOPs, and ``audio`` (AAC, fragments of ``gop_seconds``)."""
    gop = str(round(gop_seconds * fps))
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", f"testsrc2=size=854x480:rate={fps}:duration={seconds}"]
    cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    names = [f"video_{h}p" for h in heights]
    for name, h in zip(names, heights, strict=True):
        cmd += ["-map", "0:v", "-vf", f"scale=-2:{h}", "-c:v", "libx264", "-preset", "veryfast"]
        cmd += ["-pix_fmt", "yuv420p", "-g", gop, "-keyint_min", gop, "-sc_threshold", "0"]
        cmd += [*CMAF_FLAGS, str(tmpdir / f"{name}.mp4")]
    if audio:
        names.append("audio")
        cmd += ["-map", "1:a", "-c:a", "aac", "-b:a", "64k", "-ac", "2"]
        cmd += ["-f", "mp4", "-movflags", "cmaf+empty_moov+default_base_moof"]
        cmd += ["-frag_duration", str(round(gop_seconds * 1_000_000)), str(tmpdir / "audio.mp4")]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    return [split_track(n, (tmpdir / f"{n}.mp4").read_bytes()) for n in names]


class IngestRefused(Exception):
    """The receiver answered 4xx: per the spec the source stops (no retry)."""

    def __init__(self, track: str, status: int) -> None:
        super().__init__(f"{track}: HTTP {status}")
        self.track, self.status = track, status


@dataclass
class TrackResult:
    name: str
    statuses: list[int] = field(default_factory=list)  # every answer, in order
    refused: int | None = None  # the 4xx that stopped the track
    retries: int = 0


class _Retry(Exception):
    pass


class CmafIngestClient:
    """Pushes ``tracks`` to a receiver, one concurrent stream per track."""

    def __init__(
        self,
        tracks: list[CmafTrack],
        *,
        retries: int = 3,
        retry_delay: float = 0.2,
        timeline_offset: float = 0.0,
    ) -> None:
        self.tracks, self.retries, self.retry_delay = tracks, retries, retry_delay
        self.timeline_offset = timeline_offset  # seconds added to every tfdt

    def segments(self, track: CmafTrack) -> list[bytes]:
        ticks = round(self.timeline_offset * track.timescale)
        return [shift_tfdt(s, ticks) for s in track.segments] if ticks else track.segments

    async def run(
        self,
        base_url: str,
        channel: str,
        *,
        realtime: bool = True,
        auth: tuple[str, str] | None = None,
        bearer: str | None = None,
        mode: str = "post-per-segment",
        method: str = "POST",
    ) -> list[TrackResult]:
        if mode not in ("post-per-segment", "long-post"):
            raise ValueError(f"unknown mode {mode!r}")
        headers = {}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        elif auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        start = time.monotonic()
        async with aiohttp.ClientSession(headers=headers) as session:
            jobs = []
            for track in self.tracks:
                url = f"{base_url.rstrip('/')}/{channel}.isml/Streams({track.name})"
                push = self._per_segment if mode == "post-per-segment" else self._long_post
                jobs.append(push(session, url, track, start if realtime else None, method))
            return list(await asyncio.gather(*jobs))

    @staticmethod
    async def _due(start: float | None, track: CmafTrack, index: int) -> None:
        # A live encoder has segment i only once its last sample was captured.
        if start is not None:
            due = start + sum(track.durations[: index + 1])
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def _send(
        self, session: aiohttp.ClientSession, method: str, url: str, body: object, res: TrackResult
    ) -> None:
        try:
            async with session.request(method, url, data=body) as reply:
                await reply.read()
                res.statuses.append(reply.status)
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise _Retry from exc
        if 400 <= reply.status < 500:
            raise IngestRefused(res.name, reply.status)
        if reply.status >= 500:
            raise _Retry

    async def _per_segment(
        self,
        session: aiohttp.ClientSession,
        url: str,
        track: CmafTrack,
        start: float | None,
        method: str,
    ) -> TrackResult:
        res = TrackResult(track.name)
        segments, header_sent, i = self.segments(track), False, 0
        try:
            while i < len(segments):
                try:
                    if not header_sent:
                        await self._send(session, method, url, track.header, res)
                        header_sent = True
                    await self._due(start, track, i)
                    await self._send(session, method, url, segments[i], res)
                    i += 1
                except _Retry:
                    if res.retries >= self.retries:
                        raise
                    res.retries += 1
                    header_sent = False  # §5.8: the header again after a failure
                    await asyncio.sleep(self.retry_delay)
        except IngestRefused as exc:
            res.refused = exc.status
        return res

    async def _long_post(
        self,
        session: aiohttp.ClientSession,
        url: str,
        track: CmafTrack,
        start: float | None,
        method: str,
    ) -> TrackResult:
        res = TrackResult(track.name)
        segments = self.segments(track)
        sent = [0]  # segments handed to the connection

        async def body() -> AsyncIterator[bytes]:
            yield track.header
            while sent[0] < len(segments):
                await self._due(start, track, sent[0])
                chunk = segments[sent[0]]
                sent[0] += 1
                yield chunk

        try:
            while True:
                try:
                    await self._send(session, method, url, body(), res)
                    break
                except _Retry:
                    if res.retries >= self.retries:
                        raise
                    res.retries += 1
                    # §5.8: a new POST, the header first, then from the segment that was in
                    # flight (the receiver may not have it).
                    sent[0] = max(0, sent[0] - 1)
                    await asyncio.sleep(self.retry_delay)
        except IngestRefused as exc:
            res.refused = exc.status
        return res
