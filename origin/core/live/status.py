"""What ``origin channels`` and ``/channels`` show of a channel: its state, streams, window."""

from __future__ import annotations

from dataclasses import dataclass

from origin.core.track import Kind, Track


@dataclass(frozen=True, slots=True)
class StreamStatus:
    stream_id: str
    connections: int
    tracks: tuple[str, ...]  # "video 640x360 avc1.64001e", ...
    last_fragment: float | None  # wall-clock time of its newest fragment
    lag: float | None  # seconds between the wall clock and the newest media time received


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    name: str
    state: str  # "idle" (nothing published), "live", "ended"
    streams: tuple[StreamStatus, ...]
    window: tuple[float, float] | None  # channel seconds of the window's first and last segment
    segments: int  # intervals in the window


def describe(track: Track) -> str:
    if track.kind is Kind.VIDEO:
        return f"video {track.width}x{track.height} {track.codec_string}"
    return f"audio {track.sample_rate} Hz {track.codec_string}"
