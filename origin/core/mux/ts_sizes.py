"""Size bounds of every MPEG-TS segment of a rendition, from running sums over the sample table.

segment_size_bound plans every PES of a segment: right for one segment, but at load it ran for
every segment of every rendition (the master playlist's BANDWIDTH) and was most of the
start-up time. segment_size_bounds gives the same numbers from running sums over the sample
table, because of what _plan does:

- _pad_to_16 makes a PID's packet count r = ceil16(sum of min_packets) when its PES can
  stretch that far (sum of max_packets >= r), else sum of max_packets;
- a video PES's min and max packets depend on its sample alone (size, keyframe, whether PTS
  and DTS differ in 90 kHz): summed once per track, a segment's is a difference of running
  sums;
- audio PES group 5 frames from the segment's first (fewer, a constant number, for audio alone
  when 5 frames last over 100 ms): strided slices of a running sum of frame sizes;
- PCR-only packets: an audio PES gets one when it starts more than 100 ms after the last PCR.
  An audio PES between two video PES is at most their DTS distance after the last PCR, so
  with video frames at most 100 ms apart only the audio before the segment's first video
  frame and after its last needs planning.

A segment outside those assumptions (video frames over 100 ms apart or decode times going
back, DTS clamped to PTS, irregular audio durations, frames too big for 5 per PES) is planned
by segment_size_bound itself. tests/core/test_size_bound.py compares the two.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, islice, repeat
from operator import add, floordiv, gt, le, mul, sub

from origin.core.mux import adts
from origin.core.mux.mpegts import (
    _AUD,
    _MAX_PES_PACKET_LENGTH,
    _PES_HEADER_PTS,
    _PES_HEADER_PTS_DTS,
    _START_CODE,
    AUDIO_FRAMES_PER_PES,
    PCR_INTERVAL,
    segment_size_bound,
    to_90k,
)
from origin.core.mux.ts_packets import _AF_PCR, _PAYLOAD, TS_PACKET_SIZE
from origin.core.track import AacConfig, AvcConfig, Track

# min_packets is 1 + ceil((size - first_capacity) / 184), i.e. (size + _SLACK_x) // 184.
_SLACK_PCR = 2 * _PAYLOAD - 1 - (_PAYLOAD - _AF_PCR)  # first packet carries a PCR (176 bytes)
_SLACK_PLAIN = _PAYLOAD - 1  # first packet without adaptation field (184 bytes)
# Up to this AAC frame size five frames always fit one PES (what validate allows is far less).
_MAX_GROUPED_FRAME = (_MAX_PES_PACKET_LENGTH - _PES_HEADER_PTS) // AUDIO_FRAMES_PER_PES - 7


def _padded(m: int, most: int) -> int:
    """A PID's packets (see _pad_to_16): ``m`` rounded up to 16 if its PES stretch to ``most``."""
    r = m + (-m % 16)
    return r if most >= r else most


class _VideoSums:
    """Running sums of one video track's per-sample PES packet counts."""

    __slots__ = ("cum_min", "cum_size", "diffs", "keyframes", "ok", "params", "regular", "shift")
    ok: bool
    params: int  # bytes of SPS/PPS on a keyframe
    cum_min: list[int]
    cum_size: list[int]
    keyframes: array[int]
    shift: int  # a PES's DTS is the sample's dts + shift
    diffs: array[int] | None  # DTS steps, computed if a segment needs checking
    regular: bool

    def __init__(self, track: Track, delay: int) -> None:
        s = track.samples
        cfg = track.codec
        n = len(s)
        lo, hi = (min(s.cto), max(s.cto)) if n else (0, 0)
        # With a DTS clamped to its PTS (too small a delay) PCRs are not the DTS: plan those.
        self.ok = isinstance(cfg, AvcConfig) and cfg.nal_length_size in (1, 2, 4) and n > 0
        self.ok = self.ok and lo + delay >= 0
        if not self.ok or not isinstance(cfg, AvcConfig):
            return
        ts = track.timescale
        nls = cfg.nal_length_size
        size: Sequence[int] = s.size
        if nls != 4:  # as _video_units: each NAL assumed as small as its length prefix allows
            grow = map(mul, map(floordiv, s.size, repeat(nls + 1)), repeat(4 - nls))
            size = list(map(add, s.size, grow))
        self.params = len(b"".join(_START_CODE + p for p in (*cfg.sps, *cfg.pps)))
        # The PES's size but its PTS/DTS choice and SPS/PPS, plus min_packets' slack.
        num: Iterator[int] = map(add, size, repeat(_PES_HEADER_PTS + len(_AUD) + _SLACK_PCR))
        dts_too = _PES_HEADER_PTS_DTS - _PES_HEADER_PTS
        if delay or lo or hi:
            if ts <= 90000:  # to_90k strictly increases: PTS != DTS in 90 kHz iff in ticks
                late: Iterable[bool] = map(gt, s.cto, repeat(-delay))
            else:
                late = [_late(track, i, delay) for i in range(n)]
            num = map(add, num, map(mul, late, repeat(dts_too)))
        mins = list(map(floordiv, num, repeat(_PAYLOAD)))
        for k in s.keyframes:
            extra = self.params + (dts_too if _late(track, k, delay) else 0)
            mins[k] = (size[k] + _PES_HEADER_PTS + len(_AUD) + _SLACK_PCR + extra) // _PAYLOAD
        self.cum_min = list(accumulate(mins, initial=0))
        self.cum_size = list(accumulate(size, initial=0))
        self.keyframes = s.keyframes
        self.shift = track.pts_shift - delay
        # Every segment's frames in order and at most 100 ms apart (else check per segment).
        dts = s.dts
        self.diffs = None
        if s.contiguous:  # the steps are the durations, never negative
            self.regular = max(s.duration[:-1], default=0) * 10 <= ts
        else:
            self.regular = n < 2 or (
                max(map(sub, islice(dts, 1, None), dts)) * 10 <= ts
                and min(map(sub, islice(dts, 1, None), dts)) >= 0
            )

    def fits(self, start: int, stop: int, track: Track) -> bool:
        if not self.ok or stop <= start:
            return False
        if self.regular or stop - start == 1:
            return True
        if self.diffs is None:
            dts = track.samples.dts
            self.diffs = array("q", map(sub, islice(dts, 1, None), dts))
        d = self.diffs[start : stop - 1]
        return min(d) >= 0 and max(d) * 10 <= track.timescale

    def packets(self, start: int, stop: int) -> int:
        kf = self.keyframes
        keys = bisect_left(kf, stop) - bisect_left(kf, start)
        m = self.cum_min[stop] - self.cum_min[start]
        # max_packets: 1 + the PES size but its header (AUD, SPS/PPS on keyframes, NAL bytes).
        most = (stop - start) * (1 + len(_AUD)) + self.cum_size[stop] - self.cum_size[start]
        return _padded(m, most + keys * self.params)


def _late(track: Track, i: int, delay: int) -> bool:
    """Whether sample ``i``'s PES carries a DTS (as _video_units, when no DTS is clamped)."""
    s = track.samples
    d = s.dts[i] + track.pts_shift
    return to_90k(d + s.cto[i], track.timescale) != to_90k(d - delay, track.timescale)


class _AudioSums:
    """Running sums of one audio track's frame sizes."""

    __slots__ = ("cum", "frame", "ok", "regular_last")
    ok: bool
    cum: list[int]
    frame: int
    regular_last: bool

    def __init__(self, track: Track) -> None:
        s = track.samples
        cfg = track.codec
        if not isinstance(cfg, AacConfig):
            self.ok = False
            return
        adts.header_prefix(cfg)  # refuses what _audio_units refuses
        n = len(s)
        self.cum = list(accumulate(s.size, initial=0))
        # Audio alone: one frame duration throughout (the last may differ) and no gaps, so the
        # 100 ms rule groups a constant number of frames. 0: not so.
        d = s.duration[0] if n else 0
        self.frame = 0
        self.regular_last = n > 0 and s.duration[-1] == d
        even = n < 2 or s.duration.count(d) >= n - (not self.regular_last)
        if d and even and s.dts == array("q", range(s.dts[0], s.dts[0] + n * d, d)):
            self.frame = d
        self.ok = max(s.size, default=0) <= _MAX_GROUPED_FRAME and (
            self.frame > 0 or all(map(le, s.dts, islice(s.dts, 1, None)))  # decode order
        )

    def packets(self, start: int, stop: int, group: int, slack: int) -> int:
        """The PID's packets for frames ``start:stop`` in PES of ``group`` frames."""
        if stop <= start:
            return 0
        cum = self.cum
        end = start + (stop - start) // group * group  # after the last full group
        sums = map(sub, cum[start + group : end + 1 : group], cum[start:end:group])
        # A PES: its header and each frame's ADTS header and payload.
        full = _PES_HEADER_PTS + group * adts.ADTS_HEADER_SIZE + slack
        m = sum(map(floordiv, map(add, sums, repeat(full)), repeat(_PAYLOAD)))
        groups = (end - start) // group
        if end < stop:
            last = _PES_HEADER_PTS + (stop - end) * adts.ADTS_HEADER_SIZE + slack
            m += (cum[stop] - cum[end] + last) // _PAYLOAD
            groups += 1
        # max_packets: 1 + the PES's ADTS frames.
        frames = cum[stop] - cum[start] + (stop - start) * adts.ADTS_HEADER_SIZE
        return _padded(m, groups + frames)


class SizeSums:
    """The per-track running sums :func:`segment_size_bounds` uses, kept across its calls: pass
    one to every rendition of an asset and their shared muxed audio is summed once."""

    def __init__(self) -> None:
        self._video: dict[tuple[int, int], tuple[Track, _VideoSums]] = {}
        self._audio: dict[int, tuple[Track, _AudioSums]] = {}

    def video(self, track: Track, delay: int) -> _VideoSums:
        got = self._video.get((id(track), delay))
        if got is None:  # the track is kept with its sums, so its id stays its own
            got = self._video[id(track), delay] = (track, _VideoSums(track, delay))
        return got[1]

    def audio(self, track: Track) -> _AudioSums:
        got = self._audio.get(id(track))
        if got is None:
            got = self._audio[id(track)] = (track, _AudioSums(track))
        return got[1]


def segment_size_bounds(
    video: tuple[Track, Sequence[int]] | None,
    audio: tuple[Track, Sequence[int]] | None,
    *,
    video_delay: int = 0,
    sums: SizeSums | None = None,
) -> list[int]:
    """``segment_size_bound`` of every segment ``k`` of a rendition, the same numbers.

    ``video`` and ``audio`` are a track and its segment starts (segment ``k`` holds samples
    ``starts[k]:starts[k+1]``; both lists the same length when both are given).
    """
    if video is None and audio is None:
        raise ValueError("a segment needs a video or an audio run")
    sums = sums or SizeSums()
    vt, vstarts = video if video is not None else (None, None)
    at, astarts = audio if audio is not None else (None, None)
    count = len(vstarts) - 1 if vstarts is not None else len(astarts or ()) - 1
    if vstarts is not None and astarts is not None and len(astarts) != len(vstarts):
        raise ValueError("video and audio segmentations differ in length")
    vs = sums.video(vt, video_delay) if vt is not None else None
    au = sums.audio(at) if at is not None else None
    out = []
    for k in range(count):
        v = (vt, vstarts[k], vstarts[k + 1]) if vt is not None and vstarts is not None else None
        a = (at, astarts[k], astarts[k + 1]) if at is not None and astarts is not None else None
        fast = _fast_bound(v, vs, a, au)
        out.append(segment_size_bound(v, a, video_delay=video_delay) if fast is None else fast)
    return out


def _fast_bound(
    v: tuple[Track, int, int] | None,
    vs: _VideoSums | None,
    a: tuple[Track, int, int] | None,
    au: _AudioSums | None,
) -> int | None:
    """One segment's bound from the sums; None where their assumptions do not hold."""
    if a is not None and au is not None and not au.ok:
        return None
    if v is None or vs is None:
        if a is None or au is None:
            return None
        at, a0, a1 = a
        n = len(at.samples)
        if not au.frame or (a1 == n and not au.regular_last):
            return None
        group = min(AUDIO_FRAMES_PER_PES, max(1, at.timescale // 10 // au.frame))
        return TS_PACKET_SIZE * (2 + au.packets(a0, a1, group, _SLACK_PCR))
    vt, v0, v1 = v
    if not vs.fits(v0, v1, vt):
        return None
    packets = 2 + vs.packets(v0, v1)
    if a is not None and au is not None:
        at, a0, a1 = a
        packets += au.packets(a0, a1, AUDIO_FRAMES_PER_PES, _SLACK_PLAIN)
        packets += _pcr_only(vs, v, a)
    return TS_PACKET_SIZE * packets


def _pcr_only(vs: _VideoSums, v: tuple[Track, int, int], a: tuple[Track, int, int]) -> int:
    """PCR-only packets of a segment (as _add_pcr_packets): before the audio PES that come
    before the first video frame, or after the last one, more than 100 ms after the last PCR.
    Between two video frames no more than 100 ms apart there is none (see above)."""
    vt, v0, v1 = v
    at, a0, a1 = a
    s = at.samples
    vts, ats = vt.timescale, at.timescale
    shift = at.pts_shift
    step = AUDIO_FRAMES_PER_PES
    count = 0
    vdts = vt.samples.dts
    first, final = vdts[v0] + vs.shift, vdts[v1 - 1] + vs.shift
    last: int | None = None
    j = a0
    while j < a1 and (s.dts[j] + shift) * vts < first * ats:
        t = to_90k(s.dts[j] + shift, ats)
        if last is None or t - last > PCR_INTERVAL:
            count += 1
            last = t if last is None else max(t, last)
        j += step
    if j >= a1:
        return count
    tail = a0 + (a1 - 1 - a0) // step * step  # the last PES's first frame
    while tail >= j and (s.dts[tail] + shift) * vts >= final * ats:
        tail -= step
    last = to_90k(final, vts)  # the last video frame's PCR: the greatest so far
    for i in range(tail + step, a1, step):
        t = to_90k(s.dts[i] + shift, ats)
        if t - last > PCR_INTERVAL:
            count += 1
            last = max(t, last)
    return count
