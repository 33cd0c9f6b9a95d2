"""Segment requests: which segment a fragment URL names, which byte ranges of which source files
it needs (:func:`plan_reads`), and the clear segment muxed from those bytes (:func:`build_segment`).

The service reads the planned spans between the two calls; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import add, sub

from origin.core import urls
from origin.core.errors import MediaError, NotFoundError
from origin.core.mux import Run, fmp4, mpegts, smooth
from origin.core.presentation import Presentation
from origin.core.track import Kind, Track
from origin.core.urls import Format

# Ranges of one file closer than this are read as one: a segment's video and audio samples are
# interleaved in chunks, and one larger read beats several small ones.
READ_GAP = 64 * 1024


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """One addressable segment: ``index`` is -1 (urls.INIT) for an initialization segment."""

    format: Format | None  # None: Smooth Streaming
    track: str
    rendition: int
    index: int

    @property
    def sequence(self) -> int:
        """The media sequence number (EXT-X-MEDIA-SEQUENCE starts at 0)."""
        return self.index


def resolve(p: Presentation, path: urls.FragmentPath) -> SegmentRef:
    """Map a fragment URL to a segment, or raise NotFoundError."""
    fmt = path.options.format
    r = p.rendition(path.track, path.rendition)
    if path.time == urls.INIT:
        if fmt is None or fmt is Format.HLS_TS:
            raise NotFoundError("MPEG-TS and Smooth Streaming have no initialization segment")
        return SegmentRef(fmt, path.track, r.id, urls.INIT)
    k = r.by_time.get(path.time)
    if k is None:
        raise NotFoundError(f"no {path.track} fragment at time {path.time}")
    return SegmentRef(fmt, path.track, r.id, k)


@dataclass(frozen=True, slots=True)
class Span:
    file: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """Byte ranges to read, and where each run's samples sit in them."""

    spans: tuple[Span, ...]
    runs: tuple[tuple[Track, int, int, tuple[tuple[int, int, int], ...]], ...]
    # per run: track, start, stop, per sample (span index, offset in span, size)


def _runs(p: Presentation, ref: SegmentRef) -> list[tuple[int, Track, int, int]]:
    """(file, track, start, stop) of what segment ``ref`` contains."""
    r = p.rendition(ref.track, ref.rendition)
    if ref.index == urls.INIT:
        return []
    out = [(r.file, r.track, *r.seg.bounds(ref.index))]
    if ref.format is Format.HLS_TS and ref.track == "video" and p.audio is not None:
        aseg = p.muxed_audio[r.id]
        out.append((p.audio.file, p.audio.track, *aseg.bounds(ref.index)))
    return out


def coalesce(
    ranges: Sequence[tuple[int, int, int]],
) -> tuple[tuple[Span, ...], list[tuple[int, int, int]]]:
    """Spans to read for ``(file, offset, size)`` byte ranges, ranges of one file closer than
    READ_GAP read as one; and where each range lies, in input order: (span index, offset in the
    span, size)."""
    order = sorted(range(len(ranges)), key=ranges.__getitem__)
    spans: list[Span] = []
    where: list[tuple[int, int, int]] = [(0, 0, 0)] * len(ranges)
    cur_file, cur_start, cur_end = -1, 0, 0
    for n in order:
        file, off, size = ranges[n]
        if file != cur_file or off > cur_end + READ_GAP:
            if cur_file >= 0:
                spans.append(Span(cur_file, cur_start, cur_end - cur_start))
            cur_file, cur_start, cur_end = file, off, off + size
        else:
            cur_end = max(cur_end, off + size)
        where[n] = (len(spans), off - cur_start, size)
    if cur_file >= 0:
        spans.append(Span(cur_file, cur_start, cur_end - cur_start))
    return tuple(spans), where


def span_views(spans: Sequence[Span], chunks: Sequence[bytes | bytearray]) -> list[memoryview]:
    """The bytes read for ``spans`` (same order), checked to be as long as planned."""
    if len(chunks) != len(spans):
        raise ValueError("one chunk per planned span is required")
    views = [memoryview(c) for c in chunks]
    for span, view in zip(spans, views, strict=True):
        if len(view) < span.size:
            raise MediaError("source file is shorter than its index says")
    return views


def _one_span(
    file: int, offsets: Sequence[int], sizes: Sequence[int], index: int
) -> tuple[Span, list[tuple[int, int, int]]] | None:
    """:func:`coalesce` of one run whose samples follow each other in the file with gaps of at
    most READ_GAP (how muxers write a track's samples), as span number ``index``, in C-level
    passes over the columns instead of a Python loop per sample; None for any other run."""
    if not offsets:
        return None
    ends = list(map(add, offsets, sizes))
    if len(offsets) > 1:
        gaps = list(map(sub, offsets[1:], ends[:-1]))
        if min(gaps) < 0 or max(gaps) > READ_GAP:
            return None
    first = offsets[0]
    where = list(zip(repeat(index), map(sub, offsets, repeat(first)), sizes, strict=False))
    return Span(file, first, ends[-1] - first), where


def plan_reads(p: Presentation, ref: SegmentRef) -> ReadPlan:
    runs = _runs(p, ref)
    files = [file for file, *_ in runs]
    if len(set(files)) == len(runs):  # runs of one file may share a span
        # Spans in file order, as coalesce() gives them.
        rank = {file: k for k, file in enumerate(sorted(files))}
        singles = []
        for file, track, start, stop in runs:
            s = track.samples
            one = _one_span(file, s.offset[start:stop], s.size[start:stop], rank[file])
            if one is None:
                break
            singles.append(one)
        else:
            return ReadPlan(
                tuple(sorted((span for span, _ in singles), key=lambda span: span.file)),
                tuple(
                    (track, start, stop, tuple(where))
                    for (_, track, start, stop), (_, where) in zip(runs, singles, strict=True)
                ),
            )
    ranges = [
        (file, track.samples.offset[i], track.samples.size[i])
        for file, track, start, stop in runs
        for i in range(start, stop)
    ]
    spans, where = coalesce(ranges)
    out = []
    k = 0
    for _, track, start, stop in runs:
        out.append((track, start, stop, tuple(where[k : k + stop - start])))
        k += stop - start
    return ReadPlan(spans, tuple(out))


def build_segment(
    p: Presentation, ref: SegmentRef, plan: ReadPlan, chunks: Sequence[bytes | bytearray]
) -> bytes:
    """Mux a clear segment from the bytes of ``plan.spans`` (same order)."""
    r = p.rendition(ref.track, ref.rendition)
    if ref.index == urls.INIT:
        return fmp4.init_segment(r.track, r.edit)
    views = span_views(plan.spans, chunks)
    runs = [
        Run(track, start, stop, [views[si][o : o + n] for si, o, n in where])
        for track, start, stop, where in plan.runs
    ]
    if ref.format is None:
        return smooth.smooth_fragment(
            runs[0],
            sequence=ref.index + 1,
            time=r.times[ref.index],
            track_id=1 if r.kind is Kind.VIDEO else 2,
        )
    if ref.format is not Format.HLS_TS:  # HLS fMP4 and DASH share the CMAF segments
        return fmp4.media_segment(runs[0], sequence=ref.index + 1, edit=r.edit)
    if ref.track == "video":
        audio = runs[1] if len(runs) > 1 and len(runs[1]) else None
        return mpegts.mux_segment(runs[0], audio, sequence=ref.index, video_delay=r.edit.raise_by)
    return mpegts.mux_segment(None, runs[0], sequence=ref.index)


Reader = Callable[[Span], bytes]


def segment_bytes(p: Presentation, ref: SegmentRef, read: Reader) -> bytes:
    """Plan, read through ``read`` and build: for tools and tests that hold files in memory."""
    plan = plan_reads(p, ref)
    return build_segment(p, ref, plan, [read(s) for s in plan.spans])
