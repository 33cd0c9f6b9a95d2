"""Subsample maps (ISO/IEC 23001-7 §9.5): which bytes of each sample stay clear under Common
Encryption and which are encrypted.

AVC samples are NAL units behind length prefixes. A subsample is ``(clear, protected)``: the
length prefix, the NAL header and, for a VCL unit, its slice header stay clear (§10.2 for
``cenc``, §10.4.2 for ``cbcs``: a decoder reads them before decryption); the slice data is
protected. Non-VCL units (SEI, AUD, parameter sets) are clear and join the next subsample's
clear part. AAC samples are encrypted whole: no subsamples.

A map is three columns, never an object per subsample: ``counts`` (subsamples per sample; 0 for a
whole-sample encryption), and the flattened ``clear`` and ``protected`` byte counts. It depends
only on the clear sample bytes, so the service computes it once per clear segment and keeps it
beside it.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from origin.core.errors import MediaError
from origin.core.mp4.avc import VCL_TYPES, ParameterSets, slice_header_size

BLOCK = 16
CLEAR_MAX = 0xFFFF  # BytesOfClearData is 16 bits
# A sample's auxiliary information (IV + count + 6 bytes per subsample) has its size in one byte
# of ``saiz``: with 16-byte IVs at most (255 - 16 - 2) // 6 subsamples.
MAX_SUBSAMPLES = 39
FALLBACK_CLEAR = 32


@dataclass(frozen=True, slots=True)
class SubsampleMap:
    counts: array[int]  # 'H': subsamples per sample, 0 = the whole sample is protected
    clear: array[int]  # 'I': per subsample, flattened
    protected: array[int]  # 'I'

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def cost(self) -> int:
        """Bytes held, for a byte-bounded cache."""
        return 2 * len(self.counts) + 8 * len(self.clear) + 64

    def sample(self, i: int, start: int) -> tuple[array[int], array[int]]:
        """(clear, protected) of sample ``i`` whose subsamples begin at index ``start``."""
        n = self.counts[i]
        return self.clear[start : start + n], self.protected[start : start + n]


def whole_samples(n: int) -> SubsampleMap:
    """Every one of ``n`` samples protected whole (AAC)."""
    return SubsampleMap(array("H", bytes(2 * n)), array("I"), array("I"))


def avc_map(
    samples: Sequence[bytes | memoryview],
    nal_length_size: int,
    sets: ParameterSets,
    *,
    align: bool,
) -> SubsampleMap:
    """The subsample map of AVC ``samples``; ``align``: protected parts are whole 16-byte
    blocks (the remainder moves to the clear part, as ``cenc`` wants for video, §10.2)."""
    counts = array("H")
    clear = array("I")
    protected = array("I")
    for sample in samples:
        n = _sample(memoryview(sample), nal_length_size, sets, clear, protected, align=align)
        counts.append(n)
    return SubsampleMap(counts, clear, protected)


def _sample(
    data: memoryview,
    nls: int,
    sets: ParameterSets,
    clear: array[int],
    protected: array[int],
    *,
    align: bool,
) -> int:
    """Append the subsamples of one sample; return how many."""
    pos, end = 0, len(data)
    pending = 0  # clear bytes not yet given to a subsample
    count = 0
    while pos < end:
        if pos + nls > end:
            pending += end - pos  # a stray tail: clear
            break
        size = int.from_bytes(data[pos : pos + nls], "big")
        unit = data[pos + nls : pos + nls + size]
        if size == 0 or len(unit) < size:
            pending += end - pos  # a damaged length: the rest stays clear
            break
        pos += nls + size
        if unit[0] & 0x1F not in VCL_TYPES:
            pending += nls + size
            continue
        try:
            head = slice_header_size(unit, sets)
        except MediaError:
            # Unreadable (a parameter set we do not have): more than any usual slice header
            # stays clear, so that decoders that parse it before decryption still can.
            head = min(size, FALLBACK_CLEAR)
        secret = size - head
        if align:
            secret -= secret % BLOCK
        pending += nls + size - secret
        if secret == 0:
            continue
        while pending > CLEAR_MAX:  # longer clear runs take subsamples of their own
            clear.append(CLEAR_MAX)
            protected.append(0)
            pending -= CLEAR_MAX
            count += 1
        clear.append(pending)
        protected.append(secret)
        pending = 0
        count += 1
    while pending:
        part = min(pending, CLEAR_MAX)
        clear.append(part)
        protected.append(0)
        pending -= part
        count += 1
    if count > MAX_SUBSAMPLES:
        count = _merge(clear, protected, count)
    return count


def _merge(clear: array[int], protected: array[int], count: int) -> int:
    """Fit a sample of many slices in MAX_SUBSAMPLES: the smallest protected parts are left
    clear and joined to the next subsample's clear part."""
    base = len(clear) - count
    c, p = clear[base:], protected[base:]
    while len(c) > MAX_SUBSAMPLES:
        j = min(range(len(c) - 1), key=p.__getitem__)
        if c[j] + p[j] + c[j + 1] > CLEAR_MAX:
            raise MediaError("a sample has too many slices for Common Encryption's subsamples")
        c[j + 1] += c[j] + p[j]
        del c[j], p[j]
    del clear[base:], protected[base:]
    clear.extend(c)
    protected.extend(p)
    return len(c)
