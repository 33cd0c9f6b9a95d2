"""What the writers rely on, checked once per track at load, so that a loaded asset never fails a
request: an asset either passes these checks or is refused with the reason.

The parser guarantees the tables are consistent (lengths, sample data inside the file); this
module checks that every value fits what each output writes it as, at every timescale used:
the media timescale (fMP4 ``trun`` offsets, 32-bit signed), 90 kHz (MPEG-TS PTS/DTS, 33 bits),
10 MHz (fragment URLs, DASH ``S@t``, Smooth ``c@t`` and ``tfxd``: 64-bit signed; Smooth ``trun``
durations 32-bit unsigned and offsets 32-bit signed), ADTS frame lengths (13 bits), ``tkhd``'s
16.16 display size and 32-bit track ids. Every check is a ``min``/``max`` over a whole column
(C-level iteration), never a Python loop per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from itertools import islice, pairwise
from operator import sub

from origin.core.errors import MediaError
from origin.core.mp4.defs import I32_MAX, I32_MIN, I64_MAX, SMOOTH_TIMESCALE, U32_MAX
from origin.core.mux import adts, mpegts
from origin.core.track import AacConfig, Kind, Track
from origin.core.urls import URL_TIMESCALE

TS_CLOCK = 90_000
_TS_LIMIT = 2**33  # PTS/DTS are 33-bit
_TKHD_SIZE_LIMIT = 1 << 16  # tkhd width/height are 16.16 fixed point


def _at(t: int, timescale: int, clock: int) -> int:
    """``t`` ticks of ``timescale`` at ``clock`` Hz, rounded up (a bound, not a conversion)."""
    return -(-t * clock // timescale)


def _seconds(t: int, timescale: int) -> str:
    return f"{float(Fraction(t, timescale)):.6g} s"


def check_track(track: Track, where: str) -> None:
    """Raise :class:`MediaError` (prefixed with ``where``) unless every writer can write
    every sample of ``track``."""
    where = f"{where}track {track.track_id}"
    s = track.samples
    ts = track.timescale
    n = len(s)
    if not 0 < track.track_id < U32_MAX:  # the init segment's next_track_ID is id + 1
        raise MediaError(f"{where}: track_ID {track.track_id} is out of range")
    if n == 0:
        raise MediaError(f"{where} has no samples")
    if s.dts[0] < 0:  # the parser rebases decode times to start at 0 or later
        raise MediaError(f"{where}: decode times start before 0")
    end = s.dts[-1] + s.duration[-1]
    if end <= s.dts[0]:
        raise MediaError(f"{where}: the sample durations add up to 0")
    if _at(end, ts, SMOOTH_TIMESCALE) > I64_MAX:
        raise MediaError(
            f"{where}: sample durations sum beyond 2^63 at timescale {SMOOTH_TIMESCALE} "
            f"({_seconds(end, ts)} at timescale {ts})"
        )
    # Smooth re-times every sample to 10 MHz in 32-bit trun durations (+1 for rounding), as
    # the step to the next sample's decode time, which a gap between fragments makes longer.
    # (Decode times that are the running sum of the durations step by no more than those.)
    steps = () if s.contiguous else map(sub, islice(s.dts, 1, None), s.dts)
    gap = max(steps, default=0)
    longest = max(gap, max(s.duration))  # noqa: PLW3301 - one C-level pass over the column
    if _at(longest, ts, SMOOTH_TIMESCALE) + 1 > U32_MAX:
        raise MediaError(
            f"{where}: a sample lasts {_seconds(longest, ts)}, beyond the 32-bit sample "
            f"durations of Smooth Streaming at timescale {SMOOTH_TIMESCALE}"
        )
    shift = track.pts_shift
    lo_cto, hi_cto = min(s.cto), max(s.cto)
    if track.kind is Kind.AUDIO:
        try:
            if isinstance(track.codec, AacConfig):  # what MPEG-TS can frame as ADTS
                adts.header_prefix(track.codec)
        except MediaError as e:
            raise MediaError(f"{where}: {e}") from None
        if lo_cto or hi_cto:
            raise MediaError(f"{where}: audio samples with composition offsets")
        biggest = max(s.size)
        if biggest + adts.ADTS_HEADER_SIZE > adts.MAX_FRAME_LENGTH:
            raise MediaError(
                f"{where}: an AAC access unit of {biggest} bytes, more than ADTS "
                f"(MPEG-TS audio) can frame"
            )
        first_pts, last_pts = s.dts[0] + shift, s.dts[-1] + shift
    else:
        # fMP4 writes the offsets raised to non-negative in 32-bit trun fields and the rest of
        # the shift as a 32-bit elst media_time (fmp4.edit_of): this bounds both.
        if lo_cto + shift < I32_MIN or hi_cto + shift > I32_MAX:
            raise MediaError(
                f"{where}: composition offsets plus the edit list shift ({shift}) do not fit "
                "32 bits"
            )
        # Smooth writes them relative to a fragment's first sample, at 10 MHz (+2: rounding).
        if _at(hi_cto - lo_cto, ts, SMOOTH_TIMESCALE) + 2 > I32_MAX:
            raise MediaError(
                f"{where}: composition offsets span {_seconds(hi_cto - lo_cto, ts)}, beyond "
                f"32 bits at timescale {SMOOTH_TIMESCALE}"
            )
        # Decode times increase, so these bound every presentation and decode time (within a
        # composition offset, which is all the margin the TS limits below need).
        first_pts = s.dts[0] + min(lo_cto, 0) + shift
        last_pts = s.dts[-1] + max(hi_cto, 0) + shift
        _check_display(track, where)
    # MPEG-TS: 33-bit 90 kHz timestamps, offset by PTS_OFFSET so that early ones stay positive.
    if _at(-first_pts, ts, TS_CLOCK) > mpegts.PTS_OFFSET:
        raise MediaError(
            f"{where}: presentation starts at -{_seconds(-first_pts, ts)} (edit list or "
            f"composition offsets), earlier than MPEG-TS timestamps can express"
        )
    if _at(last_pts + longest, ts, TS_CLOCK) + mpegts.PTS_OFFSET >= _TS_LIMIT:
        raise MediaError(
            f"{where}: presentation ends at {_seconds(last_pts, ts)}, beyond the 33-bit "
            f"MPEG-TS timestamps at {TS_CLOCK} Hz"
        )


def _check_display(track: Track, where: str) -> None:
    num, den = track.par
    width = track.width * num / den if num > 0 and den > 0 else track.width
    if round(width) >= _TKHD_SIZE_LIMIT or track.height >= _TKHD_SIZE_LIMIT:
        raise MediaError(
            f"{where}: display size {round(width)} by {track.height} (width {track.width}, "
            f"pixel aspect ratio {num}:{den}) is beyond 65535, what tkhd holds"
        )


def check_times(times: Sequence[int], where: str) -> None:
    """Segment start times (URL_TIMESCALE units, and the end last) must strictly increase:
    every segment lasts, and each has its own URL."""
    for k, (a, b) in enumerate(pairwise(times)):
        if b <= a:
            raise MediaError(
                f"{where}: segment {k} starts at {_seconds(a, URL_TIMESCALE)} and lasts "
                f"{_seconds(b - a, URL_TIMESCALE)}: presentation times do not increase "
                "(edit list, composition offsets or durations out of range)"
            )
