"""What the channel index keeps per ingested stream and per track: the codec template, the
samples waiting for their segment, the published segments of the window, the URL id."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction

from origin.core.live.buffer import Pending, to_url
from origin.core.live.model import LiveSegment, StreamTrack
from origin.core.mux import fmp4
from origin.core.track import Kind, Track


@dataclass(slots=True)
class TrackState:
    key: tuple[str, int]
    template: StreamTrack
    pending: Pending = field(default_factory=Pending)
    segments: deque[LiveSegment] = field(default_factory=deque)
    received_end: int | None = None  # decode end of the last accepted sample (channel ticks)
    aligned: bool = True  # every fragment so far started with a keyframe
    break_next: bool = False  # the next segment starts after a timeline break
    rid: int = 0  # URL id once published
    edit: fmp4.Edit | None = None
    fps: Fraction = Fraction(0)
    last_wall: float | None = None  # when its last fragment arrived

    @property
    def track(self) -> Track:
        return self.template.track

    @property
    def kind(self) -> Kind:
        return self.template.track.kind

    @property
    def ts(self) -> int:
        return self.template.track.timescale

    def presentation(self, dts: int, cto: int) -> int:
        """Presentation time in URL units of a sample at channel decode time ``dts``."""
        return to_url(dts + cto + self.track.pts_shift, self.ts)


@dataclass(slots=True)
class StreamState:
    tracks: dict[int, TrackState] = field(default_factory=dict)
    connections: int = 0
    ended: bool = False
