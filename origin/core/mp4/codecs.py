"""Codec configuration records: ``avcC`` (ISO/IEC 14496-15) and ``esds`` with its
AudioSpecificConfig (ISO/IEC 14496-1 §7.2.6, 14496-3 §1.6.2), parsed, and rendered as the
Smooth Streaming ``CodecPrivateData``/``FourCC`` a client builds its decoder from."""

from __future__ import annotations

from typing import NamedTuple

from origin.core.errors import MediaError
from origin.core.mp4.bits import Bits
from origin.core.track import AacConfig, AvcConfig

# samplingFrequencyIndex → Hz (14496-3 Table 1.18); 13 and 14 are reserved, 15 = explicit.
SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000,
                7350)  # fmt: skip

AOT_SBR = 5
AOT_PS = 29
# Core object types we can carry: the ones ADTS can signal (Main, LC, SSR, LTP).
AAC_CORE_TYPES = frozenset({1, 2, 3, 4})
# General Audio object types whose ASC continues with a GASpecificConfig (14496-3 §1.6.2.1).
_GA_TYPES = frozenset({1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23})

_ES_DESCR = 0x03
_DECODER_CONFIG = 0x04
_DEC_SPECIFIC = 0x05
_OTI_MPEG4_AUDIO = 0x40
_START_CODE = "00000001"  # Smooth CodecPrivateData: Annex B parameter sets


def parse_avcc(record: bytes) -> AvcConfig:
    """An AVCDecoderConfigurationRecord (the ``avcC`` payload, without box header)."""
    if len(record) < 7:
        raise MediaError("avcC is truncated")
    if record[0] != 1:
        raise MediaError(f"avcC has unknown configurationVersion {record[0]}")
    nal_length_size = (record[4] & 0x03) + 1
    if nal_length_size == 3:
        raise MediaError("avcC declares a 3-byte NAL length, which H.264 in MP4 forbids")
    pos = 5
    sets: list[tuple[bytes, ...]] = []
    for count_mask in (0x1F, 0xFF):  # SPS count is 5 bits, PPS count a full byte
        if pos >= len(record):
            raise MediaError("avcC is truncated")
        count = record[pos] & count_mask
        pos += 1
        items = []
        for _ in range(count):
            if pos + 2 > len(record):
                raise MediaError("avcC is truncated")
            n = int.from_bytes(record[pos : pos + 2], "big")
            if pos + 2 + n > len(record):
                raise MediaError("avcC is truncated")
            items.append(bytes(record[pos + 2 : pos + 2 + n]))
            pos += 2 + n
        sets.append(tuple(items))
    sps, pps = sets
    if not sps or not pps:
        raise MediaError("avcC carries no SPS or no PPS")
    return AvcConfig(
        profile=record[1],
        compatibility=record[2],
        level=record[3],
        nal_length_size=nal_length_size,
        sps=sps,
        pps=pps,
        record=bytes(record),
    )


class _Bits(Bits):
    """The reader with AudioSpecificConfig's two composite fields."""

    __slots__ = ()

    def object_type(self) -> int:
        aot = self.read(5)
        return 32 + self.read(6) if aot == 31 else aot

    def rate(self) -> tuple[int, int]:
        """(samplingFrequencyIndex, Hz)."""
        index = self.read(4)
        if index == 15:
            return index, self.read(24)
        if index >= len(SAMPLE_RATES):
            raise MediaError(f"AudioSpecificConfig uses reserved sampling index {index}")
        return index, SAMPLE_RATES[index]


class AudioSpecificConfig(NamedTuple):
    object_type: int  # as signalled: 5/29 when SBR/PS is present, else the core type
    core_type: int  # the AAC core under SBR/PS (what ADTS carries)
    sampling_index: int  # of the core
    core_rate: int  # Hz, of the core
    output_rate: int  # Hz after SBR (== core_rate without SBR)
    channel_config: int
    sbr: bool
    ps: bool


def parse_asc(asc: bytes) -> AudioSpecificConfig:
    """Decode the fields of an AudioSpecificConfig a packager needs.

    Handles the escape object type (31), the explicit 24-bit rate (index 15), explicit
    hierarchical SBR/PS signalling (AOT 5/29 first) and backward-compatible signalling (core
    type first, then sync extensions 0x2B7/0x548 after the GASpecificConfig). A
    GASpecificConfig with a program_config_element (channel_config 0) is not walked, so
    backward-compatible SBR after one goes unnoticed.
    """
    bits = _Bits(asc, "AudioSpecificConfig")
    aot = bits.object_type()
    index, rate = bits.rate()
    channels = bits.read(4)
    core, out_rate, sbr, ps = aot, rate, False, False
    if aot in (AOT_SBR, AOT_PS):
        sbr, ps = True, aot == AOT_PS
        _, out_rate = bits.rate()
        core = bits.object_type()
        if core == 22:  # ER BSAC carries an extension channel configuration
            bits.read(4)
    elif aot in _GA_TYPES and channels != 0:
        sbr, ps, out_rate = _sync_extensions(bits, aot, rate)
    if sbr:
        aot = AOT_PS if ps else AOT_SBR
    return AudioSpecificConfig(aot, core, index, rate, out_rate, channels, sbr, ps)


def _sync_extensions(bits: _Bits, aot: int, rate: int) -> tuple[bool, bool, int]:
    """Skip the GASpecificConfig and read backward-compatible SBR/PS signalling, if any."""
    bits.read(1)  # frameLengthFlag
    if bits.read(1):  # dependsOnCoreCoder
        bits.read(14)
    extension = bits.read(1)
    if aot in (6, 20):
        bits.read(3)  # layerNr
    if extension:
        if aot == 22:
            bits.read(16)  # numOfSubFrame, layer_length
        if aot in (17, 19, 20, 23):
            bits.read(3)  # resilience flags
        bits.read(1)  # extensionFlag3
    if 17 <= aot <= 27:
        bits.read(2)  # epConfig
    sbr = ps = False
    out_rate = rate
    if bits.left >= 16 and bits.read(11) == 0x2B7 and bits.read(5) == AOT_SBR:
        sbr = bool(bits.read(1))
        if sbr:
            _, out_rate = bits.rate()
            if bits.left >= 12 and bits.read(11) == 0x548:
                ps = bool(bits.read(1))
    return sbr, ps, out_rate


class _Descriptors:
    """Walks MPEG-4 descriptors (tag, expandable size, payload)."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def need(self, n: int) -> int:
        pos = self.pos
        if pos + n > len(self.data):
            raise MediaError("esds is truncated")
        self.pos = pos + n
        return pos

    def u8(self) -> int:
        return self.data[self.need(1)]

    def uint(self, n: int) -> int:
        pos = self.need(n)
        return int.from_bytes(self.data[pos : pos + n], "big")

    def header(self, tag: int) -> int:
        """Read a descriptor header that must carry ``tag``; return where its payload ends."""
        got = self.u8()
        if got != tag:
            raise MediaError(f"esds: expected descriptor tag {tag:#x}, found {got:#x}")
        size = 0
        for _ in range(4):  # sizeOfInstance: 7 bits per byte, high bit = more follow
            b = self.u8()
            size = (size << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        end = self.pos + size
        if end > len(self.data):
            raise MediaError("esds is truncated")
        return end


def parse_esds(payload: bytes) -> AacConfig:
    """The ``esds`` payload (FullBox version/flags first) → :class:`AacConfig`.

    Rejects non-AAC streams (objectTypeIndication other than 0x40, e.g. MP3) and AAC object
    types a packager cannot carry to ADTS.
    """
    d = _Descriptors(payload, 4)
    es_end = d.header(_ES_DESCR)
    d.uint(2)  # ES_ID
    flags = d.u8()
    if flags & 0x80:  # streamDependenceFlag
        d.uint(2)
    if flags & 0x40:  # URL_Flag
        d.need(d.u8())
    if flags & 0x20:  # OCRstreamFlag
        d.uint(2)
    config_end = d.header(_DECODER_CONFIG)
    oti = d.u8()
    if oti != _OTI_MPEG4_AUDIO:
        raise MediaError(f"unsupported mp4a object type indication {oti:#04x} (not AAC)")
    d.u8()  # streamType, upStream, reserved
    d.uint(3)  # bufferSizeDB
    max_bitrate = d.uint(4)
    avg_bitrate = d.uint(4)
    if d.pos >= min(config_end, es_end):
        raise MediaError("esds has no AudioSpecificConfig")
    asc_end = d.header(_DEC_SPECIFIC)
    asc = bytes(payload[d.pos : asc_end])
    info = parse_asc(asc)
    if info.core_type not in AAC_CORE_TYPES:
        raise MediaError(f"unsupported AAC object type {info.core_type}")
    return AacConfig(
        object_type=info.object_type,
        sample_rate=info.core_rate,
        sampling_index=info.sampling_index,
        channel_config=info.channel_config,
        asc=asc,
        avg_bitrate=avg_bitrate,
        max_bitrate=max_bitrate,
    )


def output_rate(config: AacConfig) -> int:
    """The decoder output rate (doubled by SBR) of a config built by :func:`parse_esds`."""
    return parse_asc(config.asc).output_rate


# --------------------------------------------------------------------------- Smooth codec data


def avc_codec_private_data(config: AvcConfig) -> str:
    """Every SPS then every PPS, each behind a 4-byte start code, as uppercase hex."""
    return "".join(_START_CODE + nal.hex().upper() for nal in (*config.sps, *config.pps))


def aac_codec_private_data(config: AacConfig) -> str:
    """The AudioSpecificConfig verbatim, as uppercase hex."""
    return config.asc.hex().upper()


def aac_fourcc(config: AacConfig) -> str:
    """``AACH`` for HE-AAC (explicit SBR/PS object type), else ``AACL``."""
    return "AACH" if config.object_type in (AOT_SBR, AOT_PS) else "AACL"
