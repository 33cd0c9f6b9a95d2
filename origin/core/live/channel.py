"""The live index of one channel: ingested fragments cut into segments on one grid, a sliding
window bounded in time (and so in memory), and an immutable :class:`ChannelView` after each change.

The grid. Video is cut by consistent chunking on channel time, as VOD is: a segment closes at the
end of the fragment that reaches the next multiple of the segment duration after the segment's
start (every fragment of a keyframe-aligned stream starts with a keyframe, so the next one starts
a segment), or, for a stream whose fragments do not all start with one, when a fragment starting
with a keyframe arrives past that multiple. The first rendition to close a segment at a time
defines a grid interval and its media sequence number; every other video rendition must close the
same interval (aligned keyframes, as every live origin requires of a ladder) and gets the same
number, so sequence numbers, and the sequence-number IV, agree across renditions. A source that
cuts its own segments (a looped VOD asset, ``source_cut``) has every video fragment taken as one.
Audio is cut at the grid's times, once its samples reach an interval's end.

Channel time. Each connection maps the encoder's timestamps to channel time with the channel's
offset (whole seconds, exact in every timescale). A connection that continues the timeline keeps
it, so players see no break; one that jumps back (an encoder restarted at 0) gets a new offset
that places it at the wall-clock live edge, and the first interval after it is a discontinuity.
Fragments of a time already indexed (a redundant encoder) are dropped: the first one wins.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from origin.core.errors import IngestError, IngestTooLarge
from origin.core.live.buffer import URL_SECOND, from_url, to_url
from origin.core.live.connection import Connection
from origin.core.live.grid import GAP, TOLERANCE, Grid, Interval
from origin.core.live.model import (
    ChannelView,
    Chunk,
    LiveRendition,
    LiveSegment,
)
from origin.core.live.status import ChannelStatus, channel_status
from origin.core.live.tracks import StreamState, TrackState
from origin.core.mux import fmp4, mpegts
from origin.core.presentation import frame_rate
from origin.core.track import Kind, Track

RECENT = 30.0  # seconds a new channel offset is offered to other reconnecting streams


class Channel:
    """One channel's index. Not thread-safe: the service calls it from its event loop only.

    ``now`` arguments are wall-clock seconds since the epoch (the caller's clock, so tests drive
    time). Every change that publishes something makes a new :attr:`view`.
    """

    def __init__(
        self,
        name: str,
        *,
        segment_duration: Fraction,
        window: Fraction,
        max_segment_bytes: int = 256 << 20,
        anchor: float | None = None,
        target: int | None = None,
        source_cut: bool = False,
    ) -> None:
        """``anchor``: the wall-clock time of channel time 0 when the source knows it (a looped
        VOD asset); otherwise the first segment's end is taken as its arrival time. ``target``:
        the HLS target duration when the source knows its longest segment (it must not change);
        otherwise the segment duration rounded up, raised by any longer segment.
        ``source_cut``: the source cuts the segments, every video fragment is one (a looped VOD
        asset fed its VOD segments: across the wrap they are not on the grid of multiples)."""
        if segment_duration <= 0 or window < 3 * segment_duration:
            raise ValueError("the window must hold at least three segments")
        self.name = name
        self.segment_duration = segment_duration
        self.window = window
        self._d = round(segment_duration * URL_SECOND)
        self._window = round(window * URL_SECOND)
        self.max_segment_bytes = max_segment_bytes
        self._streams: dict[str, StreamState] = {}
        self._grid = Grid(
            window=self._window, target=max(1, math.ceil(segment_duration), target or 0)
        )
        self._offset: int | None = None  # URL units, whole seconds
        self._offset_at = 0.0
        self._anchor = anchor  # wall-clock seconds of channel time 0
        self._source_cut = source_cut
        self._rids: dict[tuple[str, int], int] = {}
        self._audio: tuple[str, int] | None = None  # the channel's audio track
        self._ended = False
        self._restart = False  # the next interval follows an ended session
        self._version = 0
        self.view: ChannelView | None = None

    # --- ingest -------------------------------------------------------------------------------

    def connect(self, stream_id: str) -> Connection:
        """A new ingest connection (one POST) for ``stream_id``."""
        stream = self._streams.setdefault(stream_id, StreamState())
        stream.connections += 1
        stream.ended = False
        if self._ended:
            self._ended = False
            self._restart = True
        return Connection(self, stream_id, stream)

    def stop(self, now: float) -> None:
        """End the channel as if every encoder had stopped cleanly."""
        for stream in self._streams.values():
            stream.ended = True
        self._finish(now)

    def _finish(self, now: float) -> None:
        for stream in self._streams.values():
            for t in stream.tracks.values():
                if t.kind is Kind.VIDEO:
                    self._flush_video(t, now)
        for stream in self._streams.values():
            for t in stream.tracks.values():
                if t.kind is Kind.AUDIO:
                    self._cut_audio(t, now, final=True)
        self._ended = True
        self._publish(now)

    def _closed(self, stream: StreamState, now: float, clean: bool) -> None:
        stream.connections -= 1
        if stream.connections == 0 and clean:
            stream.ended = True
        if all(s.connections == 0 for s in self._streams.values()) and all(
            s.ended for s in self._streams.values()
        ):
            self._finish(now)
        else:
            self._publish(now)

    # --- time ---------------------------------------------------------------------------------

    def _media_now(self, now: float) -> int | None:
        if self._anchor is None:
            return None
        return round((now - self._anchor) * URL_SECOND)

    def _grid_end(self) -> int | None:
        return self._grid.end

    def _choose_offset(
        self, t: TrackState, raw_pts: int, length: int, now: float, *, concurrent: bool
    ) -> tuple[int, bool]:
        """The offset for a connection whose first chunk starts at ``raw_pts`` and lasts ``length``
        (URL units), and
        whether it breaks the timeline."""
        if self._offset is None:
            self._offset = -(-max(0, -raw_pts) // URL_SECOND) * URL_SECOND
            self._offset_at = now
            return self._offset, False
        at = raw_pts + self._offset
        own_end = to_url(t.received_end, t.ts) if t.received_end is not None else None
        edge = self._grid_end()
        behind = own_end if own_end is not None else edge
        recent = now - self._offset_at <= RECENT
        # A redundant encoder (another connection of the stream is open) may lag by up to the
        # window; an encoder reconnecting alone may resend what it sent last (AMS encoders
        # resend their last fragment), but starting further back it was restarted.
        slack = self._window if concurrent else 2 * self._d
        if behind is None or (at >= behind - slack and (recent or at <= behind + 2 * self._window)):
            return self._offset, own_end is not None and at > own_end + GAP
        # A jump back (or very far ahead): place the stream at the live edge of the wall clock,
        # where a fragment of this length that just arrived started.
        media_now = self._media_now(now)
        live = max(edge or 0, own_end or 0, (media_now or 0) - length)
        self._offset = -(-(live - raw_pts) // URL_SECOND) * URL_SECOND
        self._offset_at = now
        return self._offset, True

    # --- video --------------------------------------------------------------------------------

    def _add_video(self, t: TrackState, chunk: Chunk, shift: int, now: float) -> None:
        s = chunk.samples
        start = s.dts[0] + shift
        if t.received_end is not None and start < t.received_end - from_url(TOLERANCE, t.ts):
            return  # a time already indexed: a redundant encoder's duplicate
        sync = s.is_sync(0)
        p = t.pending
        if t.received_end is not None and start > t.received_end + from_url(GAP, t.ts):
            self._close_video(t, len(p), now)  # a break: what came before ends here
            t.break_next = True
        elif len(p) and start > p.end:
            p.stretch_last(start)
        first_pts = t.presentation(start, s.cto[0])
        if not len(t.pending):
            if not sync:
                raise IngestError(
                    f"video fragment at {first_pts / URL_SECOND:.3f} s does not start with a "
                    "keyframe and no segment is open (live ingest fragments must start with one)"
                )
        elif not sync:
            t.aligned = False
        elif not t.aligned and first_pts >= self._next_cut(t) - TOLERANCE:
            self._close_video(t, len(t.pending), now)
        p = t.pending
        p.extend(s, chunk.payload, shift)
        t.received_end = p.end
        if p.payload_size() > self.max_segment_bytes:
            raise IngestTooLarge(
                f"a segment would exceed {self.max_segment_bytes} bytes: fragments without "
                "keyframes for too long"
            )
        if self._source_cut or (
            t.aligned and self._pending_end(t) >= self._next_cut(t) - TOLERANCE
        ):
            self._close_video(t, len(p), now)

    def _pending_end(self, t: TrackState) -> int:
        p = t.pending
        return t.presentation(p.end, p.cto[0])

    def _next_cut(self, t: TrackState) -> int:
        start = t.presentation(t.pending.dts[0], t.pending.cto[0])
        return ((start + TOLERANCE) // self._d + 1) * self._d

    def _flush_video(self, t: TrackState, now: float) -> None:
        self._close_video(t, len(t.pending), now)

    def _close_video(self, t: TrackState, stop: int, now: float) -> None:
        p = t.pending
        if stop == 0:
            return
        time = t.presentation(p.dts[0], p.cto[0])
        end = t.presentation(p.dts[stop - 1] + p.duration[stop - 1], p.cto[0])
        interval = self._interval(t, time, end, now)
        track, payload = p.take(stop, t.track)
        if interval is None:
            return  # older than the window
        self._append(t, interval, track, payload, now)

    def _interval(self, t: TrackState, time: int, end: int, now: float) -> Interval | None:
        """The grid interval a closed segment fills, made if it starts at the grid's end."""
        iv = self._grid.place(time, end, strict=not self._ended)
        if iv is not None or not self._grid.is_new(time):
            return iv
        broken = t.break_next or self._grid.jumps(time) or self._restart
        self._restart = False
        if self._anchor is None:
            self._anchor = now - end / URL_SECOND  # the segment's end is "now" on the wall clock
        return self._grid.add(time, end, broken=broken)

    # --- audio --------------------------------------------------------------------------------

    def _add_audio(self, t: TrackState, chunk: Chunk, shift: int, now: float) -> None:
        s = chunk.samples
        first = 0
        if t.received_end is not None:
            # Samples of a time already indexed (a redundant encoder) are dropped one by one.
            limit = t.received_end - from_url(TOLERANCE, t.ts) - shift
            while first < len(s) and s.dts[first] < limit:
                first += 1
            if first == len(s):
                return
        start = s.dts[first] + shift
        if start < 0:
            while first < len(s) and s.dts[first] + shift < 0:
                first += 1  # priming before channel time 0
            if first == len(s):
                return
            start = s.dts[first] + shift
        p = t.pending
        if t.received_end is not None and start > t.received_end + from_url(GAP, t.ts):
            self._cut_audio(t, now, final=True)
            t.break_next = True
        elif len(p) and start > p.end:
            p.stretch_last(start)
        p.extend(s, chunk.payload, shift, first)
        t.received_end = p.end
        if p.payload_size() > self.max_segment_bytes:
            raise IngestTooLarge(f"pending audio exceeds {self.max_segment_bytes} bytes")
        self._cut_audio(t, now)

    def _has_video(self) -> bool:
        return any(t.kind is Kind.VIDEO for s in self._streams.values() for t in s.tracks.values())

    def _cut_audio(self, t: TrackState, now: float, *, final: bool = False) -> None:
        """Close the audio segments whose grid interval the samples have reached."""
        if t.key != self._audio:
            return
        p = t.pending
        if not self._has_video():
            self._cut_audio_alone(t, now, final=final)
            return
        last = t.segments[-1].number if t.segments else None
        for iv in list(self._grid.intervals):
            if last is not None and iv.number <= last:
                continue
            if not len(p):
                return
            if last is None and not t.segments:
                # Before the first interval: keep at most half a segment of lead-in.
                lead = p.first_at(from_url(iv.time - self._d // 2, t.ts) - t.track.pts_shift)
                if lead:
                    p.take(lead, t.track)
                    if not len(p):
                        return
            reached = to_url(p.end + t.track.pts_shift, t.ts) >= iv.end - TOLERANCE
            if not reached and not final:
                return
            stop = p.first_at(from_url(iv.end, t.ts) - t.track.pts_shift)
            if stop == 0:
                continue
            track, payload = p.take(stop, t.track)
            self._append(t, iv, track, payload, now)
            last = iv.number

    def _cut_audio_alone(self, t: TrackState, now: float, *, final: bool) -> None:
        """Audio-only channel: the audio defines the grid, cut at multiples of the duration."""
        p = t.pending
        while len(p):
            start = to_url(p.dts[0] + t.track.pts_shift, t.ts)
            cut = ((start + TOLERANCE) // self._d + 1) * self._d
            stop = p.first_at(from_url(cut, t.ts) - t.track.pts_shift)
            if stop >= len(p) and not final:
                return
            stop = min(stop, len(p))
            end = to_url(p.dts[stop - 1] + p.duration[stop - 1] + t.track.pts_shift, t.ts)
            iv = self._interval(t, start, end, now)
            track, payload = p.take(stop, t.track)
            if iv is not None:
                self._append(t, iv, track, payload, now)

    # --- segments and publication ------------------------------------------------------------

    def _append(
        self, t: TrackState, iv: Interval, track: Track, payload: bytes, now: float
    ) -> None:
        if t.segments and iv.number <= t.segments[-1].number:
            return
        if t.edit is None:
            t.edit = fmp4.edit_of(track)
            t.fps = frame_rate(track) if t.kind is Kind.VIDEO else Fraction(0)
        n = len(track.samples)
        if t.kind is Kind.VIDEO:
            time, duration = iv.time, iv.end - iv.time
            ts_size = mpegts.segment_size_bound((track, 0, n), None, video_delay=t.edit.raise_by)
        else:
            time = to_url(track.samples.dts[0] + t.edit.lead, t.ts)
            duration = to_url(track.samples.total_duration(), t.ts)
            ts_size = mpegts.segment_size_bound(None, (track, 0, n))
        if duration <= 0:
            return
        assert self._anchor is not None
        seg = LiveSegment(
            number=iv.number,
            time=time,
            duration=duration,
            track=track,
            payload=payload,
            wallclock=datetime.fromtimestamp(self._anchor, UTC) + timedelta(microseconds=time / 10),
            discontinuity=iv.discontinuity,
            epoch=iv.epoch,
            ts_size=ts_size,
            cmaf_size=fmp4.media_segment_size(track, 0, n),
        )
        t.break_next = False
        if not t.rid:
            t.rid = self._rendition_id(t, seg)
        t.segments.append(seg)
        self._slide()
        self._publish(now)

    def _rendition_id(self, t: TrackState, seg: LiveSegment) -> int:
        """The URL id: kept for the channel's life; the declared bitrate, else the first
        segment's, made unique among the channel's renditions."""
        if t.key in self._rids:
            return self._rids[t.key]
        bitrate = t.template.bitrate or round(len(seg.payload) * 8 * URL_SECOND / seg.duration)
        taken = set(self._rids.values())
        rid = max(bitrate, 1)
        while rid in taken:
            rid += 1
        self._rids[t.key] = rid
        return rid

    def _slide(self) -> None:
        """Drop what ended more than a window before the newest interval's end."""
        self._grid.slide()
        first = self._grid.first_number
        if first is None:
            return
        for stream in self._streams.values():
            for t in stream.tracks.values():
                while t.segments and t.segments[0].number < first:
                    t.segments.popleft()

    def _connected(self, stream: StreamState, now: float) -> bool:
        """Whether a stream is being ingested: a POST is open, or (DASH-IF ingest posts each
        segment on its own) one ended lately, within three segments, and not with an end."""
        if stream.connections > 0:
            return True
        if stream.ended:
            return False
        last = max((t.last_wall or 0.0 for t in stream.tracks.values()), default=0.0)
        return now - last <= 3 * float(self.segment_duration)

    def _publish(self, now: float) -> None:
        tracks = [t for s in self._streams.values() for t in s.tracks.values() if t.segments]
        if not tracks or self._anchor is None:
            return
        renditions: list[tuple[TrackState, LiveRendition]] = []
        for t in tracks:
            assert t.edit is not None
            stream = self._streams[t.key[0]]
            renditions.append(
                (
                    t,
                    LiveRendition(
                        id=t.rid,
                        track=t.track,
                        edit=t.edit,
                        segments=tuple(t.segments),
                        fps=t.fps,
                        connected=self._connected(stream, now),
                    ),
                )
            )
        video = tuple(
            sorted((r for t, r in renditions if t.kind is Kind.VIDEO), key=lambda r: r.id)
        )
        audio = next((r for t, r in renditions if t.key == self._audio), None)
        self._version += 1
        self.view = ChannelView(
            name=self.name,
            version=self._version,
            video=video,
            audio=audio,
            target=self._grid.target,
            segment_duration=self.segment_duration,
            window=self.window,
            availability_start=datetime.fromtimestamp(self._anchor, UTC),
            ended=self._ended,
        )

    # --- status -------------------------------------------------------------------------------

    def status(self, now: float) -> ChannelStatus:
        state = "idle" if self.view is None else ("ended" if self._ended else "live")
        return channel_status(self.name, state, self._streams, self._grid, self._media_now(now))
