"""ts_sizes.segment_size_bounds (running sums over the sample table, used at load for BANDWIDTH)
gives exactly mpegts.segment_size_bound (which plans every packet) for every segment: on real
media, on the bench ladder when it is there, and on random tracks made to hit every branch
(B-frames, negative offsets, 1- and 2-byte NAL lengths, timescales above 90 kHz, video gaps over
100 ms, audio before and after the video, irregular audio, segments too small to pad)."""

from __future__ import annotations

import random
from array import array
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import pytest

from origin.core.index import SampleIndex
from origin.core.mp4.parse import parse_bytes
from origin.core.mux import mpegts, ts_sizes
from origin.core.presentation import Deferred, Presentation, prepare
from origin.core.track import AacConfig, AvcConfig, Kind, Track
from tests.support.media import make_mp4

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = [ROOT / "origin" / "sample" / f"sample_{n}.mp4" for n in ("240p", "360p", "480p")]
LADDER = [Path(f"/tmp/origin-bench/bench_ladder_{n}.mp4") for n in ("240p", "360p", "480p")]
SPS = bytes.fromhex("6764000dacd941419f9f011000000300100000030320f1429960")
PPS = bytes.fromhex("68efbcb0")
AAC = AacConfig(2, 48000, 3, 2, b"\x11\x90", 0, 0)

Cut = tuple[Track, list[int]] | None


def reference(video: Cut, audio: Cut, delay: int = 0) -> list[int]:
    """segment_size_bound of each segment, planned packet by packet."""
    n = len(video[1]) - 1 if video else len(audio[1]) - 1 if audio else 0
    out = []
    for k in range(n):
        v = (video[0], video[1][k], video[1][k + 1]) if video else None
        a = (audio[0], audio[1][k], audio[1][k + 1]) if audio else None
        out.append(mpegts.segment_size_bound(v, a, video_delay=delay))
    return out


def fast_share(video: Cut, audio: Cut, delay: int = 0) -> float:
    """The share of segments the running sums answer (the rest is planned)."""
    sums = ts_sizes.SizeSums()
    vs = sums.video(video[0], delay) if video else None
    au = sums.audio(audio[0]) if audio else None
    n = len(video[1]) - 1 if video else len(audio[1]) - 1 if audio else 0
    hits = 0
    for k in range(n):
        v = (video[0], video[1][k], video[1][k + 1]) if video else None
        a = (audio[0], audio[1][k], audio[1][k + 1]) if audio else None
        hits += ts_sizes._fast_bound(v, vs, a, au) is not None
    return hits / n


def check(video: Cut, audio: Cut, delay: int = 0) -> list[int]:
    want = reference(video, audio, delay)
    got = ts_sizes.segment_size_bounds(video, audio, video_delay=delay)
    assert got == want
    return got


def check_presentation(p: Presentation, *, planned: bool = False) -> None:
    """Every TS rendition of a prepared asset, as _ts_bandwidths cuts it, equals the reference
    and (unless ``planned``: outside the sums' assumptions) is answered by the sums alone."""
    for r in p.video:
        aseg = p.muxed_audio.get(r.id)
        a = (p.audio.track, list(aseg.starts)) if p.audio and aseg else None
        v = (r.track, list(r.seg.starts))
        check(v, a, r.edit.raise_by)
        assert fast_share(v, a, r.edit.raise_by) == (0.0 if planned else 1.0)
    if p.audio:
        a = (p.audio.track, list(p.audio.seg.starts))
        check(None, a)
        assert fast_share(None, a) >= (len(p.audio.seg) - 1) / len(p.audio.seg)


def load(paths: list[Path], target: Fraction = Fraction(4)) -> Presentation:
    return prepare("t", [parse_bytes(p.read_bytes()) for p in paths], target)


# --- real media -------------------------------------------------------------------------------


def test_the_shipped_sample() -> None:
    check_presentation(load(SAMPLE))
    check_presentation(load(SAMPLE[:1], Fraction(2)))


def test_bandwidths_are_computed_on_first_use_and_kept() -> None:
    p = load(SAMPLE)
    for bandwidths in (p.ts_bandwidth, p.cmaf_bandwidth):
        assert isinstance(bandwidths, Deferred)
        assert repr(bandwidths) == "Deferred(...)"
    ts = p.ts_bandwidth["video", p.video[0].id]
    assert p.ts_bandwidth["video", p.video[0].id] is ts
    assert len(p.ts_bandwidth) == len(p.video) + 1
    assert repr(p.cmaf_bandwidth) == "Deferred(...)"  # each format's on its own first use
    assert dict(p.cmaf_bandwidth).keys() == dict(p.ts_bandwidth).keys()


def test_b_frames_and_aac_priming(bframes_mp4: Path, moov_at_end_mp4: Path) -> None:
    check_presentation(load([bframes_mp4], Fraction(2)))
    check_presentation(load([moov_at_end_mp4], Fraction(1)))


@pytest.mark.parametrize(
    ("name", "opts"),
    [
        ("44k1_3b", {"sample_rate": 44100, "bframes": 3, "fps": 30, "gop": 30}),
        ("video_only", {"audio": False}),
        ("audio_only", {"video": False}),
        ("lowfps", {"fps": 5, "gop": 10, "sample_rate": 22050}),
    ],
)
def test_other_encodes(media_dir: Path, name: str, opts: dict[str, object]) -> None:
    path = make_mp4(media_dir / f"bound_{name}.mp4", seconds=6.0, **opts)  # type: ignore[arg-type]
    # 5 fps: video frames 200 ms apart, where PCR-only packets can go anywhere: planned.
    check_presentation(load([path], Fraction(2)), planned=name == "lowfps")


@pytest.mark.skipif(not all(p.exists() for p in LADDER), reason="scripts/bench.py's ladder")
def test_the_bench_ladder() -> None:
    check_presentation(load(LADDER))


# --- random tracks ----------------------------------------------------------------------------


def video(
    rng: random.Random,
    n: int,
    *,
    nls: int = 4,
    timescale: int = 12800,
    frame: int = 512,
    bframes: bool = True,
    negative: bool = False,
    gaps: bool = False,
    tiny: bool = False,
    pts_shift: int = 0,
) -> Track:
    dts, cto, size, keys = [], [], [], []
    t = rng.randrange(0, 3) * frame
    for i in range(n):
        if i == 0 or rng.random() < 0.08:
            keys.append(i)
        dts.append(t)
        step = frame
        if gaps and rng.random() < 0.05:
            step = frame * rng.randrange(2, 12)  # a hole longer than 100 ms, or not
        t += step
        c = rng.choice((0, 1, 2, 3)) * frame if bframes and i not in keys else 0
        if timescale > 90000 and bframes:
            c += rng.randrange(0, 3)  # offsets below a 90 kHz tick
        cto.append(c - (2 * frame if negative else 0))
        size.append(rng.randrange(1, 40) if tiny else rng.choice((1, 150, 176, 177, 2500, 9000)))
        if not tiny and rng.random() < 0.5:
            size[-1] = rng.randrange(1, 30000)
    durations = [b - a for a, b in pairwise(dts)] + [frame]
    idx = SampleIndex(
        dts=array("q", dts),
        duration=array("I", durations),
        cto=array("i", cto),
        size=array("I", size),
        offset=array("Q", [0] * n),
        keyframes=array("I", keys),
    )
    cfg = AvcConfig(0x64, 0, 0x1F, nls, (SPS,), (PPS,), b"")
    return Track(1, Kind.VIDEO, timescale, "und", cfg, b"", pts_shift, idx, 640, 360)


def audio(
    rng: random.Random,
    n: int,
    *,
    timescale: int = 48000,
    frame: int = 1024,
    jitter: bool = False,
    last: int | None = None,
    gap: bool = False,
    tiny: bool = False,
    pts_shift: int = 0,
    start: int = 0,
) -> Track:
    durations = [frame + (rng.randrange(-3, 4) if jitter else 0) for _ in range(n)]
    if last is not None:
        durations[-1] = last
    dts = [start]
    for i, d in enumerate(durations[:-1]):
        dts.append(dts[-1] + d + (frame * 7 if gap and i == n // 2 else 0))
    high = 40 if tiny else 8000
    idx = SampleIndex(
        dts=array("q", dts),
        duration=array("I", durations),
        cto=array("i", [0] * n),
        size=array("I", [rng.randrange(1, high) for _ in range(n)]),
        offset=array("Q", [0] * n),
        keyframes=array("I", range(n)),
    )
    return Track(2, Kind.AUDIO, timescale, "eng", AAC, b"", pts_shift, idx, 0, 0)


def cuts(rng: random.Random, n: int, segments: int, *, empty: bool = False) -> list[int]:
    if n < 2 and not empty:
        return [0, n]
    inner = sorted(rng.choices(range(0 if empty else 1, n + (1 if empty else 0)), k=segments - 1))
    if not empty:
        inner = sorted(set(inner))
    return [0, *inner, n]


def aligned(v: Track, vcuts: list[int], a: Track) -> list[int]:
    """Audio cut at the video cuts' decode times, as near as the sample tables allow."""
    out = [0]
    for c in vcuts[1:-1]:
        t = Fraction(v.samples.dts[c] + v.pts_shift, v.timescale)
        i = next(
            (
                i
                for i in range(out[-1], len(a.samples))
                if Fraction(a.samples.dts[i] + a.pts_shift, a.timescale) >= t
            ),
            len(a.samples),
        )
        out.append(i)
    out.append(len(a.samples))
    return out


VIDEO_CASES = {
    "plain": {"bframes": False},
    "bframes": {},
    "negative": {"negative": True},
    "nls1": {"nls": 1},
    "nls2": {"nls": 2},
    "ts90k": {"timescale": 90000, "frame": 3000},
    "ts1M": {"timescale": 1_000_000, "frame": 33333},
    "gaps": {"gaps": True},
    "slow": {"timescale": 1000, "frame": 200},  # 5 fps: frames 200 ms apart
    "tiny": {"tiny": True},
    "shifted": {"pts_shift": 1024},
}


@pytest.mark.parametrize("case", sorted(VIDEO_CASES))
@pytest.mark.parametrize("seed", range(4))
def test_random_video_with_audio(case: str, seed: int) -> None:
    rng = random.Random(f"{case}{seed}")
    n = rng.randrange(1, 160)
    v = video(rng, n, **VIDEO_CASES[case])  # type: ignore[arg-type]
    delay = max(0, -min(v.samples.cto))
    vcuts = cuts(rng, n, rng.randrange(1, 8))
    end = Fraction(v.samples.dts[-1] + v.samples.duration[-1], v.timescale)
    na = max(1, int(end * 48000 / 1024) + rng.randrange(-10, 10))
    # Audio starting before the video, with it, or after it, cut where the video is.
    start = rng.choice((0, 0, 512, 4800, 30000))
    a = audio(rng, na, start=start, pts_shift=rng.randrange(-2048, 1))
    check((v, vcuts), (a, aligned(v, vcuts, a)), delay)
    check((v, vcuts), (a, cuts(rng, na, len(vcuts) - 1, empty=True)), delay)
    check((v, vcuts), None, delay)
    if case == "negative":  # too small a delay clamps DTS to PTS: planned, still the same
        check((v, vcuts), (a, aligned(v, vcuts, a)), 0)


AUDIO_CASES = {
    "48k": {},
    "44k1": {"timescale": 44100},
    "8k": {"timescale": 8000},  # one frame per PES: 5 would last over 100 ms
    "96k": {"timescale": 96000},  # five frames fit 100 ms
    "jitter": {"jitter": True},
    "short_last": {"last": 300},
    "gap": {"gap": True},
    "tiny": {"tiny": True},
}


@pytest.mark.parametrize("case", sorted(AUDIO_CASES))
@pytest.mark.parametrize("seed", range(4))
def test_random_audio_alone(case: str, seed: int) -> None:
    rng = random.Random(f"{case}{seed}")
    n = rng.randrange(1, 400)
    a = audio(rng, n, **AUDIO_CASES[case])  # type: ignore[arg-type]
    for _ in range(3):
        check(None, (a, cuts(rng, n, rng.randrange(1, 9))))
    if case in ("48k", "44k1", "8k", "96k", "tiny"):
        assert fast_share(None, (a, [0, n])) == 1.0


def one_byte_samples(t: Track, codec: AvcConfig | AacConfig) -> Track:
    s = t.samples
    ones = array("I", [1] * len(s))
    idx = SampleIndex(s.dts, s.duration, s.cto, ones, s.offset, s.keyframes)
    return Track(t.track_id, t.kind, t.timescale, "und", codec, b"", t.pts_shift, idx)


def test_segments_too_small_to_pad_take_the_discontinuity_path() -> None:
    rng = random.Random(7)
    bare = AvcConfig(0x64, 0, 0x1F, 4, (), (), b"")  # no SPS/PPS: a PES of 8 packets at most
    v = one_byte_samples(video(rng, 2, bframes=False), bare)
    a = one_byte_samples(audio(rng, 2), AAC)
    # 8 video and 9 audio packets: neither PID reaches 16 (and maybe a PCR-only packet).
    assert all(size <= 188 * (2 + 8 + 9 + 1) for size in check((v, [0, 1, 2]), (a, [0, 1, 2])))
    assert check((v, [0, 1, 2]), None) == [188 * (2 + 8)] * 2
    assert check(None, (a, [0, 1, 2])) == [188 * (2 + 9)] * 2
    assert check((v, [0, 2]), (a, [0, 2]))[0] >= 188 * (2 + 16 + 16)  # both padded again
    for cut in ([0, 1, 2], [0, 2]):
        assert fast_share((v, cut), (a, cut)) == 1.0
        assert fast_share(None, (a, cut)) == 1.0
