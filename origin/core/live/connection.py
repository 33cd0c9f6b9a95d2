"""One encoder connection (one POST) into a channel: its ``moov`` tracks, then its fragments,
each mapped to channel time by the offset chosen at its first fragment, then its end."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from origin.core.errors import IngestConflict, IngestError
from origin.core.live.buffer import from_url, to_url
from origin.core.live.grid import TOLERANCE
from origin.core.live.model import Chunk, StreamTrack
from origin.core.live.tracks import StreamState, TrackState
from origin.core.track import Kind

if TYPE_CHECKING:
    from origin.core.live.channel import Channel


class Connection:
    """One encoder connection: its ``moov`` tracks, then its fragments, then its end."""

    def __init__(self, channel: Channel, stream_id: str, stream: StreamState) -> None:
        self.channel = channel
        self.stream_id = stream_id
        self._stream = stream
        self._shift: dict[int, int] = {}  # per track id: channel ticks added to encoder times
        self._offset: int | None = None
        self._last: dict[int, int] = {}  # per track id: decode end of its previous chunk (raw)
        self._open = True

    def header(self, tracks: Sequence[StreamTrack]) -> None:
        """The stream's tracks (its ``moov``). A track that exists already must not change."""
        if not tracks:
            raise IngestError("the stream's moov has no H.264 or AAC track")
        ch = self.channel
        for st in tracks:
            tid = st.track.track_id
            known = self._stream.tracks.get(tid)
            if known is not None:
                if known.track.stsd != st.track.stsd or known.ts != st.track.timescale:
                    raise IngestConflict(
                        f"track {tid} changed codec or timescale ({known.track.codec_string} "
                        f"→ {st.track.codec_string}); stop the channel to change it"
                    )
                continue
            t = TrackState((self.stream_id, tid), st)
            self._stream.tracks[tid] = t
            if st.track.kind is Kind.AUDIO and ch._audio is None:
                ch._audio = t.key

    def chunk(self, chunk: Chunk, now: float) -> None:
        """Index one fragment of one track; segments it completes are published at once."""
        if not self._open:
            raise IngestError("the connection is closed")
        t = self._stream.tracks.get(chunk.track_id)
        if t is None or len(chunk.samples) == 0:
            return  # a track the moov did not announce, or one we do not serve
        s = chunk.samples
        previous = self._last.get(chunk.track_id)
        if previous is not None and chunk.start < previous - from_url(TOLERANCE, t.ts):
            raise IngestError(
                f"track {chunk.track_id}: timestamps go backwards ({chunk.start} after "
                f"{previous} in timescale {t.ts})"
            )
        self._last[chunk.track_id] = chunk.end
        ch = self.channel
        if self._offset is None:
            raw = to_url(s.dts[0] + s.cto[0] + t.track.pts_shift, t.ts)
            self._offset, broken = ch._choose_offset(
                t,
                raw,
                to_url(chunk.end - chunk.start, t.ts),
                now,
                concurrent=self._stream.connections > 1,
            )
            if broken:
                for other in self._stream.tracks.values():
                    other.break_next = True
        shift = self._shift.setdefault(chunk.track_id, from_url(self._offset, t.ts))
        t.last_wall = now
        if t.kind is Kind.VIDEO:
            ch._add_video(t, chunk, shift, now)
            audio = ch._audio
            if audio is not None:
                a = ch._streams[audio[0]].tracks[audio[1]]
                ch._cut_audio(a, now)
        elif t.key == ch._audio:
            ch._add_audio(t, chunk, shift, now)

    @property
    def closed(self) -> bool:
        return not self._open

    def close(self, now: float, *, clean: bool) -> None:
        """The POST ended: ``clean`` when the body ended properly (the encoder stopped)."""
        if self._open:
            self._open = False
            self.channel._closed(self._stream, now, clean)
