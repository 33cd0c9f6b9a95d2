"""What live ingest hands the channel index, and what the index publishes.

Ingest (:mod:`origin.core.live.ingest`, or the looped-VOD feeder) produces :class:`StreamTrack`
announcements (from a stream's ``moov``) and :class:`Chunk` s (one ``traf`` of samples with their
payload). The index (:mod:`origin.core.live.channel`) cuts them into :class:`LiveSegment` s on a
channel-wide grid and publishes an immutable :class:`ChannelView` after every change; manifests
and segments are built from a view only (:mod:`origin.core.live.packaging`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from origin.core.index import SampleIndex
from origin.core.mux import fmp4
from origin.core.presentation import Bandwidth
from origin.core.track import Kind, Track


@dataclass(frozen=True, slots=True)
class StreamTrack:
    """A track an ingest stream announces in its ``moov``: codec, timescale, ``stsd``.

    ``track.samples`` is empty (a live ``moov`` has no samples). ``bitrate`` is what the encoder
    declares (``btrt``, ``esds``, the ISML manifest box), 0 when it says nothing.
    """

    track: Track
    bitrate: int = 0


@dataclass(frozen=True, slots=True)
class Chunk:
    """Samples of one track from one ``moof`` + ``mdat``, as the encoder timed them.

    ``samples.dts`` are the encoder's decode times in the track timescale (``tfdt``, or Smooth's
    ``tfxd``; they may be negative for audio priming); ``samples.offset`` are offsets into
    ``payload``, which holds exactly the samples' bytes.
    """

    track_id: int
    samples: SampleIndex
    payload: bytes

    @property
    def start(self) -> int:
        return self.samples.dts[0]

    @property
    def end(self) -> int:
        s = self.samples
        return s.dts[-1] + s.duration[-1]


@dataclass(frozen=True, slots=True)
class LiveSegment:
    """One published segment of one rendition. It never changes once published.

    ``number`` is the channel-wide media sequence number of the grid interval the segment fills
    (the same for every rendition at that time, so the sequence-number IV is too). ``time`` and
    ``duration`` are in URL_TIMESCALE (100 ns) units, channel time: fragment URLs, DASH ``S@t``
    and Smooth ``c@t``. ``track`` carries this segment's samples only, in channel time, with
    offsets into ``payload``. ``epoch`` counts the discontinuities up to and including this
    segment; ``discontinuity`` marks a timeline break just before it.
    """

    number: int
    time: int
    duration: int
    track: Track
    payload: bytes
    wallclock: datetime  # the program date time of its first sample (UTC)
    discontinuity: bool = False
    epoch: int = 0
    ts_size: int = 0  # an upper bound of its MPEG-TS size alone (BANDWIDTH)
    cmaf_size: int = 0  # its exact CMAF segment size

    @property
    def seconds(self) -> Fraction:
        return Fraction(self.duration, 10_000_000)

    @property
    def end(self) -> int:
        return self.time + self.duration


@dataclass(frozen=True, slots=True)
class LiveRendition:
    """One served live track: its URL id (a bitrate), codec template and its window of segments.

    ``track`` is the codec template (``samples`` empty); ``edit`` is fixed for the channel's life
    (the init segment's edit list must not change under a playing client).
    """

    id: int
    track: Track
    edit: fmp4.Edit
    segments: tuple[LiveSegment, ...]  # the window, in time order; never empty
    fps: Fraction = Fraction(0)
    connected: bool = True  # its stream is being ingested now

    @property
    def kind(self) -> Kind:
        return self.track.kind

    def bandwidth(self, *, ts: bool) -> Bandwidth:
        """Peak and average bit/s over the window (+16 bytes per segment for AES-128 padding)."""
        peak = total = 0
        for s in self.segments:
            size = (s.ts_size if ts else s.cmaf_size) + 16
            total += size
            peak = max(peak, -(-size * 8 * 10_000_000 // max(s.duration, 1)))
        span = self.segments[-1].end - self.segments[0].time
        return Bandwidth(peak, -(-total * 8 * 10_000_000 // max(span, 1)))


@dataclass(frozen=True, slots=True)
class ChannelView:
    """An immutable snapshot of a channel's window, published after every change.

    ``version`` grows with every publication (manifest caches key on it). ``target`` is the HLS
    TARGETDURATION in whole seconds, fixed for the channel. ``availability_start`` is the
    wall-clock time of channel time 0 (DASH ``availabilityStartTime``; PDT = it + time).
    ``ended``: every encoder stopped cleanly (or the channel was stopped): ENDLIST / MPD duration.
    """

    name: str
    version: int
    video: tuple[LiveRendition, ...]  # ascending id
    audio: LiveRendition | None
    target: int
    segment_duration: Fraction
    window: Fraction
    availability_start: datetime
    ended: bool = False

    def renditions(self) -> tuple[LiveRendition, ...]:
        return self.video + ((self.audio,) if self.audio else ())

    def rendition(self, kind: str, rid: int) -> LiveRendition | None:
        for r in self.renditions():
            if r.kind.value == kind and r.id == rid:
                return r
        return None
