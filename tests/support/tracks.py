"""Hand-built tracks for tests that must not depend on the MP4 parser."""

from __future__ import annotations

from array import array

from origin.core.index import SampleIndex
from origin.core.track import AacConfig, AvcConfig, Kind, Track

AVC = AvcConfig(0x64, 0, 0x1F, 4, (b"\x67\x64\x00\x1f",), (b"\x68\xee",), b"")
AAC = AacConfig(2, 48000, 3, 2, b"\x11\x90", 0, 0)


def video_track(
    n: int,
    *,
    timescale: int = 12800,
    frame: int = 512,
    gop: int = 48,
    keyframes: list[int] | None = None,
    cto: list[int] | None = None,
    pts_shift: int = 0,
    size: int = 1000,
) -> Track:
    keys = keyframes if keyframes is not None else list(range(0, n, gop))
    idx = SampleIndex(
        dts=array("q", [i * frame for i in range(n)]),
        duration=array("I", [frame] * n),
        cto=array("i", cto if cto is not None else [0] * n),
        size=array("I", [size] * n),
        offset=array("Q", [i * size for i in range(n)]),
        keyframes=array("I", keys),
    )
    return Track(1, Kind.VIDEO, timescale, "und", AVC, b"", pts_shift, idx, 640, 360)


def audio_track(n: int, *, timescale: int = 48000, frame: int = 1024, pts_shift: int = 0) -> Track:
    idx = SampleIndex(
        dts=array("q", [i * frame for i in range(n)]),
        duration=array("I", [frame] * n),
        cto=array("i", [0] * n),
        size=array("I", [300] * n),
        offset=array("Q", [i * 300 for i in range(n)]),
        keyframes=array("I", range(n)),
    )
    return Track(
        2, Kind.AUDIO, timescale, "eng", AAC, b"", pts_shift, idx, sample_rate=48000, channels=2
    )
