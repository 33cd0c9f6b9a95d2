"""ADTS framing of raw AAC access units (ISO/IEC 13818-7 §6.2, ISO/IEC 14496-3 §1.A.2).

MP4 stores AAC access units bare, with the decoder configuration once in the AudioSpecificConfig.
MPEG-TS carries no such side channel (stream_type 0x0F is "ADTS AAC"), so every access unit gets a
7-byte header (protection_absent = 1, no CRC) repeating profile, rate and channel layout.
"""

from __future__ import annotations

from functools import lru_cache

from origin.core.errors import MediaError
from origin.core.mp4.codecs import AAC_CORE_TYPES, AOT_PS, AOT_SBR, SAMPLE_RATES
from origin.core.track import AacConfig

ADTS_HEADER_SIZE = 7
MAX_FRAME_LENGTH = (1 << 13) - 1  # aac_frame_length is 13 bits and includes the header

# An explicit rate this far from every standard one would play at an audibly wrong speed if we
# signalled the nearest index, so it is refused instead.
_EXPLICIT_RATE_TOLERANCE = 0.02

# AOTs whose raw frames an ADTS decoder handles: the 2-bit ADTS profile is audioObjectType - 1.
# SBR and PS ride on an AAC-LC core (profile 1); ADTS signals the core and decoders find the
# extension implicitly in the payload.
_ADTS_PROFILE = {aot: aot - 1 for aot in AAC_CORE_TYPES} | {AOT_SBR: 1, AOT_PS: 1}


def sampling_index(config: AacConfig) -> int:
    """The ADTS samplingFrequencyIndex of the AAC core of ``config``."""
    if config.sample_rate in SAMPLE_RATES:
        return SAMPLE_RATES.index(config.sample_rate)
    if config.sampling_index < len(SAMPLE_RATES):
        return config.sampling_index
    rate = config.sample_rate
    if rate <= 0:
        raise MediaError("AAC sampling rate unknown")
    best = min(range(len(SAMPLE_RATES)), key=lambda i: abs(SAMPLE_RATES[i] - rate))
    if abs(SAMPLE_RATES[best] - rate) > rate * _EXPLICIT_RATE_TOLERANCE:
        raise MediaError(f"AAC sampling rate {rate} Hz cannot be signalled in ADTS")
    return best


def header_prefix(config: AacConfig) -> bytes:
    """The constant part of a track's headers: sync word, profile, rate, channels (4 bytes)."""
    profile = _ADTS_PROFILE.get(config.object_type)
    if profile is None:
        raise MediaError(f"AAC object type {config.object_type} cannot be carried in ADTS")
    channels = config.channel_config
    if not 1 <= channels <= 7:
        # 0 means "layout in a program_config_element of the ASC", which raw frames lack.
        raise MediaError(f"AAC channel configuration {channels} cannot be carried in ADTS")
    # syncword 0xFFF, ID 0 (MPEG-4), layer 0, protection_absent 1 -> 0xFFF1; the 4th byte holds
    # the low channel bits, the frame length is OR-ed into it per frame.
    b2 = profile << 6 | sampling_index(config) << 2 | channels >> 2
    return bytes((0xFF, 0xF1, b2, (channels & 3) << 6))


@lru_cache(maxsize=8192)  # per AAC frame of every cold TS segment: a few hundred sizes per track
def header(prefix: bytes, payload_size: int) -> bytes:
    """The 7-byte ADTS header for one access unit of ``payload_size`` bytes.

    ``prefix`` is :func:`header_prefix`'s result.
    Buffer fullness is 0x7FF (variable rate), one raw data block per frame.
    """
    length = payload_size + ADTS_HEADER_SIZE
    if length > MAX_FRAME_LENGTH:
        raise MediaError(f"AAC access unit of {payload_size} bytes is too large for ADTS")
    return prefix[:3] + bytes(
        (
            prefix[3] | length >> 11,
            (length >> 3) & 0xFF,
            (length & 7) << 5 | 0x1F,
            0xFC,
        )
    )
