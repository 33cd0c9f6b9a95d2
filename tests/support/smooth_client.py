"""What a Smooth Streaming client does with a manifest: build its own init segment.

Smooth has no init segment; the client writes a moov from the QualityLevel alone, as dash.js does
(src/mss/MssFragmentMoovProcessor.js): timescale = the stream's TimeScale, track_ID = the
StreamIndex's position + 1, an avcC made from the SPS/PPS in CodecPrivateData (profile,
compatibility and level from the first SPS, 4-byte NAL lengths) or an esds wrapping the
AudioSpecificConfig in CodecPrivateData. Appending Smooth fragments to it gives a file ffmpeg
decodes: if that decodes cleanly, a client can play the fragments from the manifest.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass

_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)


def _box(kind: bytes, *parts: bytes) -> bytes:
    return struct.pack(">I4s", 8 + sum(map(len, parts)), kind) + b"".join(parts)


def _full(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version << 24 | flags), *parts)


@dataclass(frozen=True)
class Level:
    """One QualityLevel as a client reads it."""

    stream_type: str
    track_id: int
    timescale: int
    bitrate: int
    fourcc: str
    codec_private_data: str
    width: int = 0
    height: int = 0
    sampling_rate: int = 0
    channels: int = 0
    url: str = ""
    language: str = "und"

    def fragment_url(self, time: int) -> str:
        return self.url.replace("{bitrate}", str(self.bitrate)).replace("{start time}", str(time))


def read_levels(manifest: str) -> list[Level]:
    root = ET.fromstring(manifest)
    assert root.tag == "SmoothStreamingMedia"
    timescale = int(root.get("TimeScale", "10000000"))
    out = []
    for position, stream in enumerate(root.findall("StreamIndex")):
        kind = stream.attrib["Type"]
        for q in stream.findall("QualityLevel"):
            out.append(
                Level(
                    stream_type=kind,
                    track_id=position + 1,
                    timescale=int(stream.get("TimeScale", timescale)),
                    bitrate=int(q.attrib["Bitrate"]),
                    fourcc=q.attrib["FourCC"],
                    codec_private_data=q.attrib["CodecPrivateData"],
                    width=int(q.get("MaxWidth", "0")),
                    height=int(q.get("MaxHeight", "0")),
                    sampling_rate=int(q.get("SamplingRate", "0")),
                    channels=int(q.get("Channels", "0")),
                    url=stream.attrib["Url"],
                    language=stream.get("Language") or "und",
                )
            )
    return out


def read_chunks(manifest: str, stream_type: str) -> list[tuple[int, int]]:
    """(t, d) of every fragment of a stream, expanding ``r`` as dash.js does (a count)."""
    root = ET.fromstring(manifest)
    return expand_chunks(
        next(s for s in root.findall("StreamIndex") if s.get("Type") == stream_type)
    )


def expand_chunks(stream: ET.Element) -> list[tuple[int, int]]:
    """(t, d) per fragment of a StreamIndex, reading ``r`` as the number of fragments (dash.js,
    ExoPlayer); a ``c`` without ``t`` starts where the previous one ends."""
    out: list[tuple[int, int]] = []
    for c in stream.findall("c"):
        d = int(c.attrib["d"])
        t = int(c.attrib["t"]) if "t" in c.attrib else (out[-1][0] + out[-1][1] if out else 0)
        for k in range(int(c.get("r", "1"))):
            out.append((t + k * d, d))
    return out


def avcc_from_codec_private_data(cpd: str) -> bytes:
    """The avcC payload dash.js builds: SPS and PPS split at start codes, lengthSize 4."""
    nals = [bytes.fromhex(h) for h in cpd.split("00000001")[1:]]
    sps = [n for n in nals if n[0] & 0x1F == 7]
    pps = [n for n in nals if n[0] & 0x1F == 8]
    assert sps and pps, "CodecPrivateData must carry an SPS and a PPS"
    out = bytes([1, sps[0][1], sps[0][2], sps[0][3], 0xFF, 0xE0 | len(sps)])
    out += b"".join(struct.pack(">H", len(n)) + n for n in sps)
    out += bytes([len(pps)]) + b"".join(struct.pack(">H", len(n)) + n for n in pps)
    return out


def _descriptor(tag: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes([tag, len(body)]) + body


def esds_from_codec_private_data(cpd: str, track_id: int) -> bytes:
    """The esds box dash.js builds around the AudioSpecificConfig."""
    asc = bytes.fromhex(cpd)
    dsi = _descriptor(0x05, asc)
    # objectTypeIndication 0x40 (MPEG-4 audio), streamType 5 (audio) | reserved 1, buffer/bitrates 0
    dcd = _descriptor(0x04, bytes([0x40, 0x15]) + bytes(3) + bytes(8) + dsi)
    sl = _descriptor(0x06, b"\x02")
    es = _descriptor(0x03, struct.pack(">HB", track_id, 0) + dcd + sl)
    return _full(b"esds", 0, 0, es)


def _sample_entry(level: Level) -> bytes:
    if level.stream_type == "video":
        assert level.fourcc in ("H264", "AVC1")
        return _box(
            b"avc1",
            bytes(6) + struct.pack(">H", 1),  # reserved, data_reference_index
            bytes(16),  # pre_defined, reserved
            struct.pack(">HH", level.width, level.height),
            struct.pack(">II", 0x00480000, 0x00480000),  # 72 dpi
            bytes(4) + struct.pack(">H", 1),  # reserved, frame_count
            bytes(32),  # compressorname
            struct.pack(">Hh", 0x18, -1),  # depth, pre_defined
            _box(b"avcC", avcc_from_codec_private_data(level.codec_private_data)),
        )
    assert level.fourcc.startswith("AAC")
    return _box(
        b"mp4a",
        bytes(6) + struct.pack(">H", 1),
        bytes(8),
        struct.pack(">HH", level.channels, 16),
        bytes(4),
        struct.pack(">I", level.sampling_rate << 16),
        esds_from_codec_private_data(level.codec_private_data, level.track_id),
    )


def _language(code: str) -> int:
    if len(code) != 3 or not code.isalpha() or not code.islower():
        code = "und"
    return sum((ord(ch) - 0x60) << shift for ch, shift in zip(code, (10, 5, 0), strict=True))


def client_init(level: Level) -> bytes:
    """ftyp + moov as a Smooth client makes it for one QualityLevel."""
    tid, ts = level.track_id, level.timescale
    video = level.stream_type == "video"
    mvhd = _full(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, ts, 0),
        struct.pack(">IH10x", 0x00010000, 0x0100),
        _MATRIX,
        bytes(24),
        struct.pack(">I", tid + 1),
    )
    tkhd = _full(
        b"tkhd",
        0,
        7,
        struct.pack(">IIIII", 0, 0, tid, 0, 0),
        struct.pack(">8xhhH2x", 0, 0, 0 if video else 0x0100),
        _MATRIX,
        struct.pack(">II", level.width << 16, level.height << 16),
    )
    mdhd = _full(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, ts, 0, _language(level.language), 0))
    handler = b"vide" if video else b"soun"
    hdlr = _full(b"hdlr", 0, 0, bytes(4), handler, bytes(12), b"\x00")
    media_header = _full(b"vmhd", 0, 1, bytes(8)) if video else _full(b"smhd", 0, 0, bytes(4))
    dinf = _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1), _full(b"url ", 0, 1)))
    stbl = _box(
        b"stbl",
        _full(b"stsd", 0, 0, struct.pack(">I", 1), _sample_entry(level)),
        _full(b"stts", 0, 0, bytes(4)),
        _full(b"stsc", 0, 0, bytes(4)),
        _full(b"stsz", 0, 0, bytes(8)),
        _full(b"stco", 0, 0, bytes(4)),
    )
    trak = _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, _box(b"minf", media_header, dinf, stbl)))
    trex = _full(b"trex", 0, 0, struct.pack(">IIIII", tid, 1, 0, 0, 0))
    ftyp = _box(b"ftyp", b"iso6", bytes(4), b"isom", b"iso6", b"msdh")
    return ftyp + _box(b"moov", mvhd, trak, _box(b"mvex", trex))
