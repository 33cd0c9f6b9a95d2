"""MP4 boxes built by hand for parser tests, and edits of real files (stco→co64, stz2…)."""

from __future__ import annotations

import json
import struct
import subprocess
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate
from pathlib import Path
from typing import Any

from origin.core.index import SampleIndex
from origin.core.mp4.defs import TFXD_UUID
from tests.support.media import FFPROBE

# --------------------------------------------------------------------------- box building


def u8(v: int) -> bytes:
    return struct.pack(">B", v)


def u16(v: int) -> bytes:
    return struct.pack(">H", v)


def u24(v: int) -> bytes:
    return v.to_bytes(3, "big")


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def u64(v: int) -> bytes:
    return struct.pack(">Q", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def box(kind: str, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return u32(8 + len(payload)) + kind.encode("latin-1") + payload


def full(kind: str, version: int, flags: int, *parts: bytes) -> bytes:
    return box(kind, u32(version << 24 | flags), *parts)


def bits(*groups: str) -> bytes:
    """Bit strings → bytes, zero-padded to a whole byte (for AudioSpecificConfigs)."""
    s = "".join(groups).replace(" ", "")
    s += "0" * (-len(s) % 8)
    return int(s, 2).to_bytes(len(s) // 8, "big")


SPS = bytes.fromhex("6764001f")
PPS = bytes.fromhex("68ee")
AVCC = bytes.fromhex("0164001fff") + u8(0xE1) + u16(len(SPS)) + SPS + u8(1) + u16(len(PPS)) + PPS
ASC_LC_48K = bytes.fromhex("1190")
FTYP = box("ftyp", b"isom", u32(512), b"isomavc1")


def avc1(width: int = 64, height: int = 48, *extra: bytes, fourcc: str = "avc1") -> bytes:
    return box(
        fourcc, bytes(6), u16(1), bytes(16), u16(width), u16(height), u32(0x480000),
        u32(0x480000), u32(0), u16(1), bytes(32), u16(24), u16(0xFFFF), box("avcC", AVCC), *extra,
    )  # fmt: skip


def descriptor(tag: int, payload: bytes, long: bool = True) -> bytes:
    """An MPEG-4 descriptor; ``long`` uses the padded 4-byte size form ffmpeg writes."""
    n = len(payload)
    size = bytes([0x80 | (n >> 21) & 0x7F, 0x80 | (n >> 14) & 0x7F, 0x80 | (n >> 7) & 0x7F,
                  n & 0x7F]) if long else bytes([n])  # fmt: skip
    return u8(tag) + size + payload


def esds(
    asc: bytes, *, long: bool = True, oti: int = 0x40, es_flags: int = 0, es_extra: bytes = b""
) -> bytes:
    config = u8(oti) + u8(0x15) + u24(0) + u32(128_000) + u32(96_000)
    es = u16(1) + u8(es_flags) + es_extra
    es += descriptor(4, config + descriptor(5, asc, long), long) + descriptor(6, u8(2), long)
    return full("esds", 0, 0, descriptor(3, es, long))


def mp4a(asc: bytes = ASC_LC_48K, channels: int = 2, rate: int = 48000, **kw: Any) -> bytes:
    return box(
        "mp4a", bytes(6), u16(1), bytes(8), u16(channels), u16(16), u16(0), u16(0),
        u32(rate << 16), esds(asc, **kw),
    )  # fmt: skip


def elst(*edits: tuple[int, int], version: int = 0) -> bytes:
    """Edits as (segment_duration, media_time)."""
    body = b"".join(
        (u64(d) + i64(t) if version else u32(d) + i32(t)) + u32(0x10000) for d, t in edits
    )
    return box("edts", full("elst", version, 0, u32(len(edits)), body))


def stts(*runs: tuple[int, int]) -> bytes:
    return full("stts", 0, 0, u32(len(runs)), *(u32(c) + u32(d) for c, d in runs))


def ctts(*runs: tuple[int, int], version: int = 0) -> bytes:
    # v0 deliberately packs negatives as two's complement, as sloppy muxers do.
    return full("ctts", version, 0, u32(len(runs)), *(u32(c) + i32(o) for c, o in runs))


def stss(*numbers: int) -> bytes:
    return full("stss", 0, 0, u32(len(numbers)), *map(u32, numbers))


def stsz(sizes: list[int], uniform: int = 0) -> bytes:
    entries = b"" if uniform else struct.pack(f">{len(sizes)}I", *sizes)
    return full("stsz", 0, 0, u32(uniform), u32(len(sizes)), entries)


def stz2(sizes: list[int], field: int) -> bytes:
    if field == 4:
        padded = [*sizes, 0] if len(sizes) % 2 else sizes
        entries = bytes(a << 4 | b for a, b in zip(padded[0::2], padded[1::2], strict=True))
    else:
        entries = struct.pack(f">{len(sizes)}{'B' if field == 8 else 'H'}", *sizes)
    return full("stz2", 0, 0, bytes(3), u8(field), u32(len(sizes)), entries)


def stsc(*entries: tuple[int, int, int]) -> bytes:
    return full("stsc", 0, 0, u32(len(entries)), *(u32(a) + u32(b) + u32(c) for a, b, c in entries))


def stco(offsets: list[int], wide: bool = False) -> bytes:
    pack = struct.pack(f">{len(offsets)}{'Q' if wide else 'I'}", *offsets)
    return full("co64" if wide else "stco", 0, 0, u32(len(offsets)), pack)


def trak(
    entry: bytes,
    *tables: bytes,
    track_id: int = 1,
    handler: str = "vide",
    timescale: int = 1000,
    language: int = 0x55C4,  # 'und'
    edts: bytes = b"",
    version: int = 0,
) -> bytes:
    matrix = u32(0x10000) + bytes(12) + u32(0x10000) + bytes(12) + u32(0x40000000)
    if version:
        tkhd = full("tkhd", 1, 3, u64(0), u64(0), u32(track_id), u32(0), u64(0))
        mdhd = full("mdhd", 1, 0, u64(0), u64(0), u32(timescale), u64(0))
    else:
        tkhd = full("tkhd", 0, 3, u32(0), u32(0), u32(track_id), u32(0), u32(0))
        mdhd = full("mdhd", 0, 0, u32(0), u32(0), u32(timescale), u32(0))
    tkhd += bytes(8) + bytes(8) + matrix + u32(64 << 16) + u32(48 << 16)
    tkhd = u32(len(tkhd)) + tkhd[4:]
    mdhd = box("mdhd", mdhd[8:], u16(language), u16(0))
    hdlr = full("hdlr", 0, 0, u32(0), handler.encode(), bytes(12), b"h\0")
    stbl = box("stbl", full("stsd", 0, 0, u32(1), entry), *tables)
    return box("trak", tkhd, edts, box("mdia", mdhd, hdlr, box("minf", stbl)))


def movie_file(*traks: bytes, mdat: bytes, timescale: int = 1000, extra: bytes = b"") -> bytes:
    """ftyp, mdat (payload at DATA_START), then moov: offsets are known before moov is built."""
    mvhd = full("mvhd", 0, 0, u32(0), u32(0), u32(timescale), u32(0), bytes(80))
    return FTYP + box("mdat", mdat) + box("moov", mvhd, *traks, extra)


DATA_START = len(FTYP) + 8


def simple_video(
    sizes: list[int] | None = None,
    *,
    per_chunk: int = 2,
    entry: bytes | None = None,
    extra_tables: tuple[bytes, ...] = (),
    **trak_kw: Any,
) -> bytes:
    """A valid one-track file: contiguous chunks of ``per_chunk`` samples, duration 100 each."""
    sizes = sizes or [10, 20, 30, 40, 50, 60]
    firsts = list(range(0, len(sizes), per_chunk))
    starts = [DATA_START, *accumulate(sizes, initial=DATA_START)][1:]
    tables = (
        stts((len(sizes), 100)), stsz(sizes), stsc((1, per_chunk, 1)),
        stco([starts[f] for f in firsts]), *extra_tables,
    )  # fmt: skip
    return movie_file(trak(entry or avc1(), *tables, **trak_kw), mdat=bytes(sum(sizes)))


# --------------------------------------------------------------------------- real-file helpers

CONTAINERS = frozenset({"moov", "trak", "mdia", "minf", "stbl", "edts", "dinf"})


def top_level(data: bytes) -> Iterator[tuple[str, int, int]]:
    """(type, offset, size) of each top-level box: a walker independent of the parser."""
    pos = 0
    while pos < len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        elif size == 0:
            size = len(data) - pos
        yield kind.decode("latin-1"), pos, size
        pos += size


def _rebuild(data: bytes, start: int, end: int, fn: Callable[[str, bytes], bytes | None]) -> bytes:
    out = []
    pos = start
    while pos < end:
        size, raw = struct.unpack_from(">I4s", data, pos)
        kind = raw.decode("latin-1")
        whole = data[pos : pos + size]
        if kind in CONTAINERS:
            whole = box(kind, _rebuild(data, pos + 8, pos + size, fn))
        new = fn(kind, whole)
        out.append(whole if new is None else new)
        pos += size
    return b"".join(out)


def rewrite_moov(data: bytes, fn: Callable[[str, bytes], bytes | None]) -> bytes:
    """Replace boxes inside a trailing moov; sample data does not move, so offsets stay valid."""
    kind, at, size = list(top_level(data))[-1]
    assert kind == "moov" and at + size == len(data), "needs a moov-at-end file"
    return data[:at] + box("moov", _rebuild(data, at + 8, len(data), fn))


def to_co64(bias: int) -> Callable[[str, bytes], bytes | None]:
    def fn(kind: str, whole: bytes) -> bytes | None:
        if kind != "stco":
            return None
        count = struct.unpack_from(">I", whole, 12)[0]
        offsets = struct.unpack_from(f">{count}I", whole, 16)
        return stco([o + bias for o in offsets], wide=True)

    return fn


def to_stz2(kind: str, whole: bytes) -> bytes | None:
    if kind != "stsz":
        return None
    uniform, count = struct.unpack_from(">II", whole, 12)
    sizes = [uniform] * count if uniform else list(struct.unpack_from(f">{count}I", whole, 20))
    assert max(sizes) < 1 << 16
    return stz2(sizes, 16)


def ffprobe(path: Path, *args: str) -> Any:
    out = subprocess.run(
        [FFPROBE, "-v", "error", *args, "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(out)


def hexdump_bytes(text: str) -> bytes:
    """ffprobe's ``extradata`` hexdump ("00000000: 0164 000d ...  ascii") → bytes."""
    return bytes.fromhex("".join(line[10:49] for line in text.strip().splitlines()))


class Sparse:
    """A virtual file of written spans; reading anything else fails the test."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.parts: list[tuple[int, bytes]] = []
        self.reads: list[tuple[int, int]] = []

    def put(self, offset: int, data: bytes) -> None:
        self.parts.append((offset, data))

    def read(self, offset: int, size: int) -> bytes:
        self.reads.append((offset, size))
        end, pos, out = min(offset + size, self.size), offset, bytearray()
        while pos < end:
            for start, part in self.parts:
                if start <= pos < start + len(part):
                    chunk = part[pos - start : end - start]
                    out += chunk
                    pos += len(chunk)
                    break
            else:
                raise AssertionError(f"read of bytes never written, at offset {pos}")
        return bytes(out)


# --------------------------------------------------------------------------- fragments

NON_SYNC = 0x01010000
SYNC = 0x02000000


def trex(track_id: int, duration: int, size: int = 0, flags: int = 0) -> bytes:
    return full("trex", 0, 0, u32(track_id), u32(1), u32(duration), u32(size), u32(flags))


def empty_tables() -> tuple[bytes, ...]:
    return stts(), stsz([]), stsc(), stco([])


def init(*extra_traks: bytes, trexes: Sequence[bytes] = (), edts: bytes = b"") -> bytes:
    """ftyp + moov: video track 1 (timescale 1000), audio track 2 (48000), empty tables."""
    mvhd = full("mvhd", 0, 0, u32(0), u32(0), u32(1000), u32(0), bytes(80))
    video = trak(avc1(), *empty_tables(), track_id=1, edts=edts)
    audio = trak(mp4a(), *empty_tables(), track_id=2, handler="soun", timescale=48000)
    trexes = trexes or (trex(1, 100, 0, NON_SYNC), trex(2, 1024, 0, SYNC))
    return FTYP + box("moov", mvhd, video, audio, *extra_traks, box("mvex", *trexes))


def tfhd(track_id: int, flags: int = 0, *fields: bytes) -> bytes:
    return full("tfhd", 0, flags, u32(track_id), *fields)


def trun(
    flags: int, samples: Sequence[Sequence[int]], *, data_offset: int | None = None,
    first_flags: int | None = None, version: int = 0,
) -> bytes:  # fmt: skip
    head = u32(len(samples))
    if data_offset is not None:
        flags |= 0x1
        head += i32(data_offset)
    if first_flags is not None:
        flags |= 0x4
        head += u32(first_flags)
    body = b"".join(struct.pack(f">{len(s)}I", *(v & 0xFFFFFFFF for v in s)) for s in samples)
    return full("trun", version, flags, head, body)


def tfdt(t: int) -> bytes:
    return full("tfdt", 1, 0, u64(t))


def tfxd(t: int, duration: int = 0) -> bytes:
    return box("uuid", TFXD_UUID, u32(1 << 24), u64(t), u64(duration))


def fragment(make_trafs: Callable[[int], Sequence[bytes]], payload: bytes, seq: int = 1) -> bytes:
    """moof + mdat; ``make_trafs(d)`` gets d = the moof's size + 8 (the payload's moof offset)."""
    size = len(box("moof", full("mfhd", 0, 0, u32(seq)), *make_trafs(0)))
    moof = box("moof", full("mfhd", 0, 0, u32(seq)), *make_trafs(size + 8))
    assert len(moof) == size
    return moof + box("mdat", payload)


SIZE, DURATION, FLAGS, CTO = 0x200, 0x100, 0x400, 0x800


def payload(*sizes: int) -> bytes:
    """Distinct bytes per sample, so offsets can be checked by content."""
    return b"".join(bytes([i + 1]) * n for i, n in enumerate(sizes))


def sample_bytes(data: bytes, s: SampleIndex) -> list[bytes]:
    return [data[o : o + n] for o, n in zip(s.offset, s.size, strict=True)]
