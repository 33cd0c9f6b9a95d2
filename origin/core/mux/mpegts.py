"""MPEG-TS media segments for HLS (ISO/IEC 13818-1, RFC 8216 §3.2).

One call builds one segment from the samples of at most one video (H.264) and one audio (AAC)
track, with no state carried between calls: every segment of a rendition must be buildable alone,
in any order, on any worker process.

Layout: PAT (PID 0) and PMT (PID 0x1000, program 1) open every segment, then the PES packets of
both tracks interleaved in decode order. Video is PID 0x100 (stream_type 0x1B, one PES per access
unit, Annex B with our own AUD and, on keyframes, SPS/PPS); audio is PID 0x101 (stream_type 0x0F,
ADTS, a few frames per PES). The PCR rides on the video PID when there is video, else on audio.

Continuity counters, the stateless way. Players (ffmpeg's HLS demuxer among them) feed consecutive
segments into one TS demuxer, so the 4-bit continuity_counter of every PID must run on across
segment boundaries or the packets are flagged corrupt. A segment cannot know how many packets its
predecessors wrote, so the count is made not to matter:

- PAT and PMT are written once per segment with CC = ``sequence % 16``, so they advance by one from
  segment to segment.
- Each elementary PID starts every segment at CC 0 and ends it at CC 15: the segment's packet count
  on that PID is rounded up to a multiple of 16 by spreading the last PES packets of the PID over
  extra TS packets (adaptation-field stuffing lets a packet carry as little as one payload byte).
  That costs at most 15 packets (2820 bytes) per PID per segment.
- In the degenerate case where a PID has too few payload bytes to fill 16 packets, its counter
  starts where it must to still end at 15 and the first packet sets discontinuity_indicator, so the
  jump into the segment is declared rather than corrupt and the next segment continues cleanly.

Packets that carry no payload (PCR-only) repeat the PID's previous counter, as the standard wants.

Writing the packets (headers, adaptation fields, PSI) is :mod:`origin.core.mux.ts_packets`'s;
this module plans the PES units and how many packets each spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from origin.core.errors import MediaError
from origin.core.mux import adts
from origin.core.mux.run import Run
from origin.core.mux.ts_packets import (
    _AF_FLAGS,
    _AF_PCR,
    _PAYLOAD,
    AUDIO_PID,
    PMT_PID,
    TS_PACKET_SIZE,
    VIDEO_PID,
    _pes_header,
    _psi,
    crc32_mpeg2,
    packetize,
)
from origin.core.track import AacConfig, AvcConfig, Track

__all__ = [  # the packet layer's names players of this module use, with its own
    "AUDIO_FRAMES_PER_PES",
    "AUDIO_PID",
    "PCR_INTERVAL",
    "PMT_PID",
    "PTS_OFFSET",
    "TS_PACKET_SIZE",
    "VIDEO_PID",
    "SampleSpan",
    "Span",
    "crc32_mpeg2",
    "mux_segment",
    "segment_size_bound",
    "to_90k",
]

# Edit lists make the first timestamps negative (the B-frame reorder delay puts the first DTS
# before 0, AAC priming the first audio PTS), but TS timestamps are unsigned 33-bit numbers and
# players mishandle values just below the wrap. A constant offset keeps every timestamp positive
# and is the same for every segment built alone. 10 s covers any sane edit list shift.
PTS_OFFSET = 900_000


# AAC frames per PES: fewer PES headers, as Apple's segmenter does, while keeping a PES short
# enough that audio starts promptly after a seek.
AUDIO_FRAMES_PER_PES = 5
# ISO/IEC 13818-1 §2.7.2: a PCR at least every 100 ms (90 kHz ticks).
PCR_INTERVAL = 9000

_MASK33 = (1 << 33) - 1
_START_CODE = b"\x00\x00\x00\x01"
_AUD = b"\x00\x00\x00\x01\x09\xf0"  # access unit delimiter, primary_pic_type 7 (any slice type)
_NAL_TYPE_AUD = 9
_MAX_PES_PACKET_LENGTH = 0xFFFF
_PES_HEADER_PTS = 14  # start code + id + length + flags(2) + header_data_length + PTS(5)
_PES_HEADER_PTS_DTS = 19


def to_90k(t: int, timescale: int) -> int:
    """``t`` ticks of ``timescale`` in 90 kHz ticks, rounded half up with exact integers.

    The same rounding for every timescale keeps the conversion monotonic across tracks, so the
    order of two timestamps never flips when they are converted. (_video_units inlines it.)
    """
    return (180_000 * t + timescale) // (2 * timescale)


class Span(Protocol):
    """Samples ``start:stop`` of ``track``, without payloads (a :class:`Run` is one)."""

    @property
    def track(self) -> Track: ...

    @property
    def start(self) -> int: ...

    @property
    def stop(self) -> int: ...


class SampleSpan(NamedTuple):
    track: Track
    start: int
    stop: int


class _Unit:
    """One PES packet (or, with ``size == 0``, one PCR-only TS packet) in the segment plan."""

    __slots__ = ("data", "di", "dts", "header_size", "packets", "pcr", "pid", "rai", "size", "t90")

    def __init__(
        self,
        pid: int,
        *,
        dts: int,
        t90: int,
        data: bytes,
        size: int,
        header_size: int,
        pcr: int | None,
        rai: bool,
    ) -> None:
        self.pid = pid
        self.dts = dts  # decode time in the track timescale, for interleaving
        self.t90 = t90  # decode time in 90 kHz with PTS_OFFSET, for PCR-only packets
        self.data = data  # the PES bytes; empty when only planning sizes
        self.size = size
        self.header_size = header_size
        self.pcr = pcr
        self.rai = rai
        self.di = False
        self.packets = 0

    def first_capacity(self) -> int:
        if self.pcr is not None:
            return _PAYLOAD - _AF_PCR
        if self.rai or self.di:
            return _PAYLOAD - _AF_FLAGS
        return _PAYLOAD

    def min_packets(self) -> int:
        rest = self.size - self.first_capacity()
        return 1 if rest <= 0 else 1 + -(-rest // _PAYLOAD)

    def max_packets(self) -> int:
        # The PES header stays whole in the first packet; every other packet carries >= 1 byte.
        return 1 + self.size - self.header_size


def mux_segment(
    video: Run | None, audio: Run | None, *, sequence: int, video_delay: int = 0
) -> bytes:
    """One MPEG-TS media segment holding the samples of ``video`` and/or ``audio``.

    ``sequence`` is the segment's media sequence number; it only sets the PAT/PMT counters so
    that consecutive segments form one continuous transport stream. ``video_delay`` (video track
    ticks, constant for the track: its ``fmp4.Edit.raise_by``) moves every video DTS that much
    earlier, so that a source whose composition offsets go negative (CMAF's trun v1, B-frames
    presented before the keyframe's decode time) still has DTS <= PTS and DTS increasing.
    """
    units = _plan(
        video, audio, video.data if video else None, audio.data if audio else None, video_delay
    )
    return packetize(units, _psi(video is not None, audio is not None, sequence % 16))


def segment_size_bound(
    video: Span | tuple[Track, int, int] | None,
    audio: Span | tuple[Track, int, int] | None,
    *,
    video_delay: int = 0,
) -> int:
    """An upper bound of ``len(mux_segment(...))`` from the sample index alone, no payloads.

    Everything but the H.264 Annex B conversion is computed exactly (PES headers, SPS/PPS on
    keyframes, ADTS headers, audio grouping, PCR-only packets, continuity padding). The number of
    NAL units per sample is unknown, so each sample is bounded by the worst case: with 4-byte
    length prefixes (what x264/ffmpeg write) the size is exact unless samples carry AUD NAL units
    (dropped, 6 bytes each); with 1- or 2-byte prefixes every NAL is assumed as small as possible,
    each growing by 3 or 2 bytes, which overestimates a lot.
    """
    if isinstance(video, tuple):
        video = SampleSpan(*video)
    if isinstance(audio, tuple):
        audio = SampleSpan(*audio)
    units = _plan(video, audio, None, None, video_delay)
    return TS_PACKET_SIZE * (2 + sum(u.packets if u.size else 1 for u in units))


# --- planning -------------------------------------------------------------------------------


def _plan(
    video: Span | None,
    audio: Span | None,
    vdata: Sequence[bytes | memoryview] | None,
    adata: Sequence[bytes | memoryview] | None,
    video_delay: int = 0,
) -> list[_Unit]:
    if video is None and audio is None:
        raise ValueError("a segment needs a video or an audio run")
    vunits = _video_units(video, vdata, video_delay) if video is not None else []
    aunits = _audio_units(audio, adata, pcr=video is None) if audio is not None else []
    units = _interleave(vunits, video, aunits, audio)
    units = _add_pcr_packets(units, VIDEO_PID if video is not None else AUDIO_PID)
    for pid in (VIDEO_PID, AUDIO_PID):
        _pad_to_16(units, pid)
    return units


def _video_units(
    span: Span, data: Sequence[bytes | memoryview] | None, delay: int = 0
) -> list[_Unit]:
    track = span.track
    cfg = track.codec
    if not isinstance(cfg, AvcConfig):
        raise MediaError(f"track {track.track_id}: MPEG-TS video must be H.264")
    nls = cfg.nal_length_size
    if nls not in (1, 2, 4):
        raise MediaError(f"track {track.track_id}: invalid NAL length size {nls}")
    params = b"".join(_START_CODE + p for p in (*cfg.sps, *cfg.pps))
    s = track.samples
    ts = track.timescale
    shift = track.pts_shift
    sync = s.sync_flags
    units: list[_Unit] = []
    # to_90k inlined (a call per timestamp is a visible share of a cold segment's time).
    twice = 2 * ts
    for k, i in enumerate(range(span.start, span.stop)):
        pts90 = (180_000 * (s.dts[i] + shift + s.cto[i]) + ts) // twice + PTS_OFFSET
        dts = s.dts[i] + shift - delay
        dts90 = min((180_000 * dts + ts) // twice + PTS_OFFSET, pts90)
        key = sync[i] == 1
        header_size = _PES_HEADER_PTS if pts90 == dts90 else _PES_HEADER_PTS_DTS
        if data is None:
            size = s.size[i]
            if nls != 4:
                size += (4 - nls) * (size // (nls + 1))
            pes = b""
            size += header_size + len(_AUD) + (len(params) if key else 0)
        else:
            header = _pes_header(0xE0, pts90, dts90, 0)
            parts: list[bytes | bytearray | memoryview] = [header, _AUD]
            if key:
                parts.append(params)
            _annexb(data[k], nls, parts)
            pes = b"".join(parts)
            size = len(pes)
        units.append(
            _Unit(
                VIDEO_PID,
                dts=dts,
                t90=dts90,
                data=pes,
                size=size,
                header_size=header_size,
                pcr=dts90,
                rai=key,
            )
        )
    return units


def _annexb(
    sample: bytes | memoryview, nls: int, parts: list[bytes | bytearray | memoryview]
) -> None:
    """Append the NAL units of a length-prefixed sample to ``parts`` with start codes.

    A sample whose NAL lengths do not add up (damaged payload, which loading cannot see without
    reading all the media) is passed on as it is: a stray tail is dropped and a NAL that overruns
    is cut at the sample's end. The decoder conceals the damage, as it would from the source;
    failing the whole segment would fail a request of a loaded asset.
    """
    mv = memoryview(sample)
    end = len(mv)
    p = 0
    while p < end:
        q = p + nls
        if q >= end:
            break
        n = int.from_bytes(mv[p:q], "big")
        p = min(q + n, end)
        # Empty NAL units are dropped (nothing to decode); AUDs too, ours is already first.
        if n and mv[q] & 0x1F != _NAL_TYPE_AUD:
            parts.append(_START_CODE)
            parts.append(mv[q:p])


def _audio_units(
    span: Span, data: Sequence[bytes | memoryview] | None, *, pcr: bool
) -> list[_Unit]:
    track = span.track
    cfg = track.codec
    if not isinstance(cfg, AacConfig):
        raise MediaError(f"track {track.track_id}: MPEG-TS audio must be AAC")
    prefix = adts.header_prefix(cfg)
    s = track.samples
    ts = track.timescale
    shift = track.pts_shift
    units: list[_Unit] = []
    i, stop = span.start, span.stop
    while i < stop:
        first = i
        dts = s.dts[i] + shift
        payload = 0
        while i < stop and i - first < AUDIO_FRAMES_PER_PES:
            frame = (s.size[i] if data is None else len(data[i - span.start])) + 7
            if i > first:
                if _PES_HEADER_PTS - 6 + payload + frame > _MAX_PES_PACKET_LENGTH:
                    break
                # As the PCR carrier, the next PES (and its PCR) must start within 100 ms.
                if pcr and (s.dts[i] + s.duration[i] + shift - dts) * 10 > ts:
                    break
            payload += frame
            i += 1
        pts90 = to_90k(dts + s.cto[first], ts) + PTS_OFFSET
        dts90 = to_90k(dts, ts) + PTS_OFFSET
        if data is None:
            pes = b""
        else:
            header = _pes_header(0xC0, pts90, pts90, _PES_HEADER_PTS - 6 + payload)
            parts: list[bytes | bytearray | memoryview] = [header]
            for k in range(first - span.start, i - span.start):
                frame_data = data[k]
                parts.append(adts.header(prefix, len(frame_data)))
                parts.append(frame_data)
            pes = b"".join(parts)
        size = _PES_HEADER_PTS + payload
        units.append(
            _Unit(
                AUDIO_PID,
                dts=dts,
                t90=dts90,
                data=pes,
                size=size,
                header_size=_PES_HEADER_PTS,
                pcr=dts90 if pcr else None,
                rai=pcr,
            )
        )
    return units


def _interleave(
    vunits: list[_Unit], video: Span | None, aunits: list[_Unit], audio: Span | None
) -> list[_Unit]:
    """Merge both tracks' PES by decode time, compared exactly across timescales."""
    if video is None or not vunits:
        return aunits
    if audio is None or not aunits:
        return vunits
    vts = video.track.timescale
    ats = audio.track.timescale
    out: list[_Unit] = []
    vi = ai = 0
    while vi < len(vunits) and ai < len(aunits):
        if aunits[ai].dts * vts < vunits[vi].dts * ats:
            out.append(aunits[ai])
            ai += 1
        else:
            out.append(vunits[vi])
            vi += 1
    out += vunits[vi:]
    out += aunits[ai:]
    return out


def _add_pcr_packets(units: list[_Unit], pcr_pid: int) -> list[_Unit]:
    """Insert PCR-only packets where the PCR PID falls silent for longer than PCR_INTERVAL."""
    out: list[_Unit] = []
    last: int | None = None
    for u in units:
        if u.pid == pcr_pid:
            if u.pcr is not None:
                # Never let the PCR step back (possible only when a DTS had to be clamped).
                if last is not None and u.pcr < last:
                    u.pcr = last
                last = u.pcr
        elif last is None or u.t90 - last > PCR_INTERVAL:
            last = u.t90 if last is None else max(u.t90, last)
            out.append(
                _Unit(
                    pcr_pid,
                    dts=u.dts,
                    t90=last,
                    data=b"",
                    size=0,
                    header_size=0,
                    pcr=last,
                    rai=False,
                )
            )
        out.append(u)
    return out


def _pad_to_16(units: list[_Unit], pid: int) -> None:
    """Choose each PES's packet count so the PID's count in the segment is a multiple of 16."""
    pes = [u for u in units if u.pid == pid and u.size]
    for u in pes:
        u.packets = u.min_packets()
    need = -sum(u.packets for u in pes) % 16
    for u in reversed(pes):
        if not need:
            return
        add = min(need, u.max_packets() - u.packets)
        u.packets += add
        need -= add
    if need:
        # Too few bytes: declare the counter jump at the start instead (see module docstring).
        first = next(u for u in units if u.pid == pid)
        first.di = True
        if first.size:
            first.packets = max(first.packets, first.min_packets())
