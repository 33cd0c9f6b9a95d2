"""One live track's samples not yet in a published segment, in channel time.

Columns grow fragment by fragment (``array.extend``, no object per sample) and are cut into a
self-contained :class:`~origin.core.live.model.LiveSegment` track: its own :class:`SampleIndex`
with offsets into one payload, so a segment is muxed exactly as a VOD one with no reference to
the buffer it came from.
"""

from __future__ import annotations

import dataclasses
from array import array
from bisect import bisect_left
from itertools import accumulate, compress, count

from origin.core.index import SampleIndex
from origin.core.track import Track

URL_SECOND = 10_000_000  # URL_TIMESCALE ticks per second (100 ns units)


def to_url(t: int, timescale: int) -> int:
    """``t`` track ticks in 100 ns units, rounded half up (also for negative ``t``)."""
    return (2 * t * URL_SECOND + timescale) // (2 * timescale)


def from_url(u: int, timescale: int) -> int:
    """100 ns ticks in track ticks, rounded half up; exact for whole seconds."""
    return (2 * u * timescale + URL_SECOND) // (2 * URL_SECOND)


class Pending:
    """Samples of one track waiting for their segment to close (decode order, channel time)."""

    __slots__ = ("cto", "dts", "duration", "parts", "size", "sync")

    def __init__(self) -> None:
        self.dts = array("q")
        self.duration = array("I")
        self.cto = array("i")
        self.size = array("I")
        self.sync = bytearray()
        self.parts: list[memoryview] = []  # one payload view per sample

    def __len__(self) -> int:
        return len(self.dts)

    @property
    def end(self) -> int:
        """Decode end of the last sample (track ticks)."""
        return self.dts[-1] + self.duration[-1]

    def payload_size(self) -> int:
        return sum(self.size)

    def extend(self, samples: SampleIndex, payload: bytes, shift: int, first: int = 0) -> None:
        """Append samples ``first:`` of a chunk, their decode times moved by ``shift`` ticks."""
        n = len(samples)
        if first >= n:
            return
        self.dts.extend(t + shift for t in samples.dts[first:])
        self.duration.extend(samples.duration[first:])
        self.cto.extend(samples.cto[first:])
        self.size.extend(samples.size[first:])
        self.sync += samples.sync_flags[first:]
        view = memoryview(payload)
        self.parts.extend(
            view[o : o + s]
            for o, s in zip(samples.offset[first:], samples.size[first:], strict=True)
        )

    def stretch_last(self, to: int) -> None:
        """Close a small gap: the last sample lasts until decode time ``to``."""
        if self.dts and to > self.end:
            self.duration[-1] = to - self.dts[-1]

    def first_at(self, decode_time: int) -> int:
        """Index of the first sample decoded at or after ``decode_time``."""
        return bisect_left(self.dts, decode_time)

    def take(self, stop: int, template: Track) -> tuple[Track, bytes]:
        """Remove samples ``:stop`` and return them as a track of their own and its payload."""
        sizes = self.size[:stop]
        payload = b"".join(self.parts[:stop])
        samples = SampleIndex(
            dts=self.dts[:stop],
            duration=self.duration[:stop],
            cto=self.cto[:stop],
            size=sizes,
            offset=array("Q", accumulate(sizes[:-1], initial=0)) if stop else array("Q"),
            keyframes=array("I", compress(count(), self.sync[:stop])),
        )
        for col in (self.dts, self.duration, self.cto, self.size):
            del col[:stop]
        del self.sync[:stop]
        del self.parts[:stop]
        return dataclasses.replace(template, samples=samples), payload
