"""What ``origin channels`` and ``/channels`` show of a channel: its state, streams, window."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from origin.core.live.buffer import URL_SECOND, to_url
from origin.core.live.grid import Grid
from origin.core.live.tracks import StreamState
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


def channel_status(
    name: str,
    state: str,
    streams: Mapping[str, StreamState],
    grid: Grid,
    media_now: int | None,
) -> ChannelStatus:
    """``media_now``: the wall clock in channel time (URL units), None before the first segment."""
    out = []
    for sid, stream in streams.items():
        tracks = stream.tracks.values()
        names = tuple(describe(t.track) for t in tracks)
        walls = [t.last_wall for t in tracks if t.last_wall is not None]
        ends = [to_url(t.received_end, t.ts) for t in tracks if t.received_end is not None]
        lag = (media_now - max(ends)) / URL_SECOND if ends and media_now is not None else None
        out.append(StreamStatus(sid, stream.connections, names, max(walls, default=None), lag))
    window = (
        (grid.intervals[0].time / URL_SECOND, grid.intervals[-1].end / URL_SECOND)
        if grid.intervals
        else None
    )
    return ChannelStatus(name, state, tuple(out), window, len(grid))
