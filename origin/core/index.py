"""Columnar per-track sample index.

One array per field (``array``/``memoryview``), never an object per sample: a two-hour 30 fps
track has ~216,000 samples and the index must stay a few MB and load quickly.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class SampleIndex:
    """Samples of one track in decode order.

    ``dts`` and ``cto`` are in the track's timescale. Presentation time before edit lists is
    ``dts[i] + cto[i]``; :class:`origin.core.track.Track` applies the edit list shift.
    """

    dts: array[int]  # 'q' decode time of each sample
    duration: array[int]  # 'I' decode duration of each sample
    cto: array[int]  # 'i' composition offset (cts - dts), may be negative
    size: array[int]  # 'I' bytes
    offset: array[int]  # 'Q' absolute byte offset in the source file
    keyframes: array[int]  # 'I' sorted indices of sync samples
    _sync: bytes = field(default=b"", repr=False, compare=False)
    # Every decode time step is the sample's duration (dts is their running sum: stbl tables),
    # so checks over the steps can read ``duration`` instead of subtracting decode times.
    contiguous: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.dts)
        if not (len(self.duration) == len(self.cto) == len(self.size) == len(self.offset) == n):
            raise ValueError("sample index columns differ in length")
        kf = self.keyframes
        if len(kf) == n and (n == 0 or kf[-1] == n - 1) and kf == identity(n):
            # Every sample a sync sample (audio): no Python loop over them.
            object.__setattr__(self, "_sync", b"\x01" * n)
            return
        flags = bytearray(n)
        for k in self.keyframes:
            flags[k] = 1
        object.__setattr__(self, "_sync", bytes(flags))

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


def make_index(
    *,
    dts: array[int],
    duration: array[int],
    cto: array[int],
    size: array[int],
    offset: array[int],
    keyframes: array[int],
    contiguous: bool = False,
) -> SampleIndex:
    return SampleIndex(
        dts=dts,
        duration=duration,
        cto=cto,
        size=size,
        offset=offset,
        keyframes=keyframes,
        contiguous=contiguous,
    )


def empty_index() -> SampleIndex:
    """No samples (a live ``moov``'s tracks: their samples come in fragments)."""
    return make_index(
        dts=array("q"), duration=array("I"), cto=array("i"), size=array("I"),
        offset=array("Q"), keyframes=array("I"),
    )  # fmt: skip
