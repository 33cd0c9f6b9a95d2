"""A small MPEG-TS demuxer for tests: packets, PSI, PES, continuity and PCR, read back apart."""

from __future__ import annotations

from dataclasses import dataclass, field

from origin.core.mux.mpegts import (
    PMT_PID,
    PTS_OFFSET,
    to_90k,
)
from origin.core.track import AacConfig, Track

MASK33 = (1 << 33) - 1
SPS = bytes.fromhex("6764000dacd941419f9f011000000300100000030320f1429960")
PPS = bytes.fromhex("68efbcb0")
AAC_LC = AacConfig(2, 48000, 3, 2, b"\x11\x90", 0, 0)


# --- a small TS demuxer -----------------------------------------------------------------------


@dataclass
class Packet:
    pid: int
    pusi: bool
    cc: int
    has_payload: bool
    payload: bytes
    pcr: int | None = None
    rai: bool = False
    di: bool = False


@dataclass
class Pes:
    pid: int
    stream_id: int
    packet_length: int
    flags: int
    pts: int
    dts: int | None
    payload: bytes
    first: Packet
    packets: list[Packet] = field(default_factory=list)


def parse_packets(ts: bytes) -> list[Packet]:
    assert len(ts) % 188 == 0
    out = []
    for off in range(0, len(ts), 188):
        p = ts[off : off + 188]
        assert p[0] == 0x47
        assert p[1] & 0x80 == 0  # transport_error_indicator
        assert p[3] & 0xC0 == 0  # not scrambled
        afc = p[3] >> 4 & 3
        assert afc != 0
        pkt = Packet((p[1] & 0x1F) << 8 | p[2], bool(p[1] & 0x40), p[3] & 15, bool(afc & 1), b"")
        pos = 4
        if afc & 2:
            n = p[4]
            pos = 5 + n
            assert pos <= 188
            if afc == 2:
                assert n == 183
            if n:
                flags = p[5]
                pkt.di, pkt.rai = bool(flags & 0x80), bool(flags & 0x40)
                q = 6
                if flags & 0x10:
                    b = p[6:12]
                    base = int.from_bytes(b[:5], "big") >> 7
                    assert b[4] & 0x7E == 0x7E
                    assert (b[4] & 1) << 8 | b[5] == 0  # extension
                    pkt.pcr = base
                    q = 12
                assert flags & 0x0F == 0
                assert set(p[q:pos]) <= {0xFF}, "stuffing must be 0xFF"
        if afc & 1:
            pkt.payload = p[pos:]
            assert pkt.payload
        out.append(pkt)
    return out


def parse_ts_stamp(b: bytes, prefix: int) -> int:
    assert b[0] >> 4 == prefix
    assert b[0] & 1 and b[2] & 1 and b[4] & 1
    return (b[0] >> 1 & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def parse_pes_list(packets: list[Packet], pid: int) -> list[Pes]:
    groups: list[list[Packet]] = []
    for p in packets:
        if p.pid != pid or not p.has_payload:
            continue
        if p.pusi:
            groups.append([])
        assert groups, "payload before the first PUSI"
        groups[-1].append(p)
    out = []
    for g in groups:
        data = b"".join(p.payload for p in g)
        assert data[:3] == b"\x00\x00\x01"
        stream_id, length, f1, f2, hlen = data[3], int.from_bytes(data[4:6], "big"), *data[6:9]
        assert f1 & 0xC0 == 0x80
        assert len(g[0].payload) >= 9 + hlen, "PES header split across packets"
        if f2 & 0xC0 == 0xC0:
            assert hlen == 10
            pts = parse_ts_stamp(data[9:14], 3)
            dts: int | None = parse_ts_stamp(data[14:19], 1)
        else:
            assert f2 & 0xC0 == 0x80
            assert hlen == 5
            pts = parse_ts_stamp(data[9:14], 2)
            dts = None
        if length:
            assert length == len(data) - 6
        out.append(Pes(pid, stream_id, length, f1, pts, dts, data[9 + hlen :], g[0], g))
    return out


def pat_pmt(packets: list[Packet]) -> tuple[bytes, bytes]:
    pat, pmt = packets[0], packets[1]
    assert (pat.pid, pmt.pid) == (0, PMT_PID)
    assert pat.pusi and pmt.pusi

    def section(pkt: Packet) -> bytes:
        assert pkt.payload[0] == 0  # pointer_field
        length = (pkt.payload[2] & 0x0F) << 8 | pkt.payload[3]
        sec = pkt.payload[1 : 4 + length]
        assert set(pkt.payload[4 + length :]) <= {0xFF}
        assert crc32_reference(sec[:-4]) == int.from_bytes(sec[-4:], "big")
        return sec

    return section(pat), section(pmt)


def crc32_reference(data: bytes) -> int:
    """CRC-32/MPEG-2, bit by bit: independent of the table-driven implementation."""
    crc = 0xFFFFFFFF
    for byte in data:
        for i in range(7, -1, -1):
            bit = (byte >> i & 1) ^ (crc >> 31)
            crc = (crc << 1) & 0xFFFFFFFF
            if bit:
                crc ^= 0x04C11DB7
    return crc


def annexb_nals(data: bytes) -> list[bytes]:
    assert data.startswith(b"\x00\x00\x00\x01")
    return data[4:].split(b"\x00\x00\x00\x01")


def adts_frames(data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    p = 0
    while p < len(data):
        h = data[p : p + 7]
        assert h[0] == 0xFF and h[1] == 0xF1
        length = (h[3] & 3) << 11 | h[4] << 3 | h[5] >> 5
        assert (h[5] & 0x1F, h[6]) == (0x1F, 0xFC)
        out.append((h, data[p + 7 : p + length]))
        p += length
    assert p == len(data)
    return out


def check_continuity(packets: list[Packet]) -> None:
    """What ffmpeg's demuxer checks: +1 per payload packet, unchanged otherwise, DI excused."""
    last: dict[int, int] = {}
    for i, p in enumerate(packets):
        if p.pid in last and not p.di:
            expected = (last[p.pid] + 1) & 15 if p.has_payload else last[p.pid]
            assert p.cc == expected, f"packet {i} pid {p.pid:#x}: cc {p.cc} != {expected}"
        last[p.pid] = p.cc


def v90(track: Track, i: int) -> tuple[int, int]:
    """Expected (PTS, DTS) of video sample ``i`` in 90 kHz."""
    pts = to_90k(track.pts(i), track.timescale) + PTS_OFFSET
    dts = to_90k(track.samples.dts[i] + track.pts_shift, track.timescale) + PTS_OFFSET
    return pts, min(dts, pts)
