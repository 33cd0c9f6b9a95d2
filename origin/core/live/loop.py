"""A VOD asset played as a live channel on the wall clock (VOD-to-live, as USP's Remix does).

The asset repeats with period :attr:`LoopSchedule.period`; loop ``n`` is the VOD presentation
with ``n * period`` added to every decode time, so the channel's timeline runs on across loops
with no jump at the wrap. Each video rendition is one ingest stream ``loop-<rid>`` (the audio
rides in the lowest rendition's stream), fed one :class:`~origin.core.live.model.Chunk` per VOD
segment, cut exactly as the VOD presentation cuts it, once the wall clock has passed its end.

The caller creates the channel (:func:`open_loop` does it) as
``Channel(name, segment_duration=<the asset's>, window=W, anchor=start,
target=ceil(longest VOD segment), source_cut=True)``: the anchor is the schedule's ``start`` (the
wall-clock time of channel time 0); the target is known up front and never changes; and the
channel takes each fragment as one whole segment (``source_cut``), because the VOD cuts are not
on the channel's grid of multiples once a loop's length is not a multiple of the segment
duration. ``start = now - W`` at start-up: the window is full from the first request, so players
get a full DVR window at once instead of a growing one.

Sans-IO: a :class:`LoopPiece` names the byte ranges to read (:attr:`LoopPiece.spans`, as a
:class:`~origin.core.plan.ReadPlan` does); the service reads them and :func:`chunk_of` makes the
chunk. What to read for a VOD segment is the same in every loop, so it is computed once.
"""

from __future__ import annotations

import dataclasses
import math
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import accumulate

from origin.core.errors import MediaError
from origin.core.index import SampleIndex
from origin.core.live.buffer import URL_SECOND, from_url
from origin.core.live.channel import Channel
from origin.core.live.model import Chunk, StreamTrack
from origin.core.plan import Span, coalesce, span_views
from origin.core.presentation import Presentation, Rendition
from origin.core.track import Track

VIDEO_ID = 1  # track ids in a loop stream's header
AUDIO_ID = 2
_MS = URL_SECOND // 1000


@dataclass(frozen=True, slots=True)
class PieceLayout:
    """Where one VOD segment's samples are in its file: the same for every loop.

    ``runs`` are the samples' contiguous byte runs in decode order, as (span index, offset in
    the span, size): joined, they are the chunk's payload, whose sample offsets are ``offsets``.
    The arrays are shared by every loop's chunks of this segment: read-only.
    """

    spans: tuple[Span, ...]
    runs: tuple[tuple[int, int, int], ...]
    offsets: array[int]  # 'Q'
    keyframes: array[int]  # 'I', rebased to the piece's first sample


@dataclass(frozen=True, slots=True)
class LoopPiece:
    """One VOD segment of one track in one loop, due at ``media_end`` channel seconds."""

    stream_id: str
    track_id: int  # its id in the stream's header
    track: Track  # the VOD rendition's track (its samples index the source file)
    start: int  # sample indexes start:stop of ``track``
    stop: int
    loop: int
    shift: int  # ticks added to the VOD decode times: loop * period in the track's timescale
    media_end: float  # presentation end, channel seconds
    layout: PieceLayout

    @property
    def spans(self) -> tuple[Span, ...]:
        """The byte ranges to read (``Span.file`` indexes the asset's files)."""
        return self.layout.spans


@dataclass(frozen=True, slots=True)
class _Part:
    """A VOD segment of one track, before a loop places it."""

    stream_id: str
    track_id: int
    rendition: Rendition
    start: int
    stop: int
    local_end: int  # presentation end, in the track timescale (loop-local)
    order: tuple[int, int]  # (0 video / 1 audio, stream rank): video first at equal ends

    def end_seconds(self, shift: int) -> float:
        return (self.local_end + shift) / self.rendition.track.timescale


def _ceil_ms(seconds: Fraction) -> int:
    """``seconds`` in URL units, rounded up to a whole millisecond."""
    return math.ceil(seconds * 1000) * _MS


def _presented(r: Rendition) -> Fraction:
    """A rendition's presentation duration in seconds."""
    return Fraction(r.seg.times[-1] - max(r.seg.times[0], 0), r.track.timescale)


def _empty(track: Track, track_id: int) -> Track:
    s = track.samples
    none = s.dts[:0]
    samples = SampleIndex(
        dts=none,
        duration=s.duration[:0],
        cto=s.cto[:0],
        size=s.size[:0],
        offset=s.offset[:0],
        keyframes=s.keyframes[:0],
    )
    return dataclasses.replace(track, samples=samples, track_id=track_id)


def layout_of(file: int, track: Track, start: int, stop: int) -> PieceLayout:
    """Spans and runs of samples ``start:stop`` (ranges closer than READ_GAP read as one)."""
    s = track.samples
    runs: list[list[int]] = []  # [file offset, size] of contiguous samples, decode order
    for i in range(start, stop):
        off, size = s.offset[i], s.size[i]
        if runs and runs[-1][0] + runs[-1][1] == off:
            runs[-1][1] += size
        else:
            runs.append([off, size])
    spans, where = coalesce([(file, off, size) for off, size in runs])
    sizes = s.size[start:stop]
    keys = s.keyframes
    a, b = bisect_left(keys, start), bisect_left(keys, stop)
    return PieceLayout(
        spans,
        tuple(where),
        array("Q", accumulate(sizes[:-1], initial=0)) if stop > start else array("Q"),
        array("I", [k - start for k in keys[a:b]]),
    )


class LoopSchedule:
    """Which VOD segments of which loop are due when; ``start`` is the wall-clock time of
    channel time 0. Not thread-safe; pieces come out once each, in channel-time order."""

    def __init__(self, presentation: Presentation, *, start: float) -> None:
        p = presentation
        self.presentation = p
        self.start = start
        video = p.video
        grid = video[0].seg.boundary_seconds() if video else []
        for r in video[1:]:
            times = r.seg.boundary_seconds()
            if len(times) != len(grid) or any(
                abs(a - b) > Fraction(1, 1000) for a, b in zip(times, grid, strict=True)
            ):
                raise MediaError(
                    f"asset {p.name!r}: its renditions' keyframes are not aligned; a looped "
                    "channel needs one segmentation for the whole ladder"
                )
        # The period is a whole number of milliseconds (rounded up: a loop never starts before
        # the previous one has ended), exact in URL units (100 ns), so each loop's shift is
        # rounded once, from the exact loop * period, into each timescale: every track stays
        # within half a tick of exact, in step with the others, and no rounding accumulates
        # across loops. A video track's decode duration counts too: the next loop's first frame
        # must not decode before this loop's last. Presentation starts at 0 at the earliest:
        # the edit list trims what comes before (the AAC priming), which a repeat drops.
        if video:
            length = max(
                max(_presented(r), Fraction(r.track.samples.total_duration(), r.track.timescale))
                for r in video
            )
        else:
            assert p.audio is not None
            length = _presented(p.audio)
        self.period_url = _ceil_ms(length)
        self.period = Fraction(self.period_url, URL_SECOND)
        # The HLS target: video segments (TS segments carry their audio), else the audio's.
        timed = video or ((p.audio,) if p.audio else ())
        self.target = max(math.ceil(d) for r in timed for d in r.seg.durations())
        self._parts = self._make_parts()
        self._last_end = max(part.end_seconds(0) for part in self._parts)  # loop-local seconds
        self._layouts: dict[tuple[int, int, int], PieceLayout] = {}
        self._loop = 0
        self._i = 0
        self._current = self._pieces_of(0)

    # --- what the channel is told -------------------------------------------------------------

    def stream_ids(self) -> list[str]:
        p = self.presentation
        rids = [r.id for r in p.video] or ([p.audio.id] if p.audio else [])
        return [f"loop-{rid}" for rid in rids]

    def headers(self) -> dict[str, list[StreamTrack]]:
        """Each stream's tracks; the declared bitrate is the rendition id, so the channel's URL
        ids are the VOD ones."""
        p = self.presentation
        out: dict[str, list[StreamTrack]] = {}
        for sid, r in zip(self.stream_ids(), p.video, strict=False):
            out[sid] = [StreamTrack(_empty(r.track, VIDEO_ID), bitrate=r.id)]
        if p.audio is not None:
            first = self.stream_ids()[0]
            out.setdefault(first, []).append(
                StreamTrack(_empty(p.audio.track, AUDIO_ID), bitrate=p.audio.id)
            )
        return out

    # --- the schedule -------------------------------------------------------------------------

    def _make_parts(self) -> list[_Part]:
        p = self.presentation
        sids = self.stream_ids()
        parts: list[_Part] = []
        for rank, (sid, r) in enumerate(zip(sids, p.video, strict=False)):
            for k in range(len(r.seg)):
                a, b = r.seg.bounds(k)
                parts.append(_Part(sid, VIDEO_ID, r, a, b, r.seg.times[k + 1], (0, rank)))
        if p.audio is not None:
            au, s = p.audio, p.audio.track.samples
            for k in range(len(au.seg)):
                a, b = au.seg.bounds(k)
                if b > a:
                    end = s.dts[b - 1] + s.duration[b - 1] + au.track.pts_shift
                    parts.append(_Part(sids[0], AUDIO_ID, au, a, b, end, (1, 0)))
        parts.sort(key=lambda part: (part.end_seconds(0), part.order))
        return parts

    def shift(self, track: Track, loop: int) -> int:
        """Ticks added to ``track``'s VOD decode times in ``loop``."""
        return from_url(loop * self.period_url, track.timescale)

    def _pieces_of(self, loop: int) -> list[LoopPiece]:
        out = []
        audio_from = 0
        au = self.presentation.audio
        if au is not None and loop > 0:
            # Audio runs on without overlap: this loop's first sample decodes at or after the
            # previous loop's last one ends (the AAC priming frame of a repeat is dropped).
            s = au.track.samples
            end = s.dts[-1] + s.duration[-1] + self.shift(au.track, loop - 1)
            audio_from = bisect_left(s.dts, end - self.shift(au.track, loop))
        for part in self._parts:
            track = part.rendition.track
            start = part.start
            if part.track_id == AUDIO_ID:
                start = max(start, audio_from)
                if start >= part.stop:
                    continue
            key = (id(track), start, part.stop)
            layout = self._layouts.get(key)
            if layout is None:
                layout = self._layouts[key] = layout_of(
                    part.rendition.file, track, start, part.stop
                )
            shift = self.shift(track, loop)
            out.append(
                LoopPiece(
                    part.stream_id,
                    part.track_id,
                    track,
                    start,
                    part.stop,
                    loop,
                    shift,
                    part.end_seconds(shift),
                    layout,
                )
            )
        return out

    def _next_loop(self) -> None:
        self._loop += 1
        self._i = 0
        self._current = self._pieces_of(self._loop)

    def due(self, now: float, *, window: float | None = None) -> list[LoopPiece]:
        """The pieces whose media end is at or before ``now - start`` and that were not returned
        before, in channel-time order (video before the audio of the same time). With
        ``window``, pieces that ended ``window`` seconds or more before that are skipped: they
        would slide out of the channel at once (a channel started long after ``start``, or a
        feeder that stalled, does not replay hours)."""
        # A microsecond of slack: ``next_due()`` must make its piece due despite float rounding.
        t = now - self.start + 1e-6
        horizon = None if window is None else t - window
        if horizon is not None:
            # Loops up to this one ended entirely before the horizon.
            old = math.floor((horizon - self._last_end) / self.period)
            if old >= self._loop:
                self._loop = old
                self._next_loop()
        out: list[LoopPiece] = []
        while True:
            cur = self._current
            while self._i < len(cur):
                piece = cur[self._i]
                if piece.media_end > t:
                    return out
                self._i += 1
                if horizon is None or piece.media_end > horizon:
                    out.append(piece)
            self._next_loop()

    def next_due(self) -> float:
        """The wall-clock time the next piece is due."""
        while self._i >= len(self._current):
            self._next_loop()
        return self.start + self._current[self._i].media_end


def chunk_of(piece: LoopPiece, data: Sequence[bytes | bytearray]) -> Chunk:
    """The chunk for ``piece`` from the bytes read for its :attr:`~LoopPiece.spans` (same
    order): one payload of exactly its samples, decode times moved by the loop's shift."""
    lay = piece.layout
    views = span_views(lay.spans, data)
    payload = b"".join([views[si][o : o + n] for si, o, n in lay.runs])
    s = piece.track.samples
    a, b = piece.start, piece.stop
    dts = s.dts[a:b]
    if piece.shift:
        dts = array("q", map(piece.shift.__add__, dts))
    samples = SampleIndex(
        dts=dts,
        duration=s.duration[a:b],
        cto=s.cto[a:b],
        size=s.size[a:b],
        offset=lay.offsets,
        keyframes=lay.keyframes,
    )
    return Chunk(piece.track_id, samples, payload)


def open_loop(
    name: str, presentation: Presentation, *, window: Fraction, now: float
) -> tuple[Channel, LoopSchedule]:
    """A looped channel of ``presentation`` and its schedule, started ``window`` seconds in the
    past so the window is full from the first request."""
    start = now - float(window)
    schedule = LoopSchedule(presentation, start=start)
    channel = Channel(
        name,
        segment_duration=presentation.target,
        window=window,
        anchor=start,
        target=schedule.target,
        source_cut=True,
    )
    return channel, schedule
