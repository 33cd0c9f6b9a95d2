"""Viewers that behave like players, for load tests with locust (``pip install '.[load]'``).

    locust -f scripts/locustfile.py --headless -u 1000 -r 50 -t 5m --host http://origin:8080

``--host`` is the origin or a CDN in front of it. Each viewer fetches the master playlist, MPD or
Smooth manifest, picks a rendition and switches on measured throughput (buffer-based: the lowest
while the buffer is short, then the highest the throughput carries with a margin), fetches the
key (with a token if one is configured) and the init segment, fills a few segments of buffer as
fast as it can, then fetches at real time; live viewers start near the live edge and reload the
playlist or manifest every target duration. A viewer plays its title (VOD) or a while of its
channel (live), then starts again.

Failures: any 4xx/5xx, a content type other than the format's, a key not 16 bytes, an encrypted
segment whose AES-128-CBC padding does not check out (its last block decrypted with the key),
an unparsable manifest. Viewer figures, as locust entries of type ``viewer`` (their "response
time" is the figure): ``startup`` (ms from the first request to a playable buffer), ``rebuffer``
(ms of each stall), ``switch`` (one per bitrate switch, 0), ``played_kbps`` (a session's average
played bitrate).

Environment (all optional):
  ORIGIN_HLS_ASSETS     VOD assets for the HLS viewers (default: sample)
  ORIGIN_CLEAR_ASSETS   VOD assets for DASH and Smooth (AES-128 assets refuse them; default: sample)
  ORIGIN_CHANNELS       live channels; none: the live viewers do not run
  ORIGIN_TOKEN          a token (``origin token`` prints one) for key requests and gated manifests
  ORIGIN_TOKEN_IN       "header" (Authorization: Bearer, default) or "query" (?token=)
  ORIGIN_SESSION        seconds a live viewer watches before starting again (default 60)
"""

from __future__ import annotations

import os
import random
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import quote, urljoin

import m3u8
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from locust import HttpUser, between, events, task

HLS_ASSETS = [a for a in os.environ.get("ORIGIN_HLS_ASSETS", "sample").split(",") if a]
CLEAR_ASSETS = [a for a in os.environ.get("ORIGIN_CLEAR_ASSETS", "sample").split(",") if a]
CHANNELS = [c for c in os.environ.get("ORIGIN_CHANNELS", "").split(",") if c]
TOKEN = os.environ.get("ORIGIN_TOKEN", "")
TOKEN_IN = os.environ.get("ORIGIN_TOKEN_IN", "header")
SESSION = float(os.environ.get("ORIGIN_SESSION", "60"))

BUFFER_TARGET = 3  # segments ahead before fetching at real time
STARTUP_SEGMENTS = 2  # segments buffered before playback starts
TYPES = {
    "m3u8": ("application/vnd.apple.mpegurl",),
    "mpd": ("application/dash+xml",),
    "ism": ("application/vnd.ms-sstr+xml",),
    "ts": ("video/mp2t",),
    "mp4": ("video/mp4", "audio/mp4"),
    "key": ("application/octet-stream",),
}
_IV_ATTR = re.compile(r"^0x([0-9a-fA-F]{32})$")


class Broken(Exception):
    """What makes a request a failure beyond its status."""


@dataclass
class Level:
    bandwidth: int
    # (absolute URL, seconds, key): the key orders segments across levels and reloads, the
    # media sequence number (HLS) or the start time (DASH, Smooth).
    segments: list[tuple[str, float, int]]
    init: str | None = None
    key: str | None = None  # key URI (HLS AES-128)
    iv: bytes | None = None  # fixed IV, else the media sequence number
    playlist: str | None = None  # HLS media playlist URL (reloaded when live)


@dataclass
class Session:
    levels: list[Level]  # video (or TS: video with its audio), the ABR ladder
    live: bool
    target: float  # seconds between reloads when live
    reload: str | None = None  # the MPD or Smooth manifest (live)
    audio: Level | None = None  # a separate audio rendition (fMP4, DASH, Smooth)


class Viewer(HttpUser):
    """A player: subclasses say which format it asks for and how its manifest reads."""

    abstract = True
    wait_time = between(0.5, 2)
    live = False
    segment_type = "mp4"

    def on_start(self) -> None:
        self.keys: dict[str, bytes] = {}

    # -- requests ---------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"} if TOKEN and TOKEN_IN == "header" else {}

    def _url(self, url: str) -> str:
        if TOKEN and TOKEN_IN == "query" and "token=" not in url:
            return url + ("&" if "?" in url else "?") + "token=" + quote(TOKEN, safe="")
        return url

    def get(self, url: str, kind: str, name: str) -> bytes | None:
        with self.client.get(
            self._url(url), headers=self._headers(), name=name, catch_response=True
        ) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}")
                return None
            ctype = (r.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype not in TYPES[kind]:
                r.failure(f"content type {ctype!r}, not {' or '.join(TYPES[kind])}")
                return None
            body: bytes = r.content
            if kind == "key" and len(body) != 16:
                r.failure(f"a key of {len(body)} bytes")
                return None
            return body

    def key(self, uri: str) -> bytes | None:
        if uri not in self.keys:
            body = self.get(uri, "key", "key")
            if body is None:
                return None
            self.keys[uri] = body
        return self.keys[uri]

    def segment(self, level: Level, url: str, sequence: int) -> int | None:
        """Fetch one segment (checking its encryption); its size, None on failure."""
        kind = self.segment_type
        with self.client.get(
            self._url(url), headers=self._headers(), name=f"segment ({kind})", catch_response=True
        ) as r:
            ctype = (r.headers.get("Content-Type") or "").split(";")[0].strip()
            try:
                if r.status_code != 200:
                    raise Broken(f"status {r.status_code}")
                if ctype not in TYPES[kind]:
                    raise Broken(f"content type {ctype!r}")
                if level.key is not None:
                    key = self.keys.get(level.key)
                    if key is None:
                        raise Broken("no key")
                    iv = level.iv or sequence.to_bytes(16, "big")
                    _check_padding(r.content, key, iv)
            except Broken as e:
                r.failure(str(e))
                return None
            return len(r.content)

    # -- playing ----------------------------------------------------------------------------

    def open(self) -> Session | None:  # pragma: no cover - per format
        raise NotImplementedError

    def refresh(self, s: Session) -> None:
        """Live: read the manifest again for new segments (VOD: nothing)."""

    @task
    def watch(self) -> None:
        started = time.monotonic()
        s = self.open()
        if s is None:
            return
        levels = sorted(s.levels, key=lambda lv: lv.bandwidth)
        current = 0
        throughput = 0.0  # bits/s, smoothed
        buffered = 0.0  # seconds of media ahead of the playhead
        playing = False
        clock = time.monotonic()
        played_bits = played_seconds = 0.0
        last = _live_start(levels[0]) if s.live else -1  # the key of the last segment fetched
        deadline = time.monotonic() + SESSION if s.live else float("inf")
        last_reload = time.monotonic()
        inits: set[str] = set()
        audio_last: int | None = None  # the key of the last audio segment fetched
        audio_seconds = 0.0
        while time.monotonic() < deadline:
            level = levels[current]
            upcoming = [seg for seg in level.segments if seg[2] > last]
            if not upcoming:
                if not s.live:
                    break
                time.sleep(max(0.0, s.target - (time.monotonic() - last_reload)))
                self.refresh(s)
                last_reload = time.monotonic()
                continue
            if level.key is not None and self.key(level.key) is None:
                return
            if level.init is not None and level.init not in inits:
                if self.get(level.init, "mp4", f"init ({self.segment_type})") is None:
                    return
                inits.add(level.init)
            url, seconds, key = upcoming[0]
            t0 = time.monotonic()
            size = self.segment(level, url, key)
            if size is None:
                return
            spent = max(time.monotonic() - t0, 1e-4)
            rate = 8 * size / spent
            throughput = rate if throughput == 0 else 0.7 * throughput + 0.3 * rate
            # The playhead moved while this segment came in.
            now = time.monotonic()
            if playing:
                elapsed = now - clock
                if elapsed > buffered:  # stalled: the buffer ran dry before this segment
                    _viewer("rebuffer", 1000 * (elapsed - buffered))
                    buffered = 0.0
                else:
                    buffered -= elapsed
            clock = now
            buffered += seconds
            played_bits += 8 * size
            played_seconds += seconds
            last = key
            if s.audio is not None:  # the audio rendition kept as far ahead as the video
                if audio_last is None:
                    audio_last = max((k for _, _, k in s.audio.segments if k < key), default=-1)
                while audio_seconds < played_seconds:
                    ahead = [seg for seg in s.audio.segments if seg[2] > audio_last]
                    if not ahead:
                        break
                    if s.audio.init is not None and s.audio.init not in inits:
                        if self.get(s.audio.init, "mp4", "init (mp4)") is None:
                            return
                        inits.add(s.audio.init)
                    if self.segment(s.audio, ahead[0][0], ahead[0][2]) is None:
                        return
                    audio_last = ahead[0][2]
                    audio_seconds += ahead[0][1]
            fetched = sum(1 for seg in level.segments if seg[2] <= key)
            if not playing and (fetched >= STARTUP_SEGMENTS or len(upcoming) == 1):
                playing = True
                _viewer("startup", 1000 * (time.monotonic() - started))
            # Buffer-based choice: the lowest while short, else what the throughput carries.
            want = 0
            if buffered >= 2 * seconds:
                fits = [i for i, lv in enumerate(levels) if lv.bandwidth <= 0.8 * throughput]
                want = max(fits, default=0)
            if want != current:
                _viewer("switch", 0)
                current = want
            if playing and buffered > BUFFER_TARGET * seconds:
                time.sleep(buffered - BUFFER_TARGET * seconds)  # real time from here on
            if s.live and time.monotonic() - last_reload >= s.target:
                self.refresh(s)
                last_reload = time.monotonic()
        if played_seconds:
            _viewer("played_kbps", played_bits / played_seconds / 1000)


def _live_start(level: Level) -> int:
    """The key before the segment three back from the live edge, where HLS asks players to
    start (RFC 8216 §6.3.3)."""
    if len(level.segments) <= 3:
        return -1
    return level.segments[-4][2]


def _viewer(name: str, value: float) -> None:
    events.request.fire(
        request_type="viewer", name=name, response_time=value, response_length=0,
        exception=None, context={},
    )  # fmt: skip


def _check_padding(data: bytes, key: bytes, iv: bytes) -> None:
    """The last block decrypts to valid PKCS#7 padding (AES-128-CBC, HLS's METHOD=AES-128)."""
    if not data or len(data) % 16:
        raise Broken(f"encrypted segment of {len(data)} bytes, not whole AES blocks")
    prev = data[-32:-16] if len(data) >= 32 else iv
    block = Cipher(algorithms.AES(key), modes.CBC(prev)).decryptor().update(data[-16:])
    pad = block[-1]
    if not 1 <= pad <= 16 or block[-pad:] != bytes([pad]) * pad:
        raise Broken("segment fails to decrypt (bad AES padding)")


# --- HLS ------------------------------------------------------------------------------------


class _Hls(Viewer):
    abstract = True
    fmt = "m3u8-aapl"

    def _target(self) -> str:
        name = random.choice(CHANNELS if self.live else HLS_ASSETS)
        ext = "isml" if self.live else "ism"
        return f"{self.host}/{name}.{ext}/manifest(format={self.fmt})"

    def open(self) -> Session | None:
        master_url = self._target()
        body = self.get(master_url, "m3u8", f"master ({self.fmt})")
        if body is None:
            return None
        master = m3u8.loads(body.decode(), uri=master_url)
        levels = []
        for p in master.playlists:
            level = Level(p.stream_info.bandwidth, [], playlist=urljoin(master_url, p.uri))
            if not self._media(level):
                return None
            levels.append(level)
        if not levels:
            return None
        audio = None
        for m in master.media:
            if m.type == "AUDIO" and m.uri:
                audio = Level(0, [], playlist=urljoin(master_url, m.uri))
                if not self._media(audio):
                    return None
                break
        durations = [seconds for lv in levels for _, seconds, _ in lv.segments]
        target = max(durations, default=2.0)
        return Session(levels, self.live, target, audio=audio)

    def _media(self, level: Level) -> bool:
        assert level.playlist is not None
        body = self.get(level.playlist, "m3u8", f"media playlist ({self.fmt})")
        if body is None:
            return False
        media = m3u8.loads(body.decode(), uri=level.playlist)
        base = level.playlist
        first = media.media_sequence or 0
        level.segments = [
            (urljoin(base, seg.uri), float(seg.duration), first + k)
            for k, seg in enumerate(media.segments)
        ]
        key = next((k for k in media.keys if k is not None and k.method == "AES-128"), None)
        level.key = urljoin(base, key.uri) if key is not None else None
        level.iv = bytes.fromhex(key.iv[2:]) if key is not None and key.iv else None
        maps = [seg.init_section for seg in media.segments if seg.init_section is not None]
        level.init = urljoin(base, maps[0].uri) if maps else None
        return True

    def refresh(self, s: Session) -> None:
        for level in (*s.levels, *([s.audio] if s.audio else [])):
            self._media(level)  # segments are found by key: the window may slide meanwhile


class HlsTsViewer(_Hls):
    segment_type = "ts"
    fmt = "m3u8-aapl"


class HlsFmp4Viewer(_Hls):
    segment_type = "mp4"
    fmt = "m3u8-cmaf"


# --- DASH and Smooth ---------------------------------------------------------------------------

_NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


class _OneManifest(Viewer):
    """DASH and Smooth: one manifest lists every level's segments; read again when live."""

    abstract = True
    query = ""  # after /manifest

    def open(self) -> Session | None:
        name = random.choice(CHANNELS if self.live else CLEAR_ASSETS)
        url = f"{self.host}/{name}.{'isml' if self.live else 'ism'}/manifest{self.query}"
        kinds = self._read(url)
        if kinds is None or not kinds.get("video"):
            return None
        audio = (kinds.get("audio") or [None])[0]
        return Session(kinds["video"], self.live, 2.0, reload=url, audio=audio)

    def _read(self, url: str) -> dict[str, list[Level]] | None:  # pragma: no cover - per format
        raise NotImplementedError

    def refresh(self, s: Session) -> None:
        assert s.reload is not None
        fresh = self._read(s.reload)
        if fresh is None:
            return
        by_bw = {lv.bandwidth: lv for lv in fresh.get("video", [])}
        for level in s.levels:
            if level.bandwidth in by_bw:
                level.segments = by_bw[level.bandwidth].segments
        if s.audio is not None and fresh.get("audio"):
            s.audio.segments = fresh["audio"][0].segments


class DashViewer(_OneManifest):
    fmt = "mpd-time-csf"
    query = f"(format={fmt})"

    def _read(self, url: str) -> dict[str, list[Level]] | None:
        body = self.get(url, "mpd", f"MPD ({self.fmt})")
        if body is None:
            return None
        kinds: dict[str, list[Level]] = {}
        for aset in ET.fromstring(body).iterfind(".//d:AdaptationSet", _NS):
            tpl = aset.find("d:SegmentTemplate", _NS)
            if tpl is None:
                continue
            scale = int(tpl.get("timescale", "1"))
            times: list[tuple[int, int]] = []
            t = 0
            for s in tpl.iterfind("d:SegmentTimeline/d:S", _NS):
                t = int(s.get("t", t))
                d = int(s.get("d", "0"))
                for _ in range(int(s.get("r", "0")) + 1):
                    times.append((t, d))
                    t += d
            levels = kinds.setdefault(aset.get("contentType", ""), [])
            for rep in aset.iterfind("d:Representation", _NS):
                rid = rep.get("id", "")
                media = tpl.get("media", "").replace("$RepresentationID$", rid)
                init = tpl.get("initialization", "").replace("$RepresentationID$", rid)
                segs = [
                    (urljoin(url, media.replace("$Time$", str(t))), d / scale, t) for t, d in times
                ]
                levels.append(Level(int(rep.get("bandwidth", "0")), segs, init=urljoin(url, init)))
        return kinds


class SmoothViewer(_OneManifest):
    def _read(self, url: str) -> dict[str, list[Level]] | None:
        body = self.get(url, "ism", "Smooth manifest")
        if body is None:
            return None
        root = ET.fromstring(body)
        scale = int(root.get("TimeScale", "10000000"))
        kinds: dict[str, list[Level]] = {}
        for stream in root.iter("StreamIndex"):
            template = stream.get("Url", "")
            times: list[tuple[int, int]] = []
            t = 0
            for c in stream.iter("c"):
                t = int(c.get("t", t))
                d = int(c.get("d", "0"))
                times.append((t, d))
                t += d
            levels = kinds.setdefault(stream.get("Type", ""), [])
            for q in stream.iter("QualityLevel"):
                bitrate = q.get("Bitrate", "0")
                tpl = template.replace("{bitrate}", bitrate)
                segs = [
                    (urljoin(url, tpl.replace("{start time}", str(t))), d / scale, t)
                    for t, d in times
                ]
                levels.append(Level(int(bitrate), segs))
        return kinds


class LiveHlsTsViewer(HlsTsViewer):
    live = True


class LiveHlsFmp4Viewer(HlsFmp4Viewer):
    live = True


class LiveDashViewer(DashViewer):
    live = True


class LiveSmoothViewer(SmoothViewer):
    live = True


if not CHANNELS:  # nothing to watch live: locust must not pick these classes
    for _cls in (LiveHlsTsViewer, LiveHlsFmp4Viewer, LiveDashViewer, LiveSmoothViewer):
        _cls.abstract = True
