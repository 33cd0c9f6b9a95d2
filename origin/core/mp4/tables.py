"""``stbl`` sample tables (ISO/IEC 14496-12 §8.6-8.7) → a track's columnar :class:`SampleIndex`.

Tables are expanded into columns with C-level iteration (``array`` from bytes,
``itertools.repeat``/``accumulate``/``map``), never a Python loop per sample, but for the
offsets of chunks holding a sample or two each (interleaved audio), where a plain loop is
cheaper than the iterator objects per chunk.
"""

from __future__ import annotations

import sys
from array import array
from itertools import accumulate, chain, islice, repeat
from operator import add, lt, mul, sub

from origin.core.errors import MediaError
from origin.core.index import SampleIndex, identity, make_index
from origin.core.mp4.boxes import BoxHeader, Reader, child_map, require, span


def sample_index(buf: bytes, stbl: BoxHeader, file_size: int, track_id: int) -> SampleIndex:
    where = f"track {track_id}"
    boxes = child_map(buf, *span(stbl))

    if "stsz" in boxes:
        size = _stsz(buf, boxes["stsz"], file_size, where)
    elif "stz2" in boxes:
        size = _stz2(buf, boxes["stz2"], where)
    else:
        raise MediaError(f"{where} has no stsz or stz2")
    n = len(size)

    stts = require(boxes, "stts", where)
    duration = _runs(buf, stts, False, n, where)
    dts = _decode_times(buf, stts, duration)
    cto = _runs(buf, boxes["ctts"], True, n, where) if "ctts" in boxes else array("i", bytes(4 * n))
    keyframes = _stss(buf, boxes["stss"], n, where) if "stss" in boxes else array("I", identity(n))
    if "stco" in boxes:
        chunks = _chunk_offsets(buf, boxes["stco"], "I", 4)
    elif "co64" in boxes:
        chunks = _chunk_offsets(buf, boxes["co64"], "Q", 8)
    else:
        raise MediaError(f"{where} has no stco or co64")
    top = max(chunks, default=0)
    if top > file_size:  # before adding sizes to them (64-bit columns)
        raise MediaError(f"{where}: a chunk lies beyond the end of the file (truncated?)")
    offset, one_per_chunk = _offsets(buf, require(boxes, "stsc", where), chunks, size, where)
    # Two maxima (one C pass each) bound the ends; the exact pass only when they do not fit.
    # With a sample per chunk the offsets are the chunks: their maximum is known.
    last = top if one_per_chunk else max(offset, default=0)
    if n and last + max(size) > file_size and max(map(add, offset, size)) > file_size:
        raise MediaError(f"{where}: sample data lies beyond the end of the file (truncated?)")
    return make_index(
        dts=dts,
        duration=duration,
        cto=cto,
        size=size,
        offset=offset,
        keyframes=keyframes,
        contiguous=True,  # dts is the running sum of duration
    )


def _stsz(buf: bytes, box: BoxHeader, file_size: int, where: str) -> array[int]:
    r = Reader(buf, box)
    r.full()
    uniform, count = r.u32(), r.u32()
    if uniform:
        if uniform * count > file_size:  # check before allocating a bogus count
            raise MediaError(f"{where}: sample data lies beyond the end of the file (truncated?)")
        return array("I", [uniform]) * count
    return r.table("I", count, 4)


# stz2 4-bit fields: two per byte, high nibble first.
_HI_NIBBLE = bytes(b >> 4 for b in range(256))
_LO_NIBBLE = bytes(b & 0x0F for b in range(256))


def _stz2(buf: bytes, box: BoxHeader, where: str) -> array[int]:
    r = Reader(buf, box)
    r.full()
    r.skip(3)
    field, count = r.u8(), r.u32()
    if field == 16:
        return array("I", r.table("H", count, 2))
    if field == 8:
        return array("I", array("B", r.raw(count)))  # bytes alone would be read as a buffer
    if field == 4:
        packed = r.raw((count + 1) // 2)
        both = bytearray(2 * len(packed))
        both[0::2] = packed.translate(_HI_NIBBLE)
        both[1::2] = packed.translate(_LO_NIBBLE)
        return array("I", array("B", both[:count]))
    raise MediaError(f"{where}: stz2 field size {field} is invalid")


def _runs(buf: bytes, box: BoxHeader, signed: bool, n: int, where: str) -> array[int]:
    """Expand a (sample_count, value) run table (stts, ctts) to one value per sample."""
    r = Reader(buf, box)
    r.full()
    table = r.table("I", 2 * r.u32(), 4)
    counts, values = table[0::2], table[1::2]
    if signed:
        # ctts v0 is unsigned by the spec, but muxers write negative offsets into v0 as well
        # and the column is signed 32-bit: read both versions as signed, as ffmpeg does.
        values = array("i", values.tobytes())
    total = sum(counts)
    if total != n:
        raise MediaError(f"{where}: {box.type} describes {total} samples, the sample sizes {n}")
    if len(counts) == n and 0 not in counts:  # all runs of length 1, frequent in ctts
        return values
    return array(values.typecode, chain.from_iterable(map(repeat, values, counts)))


def _decode_times(buf: bytes, stts: BoxHeader, duration: array[int]) -> array[int]:
    """Each sample's decode time, the running sum of ``duration`` (stts expanded) from 0."""
    r = Reader(buf, stts)
    r.full()
    table = r.table("I", 2 * r.u32(), 4)
    if len(table) // 2 > len(duration) // 16:  # many short runs: sum the column
        dts = array("q", accumulate(duration, initial=0))
        dts.pop()
        return dts
    # A few runs of one duration each (the usual stts): arithmetic progressions, no sums.
    dts = array("q")
    t = 0
    for count, d in zip(table[0::2], table[1::2], strict=True):
        dts.extend(range(t, t + count * d, d) if d else array("q", [t]) * count)
        t += count * d
    return dts


def _stss(buf: bytes, box: BoxHeader, n: int, where: str) -> array[int]:
    r = Reader(buf, box)
    r.full()
    numbers = r.table("I", r.u32(), 4)
    if numbers and (
        numbers[0] < 1 or numbers[-1] > n or not all(map(lt, numbers, islice(numbers, 1, None)))
    ):
        raise MediaError(f"{where}: stss sample numbers are out of range or not increasing")
    return array("I", map(sub, numbers, repeat(1)))


def _chunk_offsets(buf: bytes, box: BoxHeader, typecode: str, width: int) -> array[int]:
    r = Reader(buf, box)
    r.full()
    return r.table(typecode, r.u32(), width)


def _offsets(
    buf: bytes, stsc: BoxHeader, chunks: array[int], size: array[int], where: str
) -> tuple[array[int], bool]:
    """Absolute offset of every sample, from stsc (samples per chunk) and chunk offsets, and
    whether those are the chunk offsets (a sample per chunk).

    Within a chunk samples are contiguous: offset[i] = chunk_offset[c] + (start[i] -
    start[first sample of c]) where start is the running sum of sizes. Per chunk that is a
    constant delta, repeated over the chunk's samples and added to ``start`` elementwise.
    """
    r = Reader(buf, stsc)
    r.full()
    table = r.table("I", 3 * r.u32(), 4)
    firsts, per_chunk, descriptions = table[0::3], table[1::3], table[2::3]
    nchunks = len(chunks)
    if firsts and (
        firsts[0] != 1 or firsts[-1] > nchunks or not all(map(lt, firsts, islice(firsts, 1, None)))
    ):
        raise MediaError(f"{where}: stsc chunk numbers are out of range or not increasing")
    if descriptions.count(1) != len(descriptions):
        raise MediaError(f"{where}: stsc refers to a missing sample description")
    # Runs of chunks with the same samples per chunk (runs end where the next one starts).
    lengths = array("I", map(sub, [*firsts[1:], nchunks + 1], firsts)) if firsts else array("I")
    n = len(size)
    total = sum(map(mul, per_chunk, lengths))
    if total != n:
        raise MediaError(f"{where}: stsc/stco describe {total} samples, the sample sizes {n}")
    if nchunks == n and 0 not in per_chunk:  # then every chunk holds one sample
        return _widen(chunks), True
    if n < _BIG_CHUNKS * nchunks:
        return _small_chunks(chunks, per_chunk, lengths, size), False
    spc = array("I", chain.from_iterable(map(repeat, per_chunk, lengths)))
    first_sample = array("Q", accumulate(spc, initial=0))
    start = array("Q", accumulate(size, initial=0))
    delta = map(sub, chunks, map(start.__getitem__, first_sample[:-1]))
    per_sample = chain.from_iterable(map(repeat, delta, spc))
    return array("Q", map(add, start[:-1], per_sample)), False


def _widen(column: array[int]) -> array[int]:
    """``column`` as a 64-bit unsigned array, by byte copies rather than item by item."""
    if column.typecode == "Q":
        return array("Q", column)
    if column.itemsize != 4 or array("Q").itemsize != 8:  # pragma: no cover - exotic ABIs
        return array("Q", column)
    wide = bytearray(8 * len(column))
    narrow = column.tobytes()
    low = 0 if sys.byteorder == "little" else 4  # where the low 4 bytes of each item go
    for j in range(4):
        wide[low + j :: 8] = narrow[j::4]
    out = array("Q")
    out.frombytes(wide)
    return out


# Samples per chunk from which the columnar expansion beats a loop over the chunks: its iterator
# objects per chunk cost more than they save when audio is interleaved a frame or two at a time.
_BIG_CHUNKS = 8


def _small_chunks(
    chunks: array[int], per_chunk: array[int], lengths: array[int], size: array[int]
) -> array[int]:
    """Offsets when chunks hold a few samples each: one pass over the stsc runs and chunks."""
    out = array("Q", [0]) * len(size)
    i = 0  # the next sample
    c = 0  # the next chunk
    for k, m in zip(per_chunk, lengths, strict=True):
        for chunk in chunks[c : c + m]:
            if k == 1:
                out[i] = chunk
                i += 1
                continue
            if k == 2:
                out[i] = chunk
                out[i + 1] = chunk + size[i]
                i += 2
                continue
            at = chunk
            end = i + k
            while i < end:
                out[i] = at
                at += size[i]
                i += 1
        c += m
    return out
