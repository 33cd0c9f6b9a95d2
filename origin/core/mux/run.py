"""The muxers' input: consecutive samples of one track with their payload bytes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from origin.core.track import Track


@dataclass(frozen=True, slots=True)
class Run:
    """Samples ``start:stop`` of ``track`` (decode order) and one payload per sample.

    Timing and flags come from ``track.samples``; ``data[k]`` is the payload of sample
    ``start + k`` exactly as stored in the source (length-prefixed NAL units for AVC, raw AAC
    access units for audio).
    """

    track: Track
    start: int
    stop: int
    data: Sequence[bytes | memoryview]

    def __post_init__(self) -> None:
        if len(self.data) != self.stop - self.start:
            raise ValueError("one payload per sample is required")

    def __len__(self) -> int:
        return self.stop - self.start
