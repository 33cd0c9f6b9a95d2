"""What a loaded source track is: codec configuration, timing and its sample index."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from origin.core.index import SampleIndex


class Kind(StrEnum):
    VIDEO = "video"
    AUDIO = "audio"


@dataclass(frozen=True, slots=True)
class AvcConfig:
    """H.264 decoder configuration, from the ``avcC`` box (ISO/IEC 14496-15 §5.3.3)."""

    profile: int  # AVCProfileIndication
    compatibility: int  # profile_compatibility
    level: int  # AVCLevelIndication
    nal_length_size: int  # lengthSizeMinusOne + 1
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]
    record: bytes  # the avcC payload, verbatim

    @property
    def codec_string(self) -> str:
        """RFC 6381 ``avc1.PPCCLL``."""
        return f"avc1.{self.profile:02x}{self.compatibility:02x}{self.level:02x}"


@dataclass(frozen=True, slots=True)
class AacConfig:
    """AAC configuration, from the AudioSpecificConfig inside ``esds`` (ISO/IEC 14496-3)."""

    object_type: int  # audioObjectType (2 = AAC-LC, 5 = SBR, 29 = PS)
    sample_rate: int  # of the AAC core (what ADTS signals)
    sampling_index: int  # samplingFrequencyIndex (15 = explicit rate)
    channel_config: int  # channelConfiguration
    asc: bytes  # AudioSpecificConfig, verbatim
    avg_bitrate: int  # from DecoderConfigDescriptor, 0 if unknown
    max_bitrate: int  # from DecoderConfigDescriptor, 0 if unknown

    @property
    def codec_string(self) -> str:
        """RFC 6381 ``mp4a.40.N``."""
        return f"mp4a.40.{self.object_type}"

    @property
    def channels(self) -> int:
        return {7: 8}.get(self.channel_config, self.channel_config)


@dataclass(frozen=True, slots=True)
class Track:
    track_id: int
    kind: Kind
    timescale: int  # media timescale (mdhd)
    language: str  # ISO 639-2/T from mdhd, "und" when unset
    codec: AvcConfig | AacConfig
    stsd: bytes  # the whole source ``stsd`` box, copied into fMP4 init segments
    pts_shift: int  # from the edit list: presentation time = dts + cto + pts_shift
    samples: SampleIndex
    width: int = 0  # video: display size from the sample entry
    height: int = 0
    par: tuple[int, int] = (1, 1)  # pixel aspect ratio (pasp), video only
    sample_rate: int = 0  # audio: output sample rate (mp4a sample entry / SBR)
    channels: int = 0

    @property
    def codec_string(self) -> str:
        return self.codec.codec_string

    def pts(self, i: int) -> int:
        """Presentation time of sample ``i`` in the track timescale (edit list applied)."""
        return self.samples.dts[i] + self.samples.cto[i] + self.pts_shift

    @property
    def duration(self) -> int:
        return self.samples.total_duration()

    @property
    def seconds(self) -> float:
        return self.duration / self.timescale

    def bitrate(self) -> int:
        """Average payload bitrate in bit/s."""
        if self.duration == 0:
            return 0
        return round(self.samples.total_size() * 8 * self.timescale / self.duration)


@dataclass(frozen=True, slots=True)
class Movie:
    """One parsed source file."""

    timescale: int  # mvhd
    tracks: tuple[Track, ...]
    fragmented: bool = False
    modified: float | None = None  # mvhd's modification time (Unix seconds), if the muxer set one

    def video(self) -> list[Track]:
        return [t for t in self.tracks if t.kind is Kind.VIDEO]

    def audio(self) -> list[Track]:
        return [t for t in self.tracks if t.kind is Kind.AUDIO]
