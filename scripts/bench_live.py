"""The live rows of scripts/bench.py: playlists of a looped channel, fragment-to-playlist latency
and ingest CPU, against the same one-worker server.

An encoder is stood in for by a pusher that replays a pre-made ffmpeg ismv (made once with ffmpeg
and cached next to the big VOD asset) over ONE chunked HTTP POST, as ``ffmpeg -re -f ismv`` does,
paced at real time: each ``moof``+``mdat`` pair leaves when its media end time is due (an encoder
cannot send a fragment before its last frame exists). The chunked framing is written on a raw
socket so the bench knows when the last byte of a fragment has left.
"""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import m3u8

INGEST_USER = "bench"
INGEST_SECRET = "bench-ingest-secret-4f1c9a7e"
LOOP_CHANNEL = "bench-loop"
LATENCY_CHANNEL = "bench-latency"
LADDER_CHANNEL = "bench-ladder"
GOP_S = 2  # = the ingest channels' segment_duration: every video fragment completes a segment
MEDIA_S = 60
LADDER = (("240p", 426, 240, "400k"), ("360p", 640, 360, "800k"), ("480p", 854, 480, "1200k"))
CPU_S = 30.0  # ingest CPU is measured over the first CPU_S seconds, nobody playing
LATENCY_TARGET_MS = 20.0
CPU_TARGET_PCT = 5.0

Row = tuple[str, dict[str, float], float]  # as bench.py's rows: name, wrk figures, avg size
Wrk = Callable[[list[str]], dict[str, float]]
Get = Callable[[str], bytes]


def config(sample_asset: str) -> str:
    """The bench config's channels: the sample looped on the wall clock, two ingest channels."""
    ingest = f"""
ingest_user = "{INGEST_USER}"
ingest_secret = "{INGEST_SECRET}"
segment_duration = {GOP_S}
window = 120
protection = "clear"
"""
    return f"""
[[channels]]
name = "{LOOP_CHANNEL}"
loop = true
asset = "{sample_asset}"
window = 120

[[channels]]
name = "{LATENCY_CHANNEL}"
{ingest}
[[channels]]
name = "{LADDER_CHANNEL}"
{ingest}"""


def make_ladder(cache: Path) -> list[Path]:
    """Three ismv renditions (H.264 + AAC, 2 s GOPs, 60 s), made once with ffmpeg and cached."""
    cache.mkdir(exist_ok=True)
    out = []
    for name, w, h, rate in LADDER:
        path = cache / f"bench_live_{name}.ismv"
        if not path.exists():
            print(f"making a {MEDIA_S} s {name} ismv with ffmpeg…", flush=True)
            tmp = path.with_suffix(".tmp")
            subprocess.run(
                [
                    "ffmpeg", "-nostdin", "-v", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=30:duration={MEDIA_S}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={MEDIA_S}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-b:v", rate, "-maxrate", rate,
                    "-bufsize", rate, "-g", str(30 * GOP_S), "-keyint_min", str(30 * GOP_S),
                    "-sc_threshold", "0", "-c:a", "aac", "-b:a", "64k",
                    "-f", "ismv", "-movflags", "isml+frag_keyframe", str(tmp),
                ],
                check=True,
            )  # fmt: skip
            tmp.rename(path)
        out.append(path)
    return out


# ---- the ismv, cut into what an encoder sends and when ----------------------------------------


@dataclass(frozen=True, slots=True)
class Piece:
    data: bytes
    due: float  # seconds after the start of the push when it may leave
    video: bool  # a video fragment (each completes a segment)


def _boxes(b: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, offset, size, header size) of the boxes in b[start:end]."""
    while start + 8 <= end:
        size, typ = struct.unpack_from(">I4s", b, start)
        head = 8
        if size == 1:
            size = struct.unpack_from(">Q", b, start + 8)[0]
            head = 16
        elif size == 0:
            size = end - start
        if size < head:
            raise ValueError(f"bad box size {size} at {start}")
        yield typ, start, size, head
        start += size


def _child(b: bytes, start: int, end: int, typ: bytes) -> tuple[int, int] | None:
    for t, s, z, h in _boxes(b, start, end):
        if t == typ:
            return s + h, s + z
    return None


def _tracks(b: bytes, moov: tuple[int, int]) -> dict[int, tuple[int, bool]]:
    """track_ID -> (timescale, is video) from the moov."""
    out = {}
    for t, s, z, h in _boxes(b, *moov):
        if t != b"trak":
            continue
        tkhd = _child(b, s + h, s + z, b"tkhd")
        mdia = _child(b, s + h, s + z, b"mdia")
        assert tkhd is not None and mdia is not None
        track_id = struct.unpack_from(">I", b, tkhd[0] + (20 if b[tkhd[0]] == 1 else 12))[0]
        mdhd = _child(b, *mdia, b"mdhd")
        hdlr = _child(b, *mdia, b"hdlr")
        assert mdhd is not None and hdlr is not None
        scale = struct.unpack_from(">I", b, mdhd[0] + (20 if b[mdhd[0]] == 1 else 12))[0]
        out[track_id] = (scale, b[hdlr[0] + 8 : hdlr[0] + 12] == b"vide")
    return out


_TFXD = bytes.fromhex("6d1d9b0542d544e680e2141daff757b2")


def _fragment_end(
    b: bytes, moof: tuple[int, int], tracks: dict[int, tuple[int, bool]]
) -> tuple[float, bool]:
    """(media end time in seconds, is video) of a moof, from its tfhd and Smooth tfxd box."""
    traf = _child(b, *moof, b"traf")
    assert traf is not None
    tfhd = _child(b, *traf, b"tfhd")
    assert tfhd is not None
    scale, video = tracks[struct.unpack_from(">I", b, tfhd[0] + 4)[0]]
    for t, s, _z, h in _boxes(b, *traf):
        if t == b"uuid" and b[s + h : s + h + 16] == _TFXD:
            at = s + h + 16
            if b[at] == 1:
                start, dur = struct.unpack_from(">qQ", b, at + 4)
            else:
                start, dur = struct.unpack_from(">iI", b, at + 4)
            return (start + dur) / scale, video
    raise ValueError("a moof without tfxd: not an ffmpeg ismv")


def pieces(b: bytes) -> list[Piece]:
    """ftyp/uuid/moov as one piece due at once, then each moof+mdat pair due at its end time."""
    out: list[Piece] = []
    tracks: dict[int, tuple[int, bool]] = {}
    pending: tuple[int, float, bool] | None = None  # a moof waiting for its mdat
    for t, s, z, h in _boxes(b, 0, len(b)):
        if t == b"moov":
            tracks = _tracks(b, (s + h, s + z))
        if t == b"moof":
            if not out:
                out.append(Piece(b[:s], 0.0, False))
            end, video = _fragment_end(b, (s + h, s + z), tracks)
            pending = (s, end, video)
        elif t == b"mdat" and pending is not None:
            out.append(Piece(b[pending[0] : s + z], pending[1], pending[2]))
            pending = None
        elif out:  # mfra and the like, after the fragments: sent with the last one
            out.append(Piece(b[s : s + z], out[-1].due, False))
    return out


# ---- the pusher ----------------------------------------------------------------------------


class Pusher:
    """One chunked POST to ``/{channel}.isml/Streams({stream})``, written by hand."""

    def __init__(self, base: str, channel: str, stream: str) -> None:
        u = urlsplit(base)
        assert u.hostname is not None and u.port is not None
        self.sock = socket.create_connection((u.hostname, u.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(
            f"POST /{channel}.isml/Streams({stream}) HTTP/1.1\r\nHost: {u.netloc}\r\n"
            f"Authorization: Bearer {INGEST_SECRET}\r\nContent-Type: video/mp4\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )

    def send(self, data: bytes) -> None:
        self.sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")

    def finish(self) -> str:
        """End the body; the status line of the answer."""
        self.sock.sendall(b"0\r\n\r\n")
        self.sock.settimeout(10)
        answer = self.sock.recv(4096).decode(errors="replace")
        self.sock.close()
        return answer.split("\r\n", 1)[0]


def push(
    base: str,
    channel: str,
    stream: str,
    plan: list[Piece],
    *,
    until: float | None = None,
    after_video: Callable[[float], None] | None = None,
) -> str:
    """Send ``plan`` paced at real time (pieces due before ``until`` seconds); call
    ``after_video(t)`` right after the last byte of each video fragment left, at t
    (time.perf_counter)."""
    p = Pusher(base, channel, stream)
    t0 = time.perf_counter()
    for piece in plan:
        if until is not None and piece.due > until:
            break
        wait = t0 + piece.due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        p.send(piece.data)
        if piece.video and after_video is not None:
            after_video(time.perf_counter())
    return p.finish()


# ---- the rows ------------------------------------------------------------------------------


def _media_playlists(get: Get, base: str, channel: str, fmt: str) -> list[str]:
    """The media playlist URLs of a channel's master, video renditions first."""
    master_url = f"{base}/{channel}.isml/manifest(format={fmt})"
    master = m3u8.loads(get(master_url).decode(), uri=master_url)
    return [urljoin(master_url, p.uri) for p in master.playlists]


def _wait_master(base: str, channel: str, fmt: str, get: Get) -> list[str]:
    for _ in range(200):
        try:
            return _media_playlists(get, base, channel, fmt)
        except OSError:  # 404 until a stream has arrived
            time.sleep(0.05)
    raise SystemExit(f"channel {channel!r} never served its {fmt} master")


class Poller:
    """GETs one playlist over a keep-alive connection; its segment URIs."""

    def __init__(self, url: str) -> None:
        u = urlsplit(url)
        self.path = u.path + (f"?{u.query}" if u.query else "")
        self.conn = http.client.HTTPConnection(u.netloc, timeout=10)

    def segments(self) -> list[str]:
        self.conn.request("GET", self.path)
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            return []
        return [ln for ln in body.decode().splitlines() if ln and not ln.startswith("#")]


def latency(base: str, plan: list[Piece], get: Get) -> list[float]:
    """Milliseconds from each video fragment's last byte to its segment in the fMP4 playlist:
    the k-th video fragment sent is there once the playlist lists k segments (the window
    outlasts the push, so none slides out)."""
    samples: list[float] = []
    poller: Poller | None = None
    sent_count = 0

    def after_video(sent: float) -> None:
        nonlocal poller, sent_count
        sent_count += 1
        if poller is None:  # the master appears with the first fragment: no sample for it
            poller = Poller(_wait_master(base, LATENCY_CHANNEL, "m3u8-cmaf", get)[0])
            while len(poller.segments()) < sent_count:
                time.sleep(0.01)
            return
        deadline = sent + 2 * GOP_S
        while time.perf_counter() < deadline:
            if len(poller.segments()) >= sent_count:
                samples.append(1000 * (time.perf_counter() - sent))
                return
        print(f"  fragment {sent_count} not listed {2 * GOP_S} s after its last byte", flush=True)

    status = push(base, LATENCY_CHANNEL, "s1", plan, after_video=after_video)
    if not status.startswith("HTTP/1.1 200"):
        raise SystemExit(f"the latency push was answered {status!r}")
    return samples


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _cpu_pct(pid: int, seconds: float) -> float:
    c0, t0 = _cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    return 100 * (_cpu_seconds(pid) - c0) / (time.perf_counter() - t0)


def ladder(
    base: str, plans: list[list[Piece]], pid: int, *, get: Get, wrk: Wrk, wrk_seconds: int
) -> tuple[float, Row | None]:
    """Three pushers in parallel into one channel: % of one core over the first CPU_S seconds,
    nobody playing; then, while they still run, wrk on that channel's media playlists."""
    statuses: list[str] = []
    threads = [
        threading.Thread(
            target=lambda p=plan, s=stream: statuses.append(push(base, LADDER_CHANNEL, s, p))
        )
        for plan, (stream, *_) in zip(plans, LADDER, strict=True)
    ]
    c0, t0 = _cpu_seconds(pid), time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(CPU_S)
    pct = 100 * (_cpu_seconds(pid) - c0) / (time.perf_counter() - t0)
    row = None
    if CPU_S + wrk_seconds + 2 * GOP_S < MEDIA_S:
        urls = _media_playlists(get, base, LADDER_CHANNEL, "m3u8-cmaf")[:1]
        urls += _media_playlists(get, base, LADDER_CHANNEL, "m3u8-aapl")[:1]
        size = _avg(get, urls)  # fetched once first, as bench.measure does
        row = ("ingest channel TS+fMP4 playlists, 3 pushing", wrk(urls), size)
    for t in threads:
        t.join()
    if not all(s.startswith("HTTP/1.1 200") for s in statuses):
        raise SystemExit(f"the ladder pushes were answered {statuses}")
    return pct, row


def _avg(get: Get, urls: list[str]) -> float:
    return sum(len(get(u)) for u in urls) / len(urls)


@dataclass(frozen=True, slots=True)
class Results:
    rows: list[Row]
    latency_ms: list[float]
    idle_pct: float
    ingest_pct: float


def run(base: str, pid: int, cache: Path, *, get: Get, wrk: Wrk, wrk_seconds: int) -> Results:
    plans = [pieces(p.read_bytes()) for p in make_ladder(cache)]
    rows: list[Row] = []
    for fmt, label in (("m3u8-aapl", "TS"), ("m3u8-cmaf", "fMP4")):
        urls = _wait_master(base, LOOP_CHANNEL, fmt, get)[:1]
        size = _avg(get, urls)  # fetched once first, as bench.measure does
        rows.append((f"looped channel HLS {label} media playlist", wrk(urls), size))
    idle = _cpu_pct(pid, 5.0)  # the looped channel's feeder runs all along
    print("live: pushing 60 s of ismv for the latency…", flush=True)
    samples = latency(base, plans[0], get)
    print(f"live: pushing 3 renditions for {CPU_S:.0f} s of CPU…", flush=True)
    pct, row = ladder(base, plans, pid, get=get, wrk=wrk, wrk_seconds=wrk_seconds)
    if row is not None:
        rows.append(row)
    return Results(rows, samples, idle, pct)


def report(r: Results, row_line: Callable[[Row], str]) -> None:
    print()
    print(f"live (2 s segments ingested from ffmpeg ismv at real time, {GOP_S} s GOPs)")
    for row in r.rows:
        print(row_line(row))
    s = sorted(r.latency_ms)
    if len(s) >= 2:
        p99 = s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]
        print(
            f"fragment to fMP4 playlist latency: p50 {statistics.median(s):.1f} ms, "
            f"p99 {p99:.1f} ms, max {s[-1]:.1f} ms over {len(s)} fragments "
            f"(target < {LATENCY_TARGET_MS:.0f} ms)"
        )
    else:
        print(f"fragment to playlist latency: only {len(s)} sample(s)")
    print(
        f"ingest CPU, 3 renditions at real time: {r.ingest_pct:.1f}% of one core "
        f"(target < {CPU_TARGET_PCT:.0f}%; idle, looped channel only: {r.idle_pct:.1f}%)"
    )
