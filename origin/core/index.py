"""Columnar per-track sample index.

One array per field (``array``/``memoryview``), never an object per sample: a two-hour 30 fps
track has ~216,000 samples and the index must stay a few MB and load quickly.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from functools import lru_cache


class SampleIndex:
    """Samples of one track in decode order (read only once built).

    ``dts`` and ``cto`` are in the track's timescale. Presentation time before edit lists is
    ``dts[i] + cto[i]``; :class:`origin.core.track.Track` applies the edit list shift.

    ``offset`` may be given as a function computing the column on first use: tables whose chunks
    hold a few samples each (interleaved audio) cost a Python-speed pass per sample to expand,
    which start-up then skips until a segment of the track is first read.
    """

    __slots__ = ("_offset", "_sync", "contiguous", "cto", "dts", "duration", "keyframes", "size")

    dts: array[int]  # 'q' decode time of each sample
    duration: array[int]  # 'I' decode duration of each sample
    cto: array[int]  # 'i' composition offset (cts - dts), may be negative
    size: array[int]  # 'I' bytes
    keyframes: array[int]  # 'I' sorted indices of sync samples
    # Every decode time step is the sample's duration (dts is their running sum: stbl tables),
    # so checks over the steps can read ``duration`` instead of subtracting decode times.
    contiguous: bool

    def __init__(  # noqa: PLR0917 - the columns in order, as the dataclass it was took them
        self,
        dts: array[int],
        duration: array[int],
        cto: array[int],
        size: array[int],
        offset: array[int] | Callable[[], array[int]],
        keyframes: array[int],
        contiguous: bool = False,
    ) -> None:
        n = len(dts)
        if not (len(duration) == len(cto) == len(size) == n) or (
            not callable(offset) and len(offset) != n
        ):
            raise ValueError("sample index columns differ in length")
        self.dts, self.duration, self.cto, self.size = dts, duration, cto, size
        self._offset = offset
        self.keyframes = keyframes
        self.contiguous = contiguous
        kf = keyframes
        if len(kf) == n and (n == 0 or kf[-1] == n - 1) and kf == identity(n):
            # Every sample a sync sample (audio): no Python loop over them.
            self._sync = b"\x01" * n
            return
        flags = bytearray(n)
        for k in keyframes:
            flags[k] = 1
        self._sync = bytes(flags)

    @property
    def offset(self) -> array[int]:
        """'Q' absolute byte offset of each sample in the source file."""
        column = self._offset
        if callable(column):  # first use: computed once (a racing thread computes the same)
            column = column()
            if len(column) != len(self.dts):
                raise ValueError("sample index columns differ in length")
            self._offset = column
        return column

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SampleIndex):
            return NotImplemented
        return (self.dts, self.duration, self.cto, self.size, self.offset, self.keyframes) == (
            other.dts, other.duration, other.cto, other.size, other.offset, other.keyframes,
        )  # fmt: skip

    __hash__ = None  # type: ignore[assignment]  # mutable columns

    def __repr__(self) -> str:
        return f"SampleIndex({len(self)} samples)"

    def __len__(self) -> int:
        return len(self.dts)

    def is_sync(self, i: int) -> bool:
        return self._sync[i] == 1

    @property
    def sync_flags(self) -> bytes:
        """One byte per sample, 1 for a sync sample."""
        return self._sync

    def total_duration(self) -> int:
        if not self.dts:
            return 0
        return self.dts[-1] + self.duration[-1] - self.dts[0]

    def total_size(self) -> int:
        return sum(self.size)

    def byte_size(self, start: int, stop: int) -> int:
        """Payload bytes of samples ``start:stop``."""
        return sum(self.size[start:stop])


@lru_cache(maxsize=4)
def _identity(n: int) -> array[int]:
    return array("I", range(n))


def identity(n: int) -> array[int]:
    """``array("I", range(n))``, every sample's index (the keyframes of all-sync audio): kept
    for the last few lengths, so a catalog of the same ladder builds it once. Read only: copy
    it (``array("I", identity(n))``, one memcpy) to get a column."""
    return _identity(n)


def empty_index() -> SampleIndex:
    """No samples (a live ``moov``'s tracks: their samples come in fragments)."""
    return SampleIndex(
        dts=array("q"), duration=array("I"), cto=array("i"), size=array("I"),
        offset=array("Q"), keyframes=array("I"),
    )  # fmt: skip
