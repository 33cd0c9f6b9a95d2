"""A channel's grid: the numbered intervals of channel time its segments fill, one list for
every rendition, so a time has one media sequence number (and so one sequence-number IV) in all
of them. The first rendition to close a segment at the grid's end makes the next interval; the
others must close the same one (a ladder's keyframes are aligned) or are refused."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from fractions import Fraction

from origin.core.errors import IngestConflict
from origin.core.live.buffer import URL_SECOND

TOLERANCE = 10_000  # 1 ms in URL units: renditions' keyframe times differ by timescale rounding
GAP = 1_000_000  # 100 ms: a jump in a track's timeline larger than this is a discontinuity


@dataclass(slots=True)
class Interval:
    number: int
    time: int  # URL units (100 ns), channel time
    end: int
    discontinuity: bool  # a timeline break just before it
    epoch: int  # discontinuities up to and including it


def _seconds(t: int) -> str:
    return f"{t / URL_SECOND:.3f} s"


class Grid:
    def __init__(self, *, window: int, target: int) -> None:
        self.window = window  # URL units
        self.target = target  # HLS TARGETDURATION: raised by a longer interval, never lowered
        self.intervals: deque[Interval] = deque()
        self._number = 0
        self._epoch = 0

    def __len__(self) -> int:
        return len(self.intervals)

    @property
    def end(self) -> int | None:
        return self.intervals[-1].end if self.intervals else None

    @property
    def first_number(self) -> int | None:
        return self.intervals[0].number if self.intervals else None

    def place(self, time: int, end: int, *, strict: bool) -> Interval | None:
        """The interval a segment ``time``..``end`` fills; None if it is new (at or after the
        grid's end) or older than the window. ``strict``: its end must match too (not for the
        short last segment of a stream that ended). Raises IngestConflict for a misaligned one."""
        for iv in reversed(self.intervals):
            if abs(iv.time - time) <= TOLERANCE:
                if strict and abs(iv.end - end) > TOLERANCE:
                    raise IngestConflict(
                        "keyframes not aligned with the channel's other renditions: a segment "
                        f"at {_seconds(time)} ends at {_seconds(end)}, theirs at {_seconds(iv.end)}"
                    )
                return iv
            if iv.time < time:
                break
        grid_end = self.end
        if grid_end is not None and time < grid_end - TOLERANCE:
            if time < self.intervals[0].time:
                return None
            raise IngestConflict(
                "keyframes not aligned with the channel's other renditions: a segment at "
                f"{_seconds(time)} starts inside another"
            )
        return None

    def is_new(self, time: int) -> bool:
        """Whether a segment at ``time`` would start a new interval."""
        grid_end = self.end
        return grid_end is None or time >= grid_end - TOLERANCE

    def jumps(self, time: int) -> bool:
        """Whether an interval at ``time`` leaves a gap after the grid's end."""
        grid_end = self.end
        return grid_end is not None and time > grid_end + GAP

    def add(self, time: int, end: int, *, broken: bool) -> Interval:
        """A new interval at the end; ``broken``: a discontinuity before it."""
        broken = broken and bool(self.intervals)
        if broken:
            self._epoch += 1
        iv = Interval(self._number, time, end, broken, self._epoch)
        self._number += 1
        self.intervals.append(iv)
        self.target = max(self.target, round(Fraction(end - time, URL_SECOND)))
        return iv

    def slide(self) -> None:
        """Drop the intervals that ended more than a window before the newest one's end."""
        if not self.intervals:
            return
        horizon = self.intervals[-1].end - self.window
        while len(self.intervals) > 1 and self.intervals[0].end <= horizon:
            self.intervals.popleft()
