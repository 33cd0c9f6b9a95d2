"""Segment boundaries: keyframe-aligned, identical across renditions, no slivers.

"Consistent chunking" (shaka-packager): a video segment is cut at the first keyframe whose
presentation time reaches the next multiple of the target duration, counted from time zero. Every
rendition of a ladder with aligned keyframes therefore gets the same boundaries without the
renditions knowing about each other, which a stateless per-request origin needs. Audio is cut at
the presentation times of a video segmentation.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from dataclasses import dataclass
from fractions import Fraction

from origin.core.errors import MediaError
from origin.core.track import Track

# Keyframe times of renditions encoded from one source differ by timescale rounding; a keyframe
# this close below a multiple of the target still counts as reaching it.
_TOLERANCE = Fraction(1, 1000)


@dataclass(frozen=True, slots=True)
class Segmentation:
    """Segments of one track: segment ``k`` holds samples ``starts[k]:starts[k+1]``.

    ``times[k]`` is segment ``k``'s presentation start in the track timescale (the first sample's
    presentation time) and ``times[-1]`` is the track's presentation end, so durations are
    ``times[k+1] - times[k]``.
    """

    timescale: int
    starts: array[int]  # 'I', len = segments + 1
    times: array[int]  # 'q', len = segments + 1

    def __len__(self) -> int:
        return len(self.starts) - 1

    def duration(self, k: int) -> Fraction:
        return Fraction(self.times[k + 1] - self.times[k], self.timescale)

    def durations(self) -> list[Fraction]:
        return [self.duration(k) for k in range(len(self))]

    def bounds(self, k: int) -> tuple[int, int]:
        return self.starts[k], self.starts[k + 1]

    def boundary_seconds(self) -> list[Fraction]:
        return [Fraction(t, self.timescale) for t in self.times]


def presentation_end(track: Track, start: int = 0) -> int:
    """Latest presentation end of samples ``start:`` (B-frames: not the last decoded one)."""
    s = track.samples
    n = len(s)
    # Reordering never reaches further back than a GOP's worth of frames; 64 is plenty.
    lo = max(start, n - 64)
    return max(s.dts[i] + s.cto[i] + s.duration[i] for i in range(lo, n)) + track.pts_shift


def cut_video(track: Track, target: Fraction) -> Segmentation:
    """Cut a video track at keyframes near multiples of ``target`` seconds."""
    s = track.samples
    if len(s) == 0:
        raise MediaError(f"track {track.track_id} has no samples")
    if not s.is_sync(0):
        raise MediaError(f"track {track.track_id} does not start with a keyframe")
    if target <= 0:
        raise ValueError("segment duration must be positive")
    ts = track.timescale
    starts = array("I", [0])
    # In integers (a Fraction per keyframe was most of the cost): with t + tolerance = a / b
    # and target = p / q, the next cut m * target is reached when a * q >= m * p * b.
    tn, td = _TOLERANCE.numerator, _TOLERANCE.denominator
    p, q = target.numerator, target.denominator
    b = ts * td
    m = 1
    dts, cto, shift = s.dts, s.cto, track.pts_shift
    for k in s.keyframes:
        if k == 0:
            continue
        aq = ((dts[k] + cto[k] + shift) * td + tn * ts) * q
        if aq >= m * p * b:
            starts.append(k)
            # Skip multiples a long GOP jumped over: the next cut is the next multiple after t.
            whole = aq // (p * b) if aq >= 0 else -(-aq // (p * b))  # int() truncates
            m = whole + 1
    return _finish(track, starts, target)


def _finish(track: Track, starts: array[int], target: Fraction) -> Segmentation:
    """Close a segmentation; a tail shorter than half the target joins the segment before it."""
    end = presentation_end(track)
    if len(starts) > 1:
        tail = Fraction(end - track.pts(starts[-1]), track.timescale)
        if tail < target / 2:
            starts.pop()
    starts.append(len(track.samples))
    times = array("q", [track.pts(i) for i in starts[:-1]])
    times.append(end)
    return Segmentation(track.timescale, starts, times)


def cut_at(track: Track, reference: Segmentation) -> Segmentation:
    """Cut a track (audio) at the presentation times of another segmentation.

    A sample belongs to the segment whose start time is at or before its presentation time.
    Samples before the first boundary (AAC priming) go to the first segment and everything after
    the last boundary to the last one, so segment counts always match the reference.
    """
    s = track.samples
    if len(s) == 0:
        raise MediaError(f"track {track.track_id} has no samples")
    ts = track.timescale
    starts = array("I", [0])
    for b in reference.times[1:-1]:
        # First sample with pts * ref_ts >= b * ts, i.e. dts >= ceil(b * ts / ref_ts) - shift.
        threshold = -((-b * ts) // reference.timescale) - track.pts_shift
        # Audio has no composition offsets, so presentation order is decode order.
        i = bisect_left(s.dts, threshold)
        starts.append(max(i, starts[-1]))
    starts.append(len(s))
    times = array("q", [track.pts(i) if i < len(s) else 0 for i in starts[:-1]])
    times.append(presentation_end(track))
    # An empty trailing segment (audio shorter than video) starts where the audio ends.
    for k in range(1, len(times) - 1):
        if starts[k] >= len(s):
            times[k] = times[-1]
    return Segmentation(ts, starts, times)


def cut_audio(track: Track, target: Fraction) -> Segmentation:
    """Segment an audio-only asset: every AAC frame is a sync sample, so cut at multiples."""
    s = track.samples
    if len(s) == 0:
        raise MediaError(f"track {track.track_id} has no samples")
    ts = track.timescale
    starts = array("I", [0])
    total = Fraction(presentation_end(track), ts)
    m = 1
    while m * target < total:
        # First frame presented at or after m * target: dts >= ceil(m * target * ts) - shift.
        cut = m * target * ts
        i = bisect_left(s.dts, -(-cut.numerator // cut.denominator) - track.pts_shift)
        if i >= len(s):
            break
        if i > starts[-1]:
            starts.append(i)
        m += 1
    return _finish(track, starts, target)


def without_empty(seg: Segmentation, samples: int) -> Segmentation:
    """``seg`` without its empty segments, for a track served on its own (a fragment needs a
    sample): an empty one at the end (audio shorter than video) is dropped, one in the middle
    (a gap in the audio) joins the segment before it. Muxed into MPEG-TS video segments, audio
    keeps the video's segmentation, empty segments included."""
    keep = [k for k in range(len(seg)) if seg.starts[k] < seg.starts[k + 1]]
    if len(keep) == len(seg):
        return seg
    if not keep:
        raise ValueError("a segmentation of a track with samples has a non-empty segment")
    keep[0] = 0  # samples before the first kept start (none) would be orphaned otherwise
    starts = array("I", [seg.starts[k] for k in keep])
    starts.append(samples)
    times = array("q", [seg.times[k] for k in keep])
    times.append(seg.times[-1])
    return Segmentation(seg.timescale, starts, times)
