"""Smooth Streaming fragments (MS-SSTR 2.2.4): the fMP4 columns re-timed to 10 MHz, ``tfxd``
instead of ``tfdt``, no ``styp``, and the live ``tfrf`` look-ahead box.

Built from :mod:`origin.core.mux.fmp4`'s box primitives and ``Fragment`` columns (the same
``trun`` writer), so one function writes each box.
"""

from __future__ import annotations

import itertools
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from origin.core.mp4.defs import (
    SMOOTH_TIMESCALE,
    TFHD_DEFAULT_FLAGS,
    TFRF_UUID,
    TFXD_UUID,
    U32_MAX,
    U64_MAX,
)
from origin.core.mux.fmp4 import (
    Fragment,
    _box,
    _check_range,
    _mdat_header,
    _mfhd,
    _tfhd_box,
    _trun,
    _trun_size,
)
from origin.core.mux.run import Run
from origin.core.track import AvcConfig, Kind, Track

__all__ = ["SmoothTiming", "smooth_duration", "smooth_fragment", "smooth_timing", "tfrf"]

_TFXD_SIZE = 8 + 16 + 4 + 16  # header, user type, version/flags, two 64-bit fields


@dataclass(frozen=True, slots=True)
class SmoothTiming:
    """Samples of one Smooth fragment re-timed to 10 MHz.

    ``time`` is the decode time of the first sample (the manifest's ``c@t``, tfxd
    FragmentAbsoluteTime); ``duration`` is the sum of ``durations`` (``c@d``, tfxd
    FragmentDuration). ``offsets`` are signed composition offsets (video) or ``None`` (audio).
    """

    time: int
    duration: int
    durations: array[int]  # 'I'
    offsets: array[int] | None  # 'i'


def _to_smooth(delta: int, timescale: int) -> int:
    """``delta`` track ticks in 100 ns units, rounded half up (also for negative deltas)."""
    return (2 * delta * SMOOTH_TIMESCALE + timescale) // (2 * timescale)


def smooth_duration(track: Track, start: int, stop: int) -> int:
    """10 MHz duration of samples ``start:stop``: exactly ``smooth_timing(...).duration``."""
    _check_range(track, start, stop)
    s = track.samples
    return _to_smooth(s.dts[stop - 1] + s.duration[stop - 1] - s.dts[start], track.timescale)


def smooth_timing(track: Track, start: int, stop: int, *, time: int) -> SmoothTiming:
    """Decode durations and composition offsets of samples ``start:stop`` at 10 MHz.

    Each sample's decode time is ``time`` plus its offset from the first sample rounded once,
    and durations are differences of those rounded times, so rounding never accumulates and the
    fragment lasts exactly :func:`smooth_duration`. Presentation offsets are rounded the same way
    relative to the first sample's presentation time, which thus equals ``time``.
    """
    _check_range(track, start, stop)
    if not 0 <= time <= U64_MAX:
        raise ValueError(f"fragment time {time} does not fit tfxd")
    s = track.samples
    ts = track.timescale
    first = s.dts[start]
    ends = [*s.dts[start + 1 : stop], s.dts[stop - 1] + s.duration[stop - 1]]
    decode = [0, *(_to_smooth(d - first, ts) for d in ends)]
    try:
        durations = array("I", [b - a for a, b in itertools.pairwise(decode)])
    except OverflowError:
        raise ValueError("sample duration does not fit 32 bits at 10 MHz") from None
    offsets: array[int] | None = None
    if track.kind is Kind.VIDEO:
        pts0 = first + s.cto[start]
        try:
            offsets = array(
                "i",
                [
                    _to_smooth(s.dts[i] + s.cto[i] - pts0, ts) - decode[i - start]
                    for i in range(start, stop)
                ],
            )
        except OverflowError:
            raise ValueError("composition offset does not fit 32 bits at 10 MHz") from None
    elif any(s.cto[start:stop]):
        raise ValueError("audio with composition offsets is not supported")
    return SmoothTiming(time, decode[-1], durations, offsets)


def _smooth_tfhd(track_id: int, *, per_sample_flags: bool) -> bytes:
    # No default-base-is-moof, as Smooth origins write it (PIFF predates the flag): with one traf
    # and no base_data_offset the base is the moof's first byte all the same (14496-12 8.8.7.1).
    return _tfhd_box(track_id, 0 if per_sample_flags else TFHD_DEFAULT_FLAGS)


def _tfxd(time: int, duration: int) -> bytes:
    return _box(b"uuid", TFXD_UUID, struct.pack(">IQQ", 0x01000000, time, duration))


def _tfrf_size(next_fragments: Sequence[tuple[int, int]] | None) -> int:
    """``len(tfrf(next_fragments))`` (0 for None) without writing it."""
    if next_fragments is None:
        return 0
    return 8 + 16 + 4 + 1 + 16 * len(next_fragments)


def tfrf(next_fragments: Sequence[tuple[int, int]]) -> bytes:
    """A TfrfBox announcing the ``(time, duration)`` of the fragments after this one (10 MHz).

    Version 1 (64-bit fields), as ``tfxd``. dash.js wants one in every live fragment (a missing
    box is its MSS_NO_TFRF error) and extends its timeline from the first entry only; it accepts
    an empty box but then learns of no new fragment from it.
    """
    if len(next_fragments) > 255:
        raise ValueError("a tfrf box holds at most 255 fragments (FragmentCount is 8 bits)")
    if any(t < 0 or d <= 0 for t, d in next_fragments):
        raise ValueError("fragment times must be >= 0 and durations > 0")
    entries = b"".join(struct.pack(">QQ", t, d) for t, d in next_fragments)
    return _box(b"uuid", TFRF_UUID, struct.pack(">IB", 0x01000000, len(next_fragments)), entries)


_tfrf_box = tfrf  # the writer, under a name the ``tfrf`` parameter of smooth_fragment cannot hide


def _four_byte_nal_lengths(sample: bytes | memoryview, size: int) -> bytes:
    """Re-prefix the NAL units of one AVC sample with 4-byte lengths; damaged lengths are
    passed on as in MPEG-TS (``mpegts._annexb``): a stray tail dropped, an overrun cut."""
    out: list[bytes | memoryview] = []
    pos, end = 0, len(sample)
    while pos < end:
        if pos + size >= end:
            break
        n = int.from_bytes(sample[pos : pos + size], "big")
        pos += size
        n = min(n, end - pos)
        out += (n.to_bytes(4, "big"), sample[pos : pos + n])
        pos += n
    return b"".join(out)


def smooth_fragment(
    run: Run,
    *,
    sequence: int,
    time: int,
    track_id: int | None = None,
    tfrf: Sequence[tuple[int, int]] | None = None,
) -> bytes:
    """A Smooth Streaming fragment: ``moof(mfhd, traf(tfhd, trun, tfxd[, tfrf])) + mdat``.

    ``tfrf``: live only, the ``(time, duration)`` of the next fragments to announce after
    ``tfxd`` (:func:`tfrf`); ``()`` writes an empty box, None (VOD) none.

    As Smooth origins write it: no ``styp`` and no ``tfdt`` (clients take the time from the
    manifest or tfxd; dash.js derives the tfdt it needs from the request and would keep a present
    one even when it re-bases timestamps), 10 MHz timing from :func:`smooth_timing`, signed
    ``trun`` v1 offsets for video. Smooth has no init segment: the client builds one from the
    manifest with track_ID 1 + the StreamIndex's position (dash.js), or ignores the ID, so the
    default is 1 for video and 2 for audio (video StreamIndex first). AVC samples are re-prefixed
    with 4-byte NAL lengths when the source uses shorter ones, since clients assume 4.
    """
    if len(run) == 0:
        raise ValueError("empty run")
    if not 0 <= sequence <= U32_MAX:
        raise ValueError(f"sequence number {sequence} does not fit 32 bits")
    track = run.track
    timing = smooth_timing(track, run.start, run.stop, time=time)
    if list(map(len, run.data)) != track.samples.size[run.start : run.stop].tolist():
        raise ValueError("payload sizes differ from the sample index")
    if track_id is None:
        track_id = 1 if track.kind is Kind.VIDEO else 2
    if not 0 < track_id < U32_MAX:
        raise ValueError("track_id must be a positive 32-bit value")
    data: Sequence[bytes | memoryview] = run.data
    codec = track.codec
    if isinstance(codec, AvcConfig) and codec.nal_length_size != 4:
        data = [_four_byte_nal_lengths(d, codec.nal_length_size) for d in data]
    video = track.kind is Kind.VIDEO
    fragment = Fragment(
        track_id,
        time,
        timing.durations,
        array("I", map(len, data)),
        track.samples.sync_flags[run.start : run.stop] if video else None,
        timing.offsets,
    )
    tfhd = _smooth_tfhd(track_id, per_sample_flags=video)
    tfxd = _tfxd(time, timing.duration)
    look_ahead = b"" if tfrf is None else _tfrf_box(tfrf)
    payload = sum(fragment.sizes)
    mdat_header = _mdat_header(payload)
    moof_size = 8 + 16 + 8 + len(tfhd) + _trun_size(fragment.trun_flags, len(fragment)) + _TFXD_SIZE
    moof_size += _tfrf_size(tfrf)
    trun = _trun(fragment, data_offset=moof_size + len(mdat_header))
    moof_box = _box(b"moof", _mfhd(sequence), _box(b"traf", tfhd, trun, tfxd, look_ahead))
    if len(moof_box) != moof_size:  # pragma: no cover - guards the size arithmetic
        raise AssertionError(f"moof is {len(moof_box)} bytes, computed {moof_size}")
    return b"".join((moof_box, mdat_header, *data))
