"""MPEG-TS packets (ISO/IEC 13818-1 §2.4): PES headers, packet headers, adaptation fields, PSI
sections, and a segment's packets written from its planned PES units
(:mod:`origin.core.mux.mpegts` plans what goes in which PES and how many packets each spans;
this module writes them).

Packetization is the hot loop and runs no Python code per full packet: every packet body is 184
bytes, so the bodies of the whole segment (adaptation fields and PES bytes in order) are joined
once and cut by ``Struct.unpack_from`` a chunk of packets at a time, headers come from precomputed
per-counter tables, and ``b"".join`` writes the segment. Python runs per PES (its first packet's
adaptation field, PCR) and per short packet (stuffing), never per full packet.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import cycle, islice
from operator import itemgetter
from struct import Struct
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from origin.core.mux.mpegts import _Unit

VIDEO_PID = 0x100
AUDIO_PID = 0x101
PMT_PID = 0x1000
PROGRAM_NUMBER = 1
STREAM_TYPE_H264 = 0x1B
STREAM_TYPE_ADTS_AAC = 0x0F

TS_PACKET_SIZE = 188
_PAYLOAD = 184
_MASK33 = (1 << 33) - 1
_AF_PCR = 8  # adaptation_field_length + flags + 6-byte PCR
_AF_FLAGS = 2  # adaptation_field_length + flags


def _pes_header(stream_id: int, pts: int, dts: int, packet_length: int) -> bytes:
    # Built as one integer: a PES per access unit makes this a per-sample cost of cold segments.
    head = 1 << 24 | stream_id << 16 | packet_length  # start code prefix, stream id, length
    if pts == dts:  # '10' PTS only, PES_header_data_length 5
        return (head << 64 | 0x848005 << 40 | _timestamp_bits(0x2, pts)).to_bytes(14)
    return (
        head << 104 | 0x84C00A << 80 | _timestamp_bits(0x3, pts) << 40 | _timestamp_bits(0x1, dts)
    ).to_bytes(19)


def _timestamp_bits(prefix: int, t: int) -> int:
    """A 33-bit PTS/DTS in its 40-bit field: 4-bit prefix, then 3 + 15 + 15 bits each followed
    by a marker bit (ISO/IEC 13818-1 §2.4.3.7)."""
    t &= _MASK33
    return (
        prefix << 36
        | (t >> 30) << 33
        | 1 << 32
        | (t >> 15 & 0x7FFF) << 17
        | 1 << 16
        | (t & 0x7FFF) << 1
        | 1
    )


def _pcr(base: int) -> bytes:
    b = base & _MASK33
    # 33-bit base, 6 reserved bits, 9-bit extension (0: the PCR sits on a 90 kHz tick).
    return bytes(
        (b >> 25 & 0xFF, b >> 17 & 0xFF, b >> 9 & 0xFF, b >> 1 & 0xFF, (b & 1) << 7 | 0x7E, 0)
    )


# Packets written per chunk: bodies are cut from the joined stream of all bodies this many at a
# time (one tuple per call) and joined with their headers.
_CUT = 128
_BODIES = Struct(f"{_PAYLOAD}s" * _CUT)
_BODY = Struct(f"{_PAYLOAD}s")
_FIRST = itemgetter(0)
_STUFFING = b"\xff" * _PAYLOAD
# adaptation_field_control, in place in the 4th header byte.
_AFC_PAYLOAD = 0x10
_AFC_ADAPTATION = 0x20
_AFC_BOTH = 0x30
# Payload-only headers of a run of full packets come from one slice of this many, counters cycling.
_RUN_HEADS = 16 * 256


@lru_cache(maxsize=32)
def _heads(pid: int, pusi: bool, afc: int) -> tuple[bytes, ...]:
    """The 4-byte packet headers of ``pid`` with these flags, indexed by continuity counter."""
    b1 = (0x40 if pusi else 0) | pid >> 8
    return tuple(bytes((0x47, b1, pid & 0xFF, afc | cc)) for cc in range(16))


@lru_cache(maxsize=8)
def _run_heads(pid: int) -> tuple[bytes, ...]:
    """Payload-only headers of ``pid`` for counters 0, 1, ... 15, 0, 1, ... (_RUN_HEADS of them)."""
    return _heads(pid, False, _AFC_PAYLOAD) * (_RUN_HEADS // 16)


def _adaptation(n: int, flags: int, pcr: int | None) -> bytes:
    """The adaptation field before an ``n``-byte payload, stuffed to fill the packet; b"" when
    the packet needs none (a full payload and no flags)."""
    if pcr is None:
        return _flag_field(n, flags)
    if n == _PAYLOAD - _AF_PCR:  # the usual first packet of a video PES: flags and PCR, no stuffing
        return ((_AF_PCR - 1) << 56 | flags << 48 | (pcr & _MASK33) << 15 | 0x7E00).to_bytes(8)
    af_len = _PAYLOAD - 1 - n
    af = bytes((af_len, flags)) + _pcr(pcr)
    if len(af) > af_len + 1:
        raise AssertionError("adaptation field overflows the packet")
    return af + _STUFFING[: af_len + 1 - len(af)]


@lru_cache(maxsize=1024)
def _flag_field(n: int, flags: int) -> bytes:
    """:func:`_adaptation` without a PCR: a few hundred distinct fields, built once each."""
    if n == _PAYLOAD and not flags:
        return b""
    af_len = _PAYLOAD - 1 - n
    if af_len == 0:
        return b"\x00"
    if af_len < 1:
        raise AssertionError("adaptation field overflows the packet")
    return bytes((af_len, flags)) + _STUFFING[: af_len - 1]


@lru_cache(maxsize=256)
def _stuffing_field(n: int) -> bytes:
    """The flagless adaptation field of a short packet carrying ``n`` payload bytes."""
    return _adaptation(n, 0, None)


def packetize(units: list[_Unit], psi: bytes) -> bytes:
    """The segment: ``psi`` then the packets of ``units``.

    Every packet body is exactly 184 bytes, so all of them are written as one stream (adaptation
    fields and PES bytes, in order) and cut once: Python runs per PES and per short packet, never
    per full packet. The bytes are those of writing each packet as header + adaptation + payload.
    """
    heads: list[bytes] = []
    parts: list[bytes | memoryview] = []  # joined: the packets' bodies, back to back
    cc = {pid: _start_cc(units, pid) for pid in (VIDEO_PID, AUDIO_PID)}
    for u in units:
        pid = u.pid
        if not u.size:  # a PCR-only packet repeats its PID's previous counter
            heads.append(_heads(pid, False, _AFC_ADAPTATION)[(cc[pid] - 1) & 15])
            flags = (0x80 if u.di else 0) | (0x10 if u.pcr is not None else 0)
            parts.append(_adaptation(0, flags, u.pcr))
        else:
            cc[pid] = _pes_packets(heads, parts, u, cc[pid])
    bodies = b"".join(parts)
    n = len(heads)
    if len(bodies) != n * _PAYLOAD:  # pragma: no cover - guards the split arithmetic
        raise AssertionError("packet bodies do not add up to whole packets")
    return b"".join(_interleave_packets(psi, heads, memoryview(bodies)))


def _interleave_packets(psi: bytes, heads: list[bytes], bodies: memoryview) -> list[bytes]:
    """``psi``, then each header followed by its 184-byte body, in chunks of _CUT packets.

    A chunk at a time: the bodies cut for one chunk are freed before the next is cut, so a big
    segment does not have the allocator map (and the kernel fault in) fresh memory for a
    hundred-byte object per packet, which cost more than the copying itself.
    """
    n = len(heads)
    out = [psi]
    row: list[bytes] = [b""] * (2 * _CUT)
    whole = n // _CUT * _CUT
    for i in range(0, whole, _CUT):
        row[::2] = heads[i : i + _CUT]
        row[1::2] = _BODIES.unpack_from(bodies, i * _PAYLOAD)
        out.append(b"".join(row))
    if whole < n:
        tail: list[bytes] = [b""] * (2 * (n - whole))
        tail[::2] = heads[whole:]
        tail[1::2] = map(_FIRST, _BODY.iter_unpack(bodies[whole * _PAYLOAD :]))
        out.append(b"".join(tail))
    return out


def _start_cc(units: list[_Unit], pid: int) -> int:
    total = sum(u.packets for u in units if u.pid == pid and u.size)
    return -total % 16


class _PidHeads(NamedTuple):
    """The header tables one PID's PES packets are written from."""

    first: tuple[bytes, ...]  # PUSI, payload only
    first_af: tuple[bytes, ...]  # PUSI, adaptation field and payload
    plain: tuple[bytes, ...]
    short: tuple[bytes, ...]  # adaptation field (stuffing) and payload
    run: tuple[bytes, ...]  # _run_heads


@lru_cache(maxsize=8)
def _pid_heads(pid: int) -> _PidHeads:
    return _PidHeads(
        _heads(pid, True, _AFC_PAYLOAD),
        _heads(pid, True, _AFC_BOTH),
        _heads(pid, False, _AFC_PAYLOAD),
        _heads(pid, False, _AFC_BOTH),
        _run_heads(pid),
    )


def _pes_packets(heads: list[bytes], parts: list[bytes | memoryview], u: _Unit, cc: int) -> int:
    """Add the headers and bodies of the ``u.packets`` TS packets of one PES; return the next
    continuity counter. (Run once per PES of every cold segment: written for few bytecodes.)"""
    data = u.data
    size = u.size
    left = u.packets - 1
    pcr = u.pcr
    table = _pid_heads(u.pid)
    # Greedy split: full packets first, then the short ones the counter padding asks for.
    if pcr is not None:
        pos = _PAYLOAD - _AF_PCR
        flags = 0x10 | (0x80 if u.di else 0) | (0x40 if u.rai else 0)
    elif u.rai or u.di:
        pos = _PAYLOAD - _AF_FLAGS
        flags = (0x80 if u.di else 0) | (0x40 if u.rai else 0)
    else:
        pos = _PAYLOAD
        flags = 0
    pos = min(pos, size - left)
    af = _adaptation(pos, flags, pcr)
    if af:
        heads.append(table.first_af[cc])
        parts.append(af)
    else:
        heads.append(table.first[cc])
    cc = (cc + 1) & 15
    spare = size - pos - left + 1  # bytes free to fill packets beyond one byte each
    full = 0 if spare < _PAYLOAD else min(left, (spare - _PAYLOAD) // (_PAYLOAD - 1) + 1)
    if full:
        run = table.run
        if cc + full <= len(run):
            heads += run[cc : cc + full]
        else:
            heads += islice(cycle(run[:16]), cc, cc + full)
        cc = (cc + full) & 15
        left -= full
    end = pos + full * _PAYLOAD
    if not left and end == size:  # no short packet after the full ones
        parts.append(data)
        return cc
    mv = memoryview(data)
    parts.append(mv[:end])
    pos = end
    while left:
        take = min(_PAYLOAD, size - pos - (left - 1))
        if take == _PAYLOAD:
            heads.append(table.plain[cc])
        else:
            heads.append(table.short[cc])
            parts.append(_stuffing_field(take))
        parts.append(mv[pos : pos + take])
        pos += take
        cc = (cc + 1) & 15
        left -= 1
    return cc


# --- PSI ------------------------------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) if c & 0x80000000 else c << 1
        table.append(c & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (poly 0x04C11DB7, init all ones, not reflected, no final xor)."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ b]
    return crc


def _section_packet(pid: int, cc: int, section: bytes) -> bytes:
    section += crc32_mpeg2(section).to_bytes(4, "big")
    head = bytes((0x47, 0x40 | pid >> 8, pid & 0xFF, 0x10 | cc, 0))  # PUSI, pointer_field 0
    return (head + section).ljust(TS_PACKET_SIZE, b"\xff")


@lru_cache(maxsize=64)
def _psi(has_video: bool, has_audio: bool, cc: int) -> bytes:
    """PAT + PMT packets for the given stream set, counters ``cc``."""
    pat = bytes((0x00, 0xB0, 13, 0, 1, 0xC1, 0, 0, 0, PROGRAM_NUMBER))
    pat += bytes((0xE0 | PMT_PID >> 8, PMT_PID & 0xFF))
    streams = b""
    if has_video:
        streams += bytes((STREAM_TYPE_H264, 0xE0 | VIDEO_PID >> 8, VIDEO_PID & 0xFF, 0xF0, 0))
    if has_audio:
        streams += bytes((STREAM_TYPE_ADTS_AAC, 0xE0 | AUDIO_PID >> 8, AUDIO_PID & 0xFF, 0xF0, 0))
    pcr_pid = VIDEO_PID if has_video else AUDIO_PID
    length = 9 + len(streams) + 4
    pmt = bytes((0x02, 0xB0 | length >> 8, length & 0xFF, 0, PROGRAM_NUMBER, 0xC1, 0, 0))
    pmt += bytes((0xE0 | pcr_pid >> 8, pcr_pid & 0xFF, 0xF0, 0)) + streams
    return _section_packet(0, cc, pat) + _section_packet(PMT_PID, cc, pmt)
