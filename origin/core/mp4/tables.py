"""``stbl`` sample tables (ISO/IEC 14496-12 §8.6-8.7) → a track's columnar :class:`SampleIndex`.

Tables are expanded into columns with C-level iteration (``array`` from bytes,
``itertools.repeat``/``accumulate``/``map``), never a Python loop per sample, but for the
offsets of chunks holding a sample or two each (interleaved audio), where a plain loop is
cheaper than the iterator objects per chunk. That loop, and any expansion of offsets within
chunks, runs on the track's first segment rather than at start-up (``SampleIndex.offset``).
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right
from collections.abc import Callable
from itertools import accumulate, chain, compress, count, islice, repeat
from operator import add, gt, lt, mul, sub

from origin.core.errors import MediaError
from origin.core.index import SampleIndex, identity
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
    layout = _Chunks.of(buf, require(boxes, "stsc", where), chunks, n, where)
    if layout.overruns(size, file_size):
        raise MediaError(f"{where}: sample data lies beyond the end of the file (truncated?)")
    return SampleIndex(
        dts=dts,
        duration=duration,
        cto=cto,
        size=size,
        offset=layout.offsets(size),
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
    for samples, d in zip(table[0::2], table[1::2], strict=True):
        dts.extend(range(t, t + samples * d, d) if d else array("q", [t]) * samples)
        t += samples * d
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


class _Chunks:
    """Which samples each chunk holds (stsc, ISO/IEC 14496-12 §8.7.4) over the chunk offsets."""

    def __init__(
        self,
        chunks: array[int],
        per_chunk: array[int],
        firsts: array[int],
        lengths: array[int],
        n: int,
    ) -> None:
        self.chunks = chunks
        self.per_chunk = per_chunk  # samples per chunk, one value per run of chunks
        self.firsts = firsts  # each run's first chunk, 1-based
        self.lengths = lengths  # chunks in each run
        # Every chunk one sample (interleaved video): the chunk offsets are the sample offsets.
        self.one_per_chunk = len(chunks) == n and 0 not in per_chunk

    @classmethod
    def of(cls, buf: bytes, stsc: BoxHeader, chunks: array[int], n: int, where: str) -> _Chunks:
        r = Reader(buf, stsc)
        r.full()
        table = r.table("I", 3 * r.u32(), 4)
        firsts, per_chunk, descriptions = table[0::3], table[1::3], table[2::3]
        nchunks = len(chunks)
        if firsts and (
            firsts[0] != 1
            or firsts[-1] > nchunks
            or not all(map(lt, firsts, islice(firsts, 1, None)))
        ):
            raise MediaError(f"{where}: stsc chunk numbers are out of range or not increasing")
        if descriptions.count(1) != len(descriptions):
            raise MediaError(f"{where}: stsc refers to a missing sample description")
        # Runs of chunks with the same samples per chunk (runs end where the next one starts).
        lengths = array("I", map(sub, [*firsts[1:], nchunks + 1], firsts)) if firsts else array("I")
        total = sum(map(mul, per_chunk, lengths))
        if total != n:
            raise MediaError(f"{where}: stsc/stco describe {total} samples, the sample sizes {n}")
        return cls(chunks, per_chunk, firsts, lengths, n)

    def overruns(self, size: array[int], file_size: int) -> bool:
        """Whether any sample's data ends past ``file_size``: exact, yet computed for the few
        chunks that start within one chunk's greatest possible length of the end."""
        if not size:
            return False
        chunks = self.chunks
        most = max(size) * (1 if self.one_per_chunk else max(self.per_chunk))
        late = compress(count(), map(gt, chunks, repeat(file_size - most)))
        if self.one_per_chunk:
            return any(chunks[c] + size[c] > file_size for c in late)
        firsts, per_chunk = self.firsts, self.per_chunk
        # Samples before each run of chunks, for the first sample of any chunk.
        before = array("Q", accumulate(map(mul, per_chunk, self.lengths), initial=0))
        for c in late:
            run = bisect_right(firsts, c + 1) - 1
            k = per_chunk[run]
            first = before[run] + (c + 1 - firsts[run]) * k
            if chunks[c] + sum(size[first : first + k]) > file_size:
                return True
        return False

    def offsets(self, size: array[int]) -> array[int] | Callable[[], array[int]]:
        """Every sample's absolute offset: the chunk offsets themselves when each chunk holds
        one sample, else how to compute them (deferred to first use: see SampleIndex).

        Within a chunk samples are contiguous: offset[i] = chunk_offset[c] + (start[i] -
        start[first sample of c]) where start is the running sum of sizes. Per chunk that is a
        constant delta, repeated over the chunk's samples and added to ``start`` elementwise.
        """
        if self.one_per_chunk:
            return _widen(self.chunks)
        chunks, per_chunk, lengths = self.chunks, self.per_chunk, self.lengths

        def expand() -> array[int]:
            if len(size) < _BIG_CHUNKS * len(chunks):
                return _small_chunks(chunks, per_chunk, lengths, size)
            spc = array("I", chain.from_iterable(map(repeat, per_chunk, lengths)))
            first_sample = array("Q", accumulate(spc, initial=0))
            start = array("Q", accumulate(size, initial=0))
            delta = map(sub, chunks, map(start.__getitem__, first_sample[:-1]))
            per_sample = chain.from_iterable(map(repeat, delta, spc))
            return array("Q", map(add, start[:-1], per_sample))

        return expand


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
