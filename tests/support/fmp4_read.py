"""A test-side fMP4 box walker and synthetic tracks (independent of origin.core.mp4), shared by
the fMP4 and Smooth writer tests."""

from __future__ import annotations

import struct
import subprocess
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from origin.core.index import SampleIndex
from origin.core.mux.run import Run
from origin.core.track import AacConfig, AvcConfig, Kind, Track
from tests.support.media import FFMPEG

# --- a test-side box walker (independent of origin.core.mp4) -----------------------------------

CONTAINERS = {"moov", "trak", "mdia", "minf", "stbl", "dinf", "edts", "mvex", "moof", "traf"}


@dataclass
class Box:
    kind: str
    start: int  # first byte of the header
    end: int
    body: int  # first byte after the header (after version/flags for full boxes it is +4)
    children: list[Box] = field(default_factory=list)

    def find(self, path: str) -> Box:
        box = self
        for kind in path.split("/"):
            matches = [c for c in box.children if c.kind == kind]
            assert len(matches) == 1, f"{kind} in {box.kind}: {[c.kind for c in box.children]}"
            box = matches[0]
        return box

    def has(self, kind: str) -> bool:
        return any(c.kind == kind for c in self.children)

    def tree(self) -> list[object]:
        return [(c.kind, c.tree()) if c.children else c.kind for c in self.children]


def walk(data: bytes, start: int = 0, end: int | None = None) -> Box:
    """Parse every box; asserts sizes are consistent (children fill their parent exactly)."""
    root = Box("<root>", start, len(data) if end is None else end, start)
    _walk_into(data, root)
    return root


def _walk_into(data: bytes, parent: Box) -> None:
    pos = parent.body
    while pos < parent.end:
        size, raw = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        assert size >= header, f"box {raw!r} at {pos} has size {size}"
        box = Box(raw.decode("latin-1"), pos, pos + size, pos + header)
        assert box.end <= parent.end, f"{box.kind} overruns {parent.kind}"
        if box.kind in CONTAINERS:
            _walk_into(data, box)
        elif box.kind == "dref":
            box.body += 8  # version/flags + entry_count, then boxes
            _walk_into(data, box)
        parent.children.append(box)
        pos = box.end
    assert pos == parent.end, f"children of {parent.kind} do not fill it"


def full(data: bytes, box: Box) -> tuple[int, int, int]:
    """(version, flags, offset of the fields after them)."""
    word = struct.unpack_from(">I", data, box.body)[0]
    return word >> 24, word & 0xFFFFFF, box.body + 4


def brands(data: bytes, box: Box) -> tuple[str, list[str]]:
    raw = data[box.body : box.end]
    return raw[:4].decode(), [raw[i : i + 4].decode() for i in range(8, len(raw), 4)]


@dataclass
class Trun:
    version: int
    flags: int
    data_offset: int
    entries: list[dict[str, int]]


def read_trun(data: bytes, box: Box) -> Trun:
    version, flags, pos = full(data, box)
    count = struct.unpack_from(">I", data, pos)[0]
    pos += 4
    data_offset = 0
    if flags & 0x1:
        data_offset = struct.unpack_from(">i", data, pos)[0]
        pos += 4
    assert not flags & 0x4, "first_sample_flags is not expected"
    fields = [(0x100, "duration", "I"), (0x200, "size", "I"), (0x400, "flags", "I")]
    fields.append((0x800, "cto", "i" if version == 1 else "I"))
    entries = []
    for _ in range(count):
        entry = {}
        for bit, name, code in fields:
            if flags & bit:
                entry[name] = struct.unpack_from(">" + code, data, pos)[0]
                pos += 4
        entries.append(entry)
    assert pos == box.end, "trun entries do not fill the box"
    return Trun(version, flags, data_offset, entries)


# --- hand-built tracks --------------------------------------------------------------------------


def lift_stsd(path: Path, handler: bytes) -> bytes:
    data = path.read_bytes()
    moov = walk(data).find("moov")
    for trak in (c for c in moov.children if c.kind == "trak"):
        hdlr = trak.find("mdia/hdlr")
        if data[hdlr.body + 8 : hdlr.body + 12] == handler:
            stsd = trak.find("mdia/minf/stbl/stsd")
            return data[stsd.start : stsd.end]
    raise AssertionError(f"no {handler!r} track in {path}")


# Minimal stsd with zero entries: enough for box-level tests that never decode.
STUB_STSD = struct.pack(">I4sII", 16, b"stsd", 0, 0)
AVC = AvcConfig(100, 0, 13, 4, (b"\x67",), (b"\x68",), b"")
AAC = AacConfig(2, 48000, 3, 2, b"\x11\x90", 0, 0)
# Decode-order composition offsets of an I P B B pattern, as ffmpeg writes them with 2 B-frames.
GOP_CTO = [1024, 2560, 512, 1024]


def video_track(
    n: int = 12,
    *,
    pts_shift: int = -1024,
    keyframes: tuple[int, ...] = (0, 8),
    first_dts: int = 0,
    stsd: bytes = STUB_STSD,
    par: tuple[int, int] = (1, 1),
    sizes: list[int] | None = None,
) -> Track:
    sizes = sizes or [100 + 7 * i for i in range(n)]
    cto = [GOP_CTO[i % 4] if i % 8 else 1024 for i in range(n)]
    samples = SampleIndex(
        dts=array("q", [first_dts + 512 * i for i in range(n)]),
        duration=array("I", [512] * n),
        cto=array("i", cto),
        size=array("I", sizes),
        offset=array("Q", [sum(sizes[:i]) for i in range(n)]),
        keyframes=array("I", keyframes),
    )
    return Track(
        track_id=1,
        kind=Kind.VIDEO,
        timescale=12800,
        language="und",
        codec=AVC,
        stsd=stsd,
        pts_shift=pts_shift,
        samples=samples,
        width=320,
        height=180,
        par=par,
    )


def audio_track(
    n: int = 10,
    *,
    pts_shift: int = -1024,
    stsd: bytes = STUB_STSD,
    language: str = "eng",
    track_id: int = 2,
) -> Track:
    samples = SampleIndex(
        dts=array("q", [1024 * i for i in range(n)]),
        duration=array("I", [1024] * (n - 1) + [512]),
        cto=array("i", [0] * n),
        size=array("I", [200 + i for i in range(n)]),
        offset=array("Q", range(n)),
        keyframes=array("I", range(n)),
    )
    return Track(
        track_id=track_id,
        kind=Kind.AUDIO,
        timescale=48000,
        language=language,
        codec=AAC,
        stsd=stsd,
        pts_shift=pts_shift,
        samples=samples,
        sample_rate=48000,
        channels=2,
    )


def payloads(track: Track, start: int, stop: int) -> list[bytes]:
    """Distinct, recognisable bytes per sample."""
    return [bytes([i % 251]) * track.samples.size[i] for i in range(start, stop)]


def run_of(track: Track, start: int, stop: int) -> Run:
    return Run(track, start, stop, payloads(track, start, stop))


FRAMEMD5 = ("-f", "framemd5", "-")


def frame_hashes(path: Path, stream: str) -> list[str]:
    """Decoded frames' md5s in presentation order (timestamps left out)."""
    out = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-map", f"0:{stream}", *FRAMEMD5],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if not line.startswith("#")]
