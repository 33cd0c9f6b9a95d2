"""Hand-built :class:`ChannelView` s for the live packaging tests: the built-in sample ladder
(three 10 s renditions, 2 s segments) prepared as VOD, a slice of its segments turned into
:class:`LiveSegment` s as a channel index would publish them: each its own samples in channel time
(the VOD times plus :data:`SHIFT` seconds) with offsets into one payload, numbered from
:data:`FIRST_NUMBER`, its program date time :data:`T0` plus its channel time."""

from __future__ import annotations

import dataclasses
import functools
from array import array
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

from origin.core import pipeline, urls
from origin.core.index import SampleIndex
from origin.core.live.model import ChannelView, LiveRendition, LiveSegment
from origin.core.mp4.parse import parse_bytes
from origin.core.mux import fmp4, mpegts
from origin.core.presentation import Presentation, Rendition
from origin.core.track import Kind, Track

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "origin" / "sample"
FILES = tuple(SAMPLE_DIR / f"sample_{n}.mp4" for n in ("240p", "360p", "480p"))
SEGMENT = Fraction(2)
SHIFT = 1000  # seconds: channel time = VOD time + SHIFT (whole seconds: exact in every timescale)
FIRST_NUMBER = 1000  # channel sequence number of VOD segment 0
T0 = datetime(2026, 12, 2, 3, 0, 0, tzinfo=UTC)  # wall-clock time of channel time 0
SEGMENTS = 5  # the sample's segments per rendition


@functools.cache
def sample() -> tuple[Presentation, tuple[bytes, ...]]:
    data = tuple(f.read_bytes() for f in FILES)
    return pipeline.prepare("sample", [parse_bytes(d) for d in data], SEGMENT), data


def _empty(track: Track) -> Track:
    n = array("q")
    empty = SampleIndex(
        dts=n,
        duration=array("I"),
        cto=array("i"),
        size=array("I"),
        offset=array("Q"),
        keyframes=array("I"),
    )
    return dataclasses.replace(track, samples=empty)


def live_segment(r: Rendition, data: bytes, k: int, *, discontinuity: bool = False) -> LiveSegment:
    """VOD segment ``k`` of ``r`` as a published live segment."""
    start, stop = r.seg.bounds(k)
    s = r.track.samples
    sizes = s.size[start:stop]
    payload = b"".join(data[o : o + n] for o, n in zip(s.offset[start:stop], sizes, strict=True))
    offsets = array("Q", [0])
    for n in sizes[:-1]:
        offsets.append(offsets[-1] + n)
    shift = SHIFT * r.track.timescale
    samples = SampleIndex(
        dts=array("q", [t + shift for t in s.dts[start:stop]]),
        duration=s.duration[start:stop],
        cto=s.cto[start:stop],
        size=sizes,
        offset=offsets,
        keyframes=array("I", [i - start for i in s.keyframes if start <= i < stop]),
    )
    track = dataclasses.replace(r.track, samples=samples)
    time = r.times[k] + SHIFT * urls.URL_TIMESCALE
    n = len(samples)
    span = (track, 0, n)
    video = track.kind is Kind.VIDEO
    return LiveSegment(
        number=FIRST_NUMBER + k,
        time=time,
        duration=r.times[k + 1] - r.times[k],
        track=track,
        payload=payload,
        wallclock=T0 + timedelta(microseconds=time // 10),
        discontinuity=discontinuity,
        epoch=1 if discontinuity else 0,
        ts_size=mpegts.segment_size_bound(*((span, None) if video else (None, span))),
        cmaf_size=fmp4.media_segment_size(track, 0, n),
    )


def _rendition(
    r: Rendition, data: bytes, k0: int, k1: int, *, connected: bool, discontinuity_at: int | None
) -> LiveRendition:
    segs = []
    for k in range(k0, k1):
        seg = live_segment(r, data, k, discontinuity=k == discontinuity_at)
        if discontinuity_at is not None and k > discontinuity_at:
            seg = dataclasses.replace(seg, epoch=1)
        segs.append(seg)
    return LiveRendition(r.id, _empty(r.track), r.edit, tuple(segs), fps=r.fps, connected=connected)


def live_view(
    k0: int = 0,
    k1: int = SEGMENTS,
    *,
    ended: bool = False,
    version: int = 1,
    audio: tuple[int, int] | None = None,
    audio_connected: bool = True,
    renditions: int = 3,
    discontinuity_at: int | None = None,
) -> ChannelView:
    """VOD segments ``k0:k1`` of every video rendition (the first ``renditions``) and audio
    segments ``audio`` (default the same slice; ``(0, 0)``: no audio rendition) as a view."""
    p, data = sample()
    assert p.audio is not None
    a0, a1 = audio or (k0, k1)
    video = tuple(
        _rendition(r, data[r.file], k0, k1, connected=not ended, discontinuity_at=discontinuity_at)
        for r in p.video[:renditions]
    )
    au = None
    if a1 > a0:
        au = _rendition(
            p.audio,
            data[p.audio.file],
            a0,
            a1,
            connected=audio_connected and not ended,
            discontinuity_at=discontinuity_at,
        )
    return ChannelView(
        name="live",
        version=version,
        video=video,
        audio=au,
        target=2,
        segment_duration=SEGMENT,
        window=SEGMENT * (k1 - k0),
        availability_start=T0,
        ended=ended,
    )


def now_after(view: ChannelView) -> datetime:
    """A publish time just after the view's newest segment completed."""
    end = max(r.segments[-1].end for r in view.renditions())
    return T0 + timedelta(microseconds=end // 10 + 1000)
