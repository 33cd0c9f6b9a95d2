"""Protected fMP4 (ISO/IEC 23001-7 §8, ISO/IEC 14496-12 §8.12): encrypted sample entries with
``sinf``/``frma``/``schm``/``schi``/``tenc``, ``pssh``, and per fragment ``senc`` + ``saiz`` +
``saio`` (CMAF, DASH, HLS fMP4) or PIFF 1.1's ``uuid`` SampleEncryptionBox (Smooth Streaming).

:func:`protect_fragment` turns a clear fragment (as :mod:`~origin.core.mux.fmp4` and
:mod:`~origin.core.mux.smooth` write it, VOD or live) into its encrypted form: it reads the
fragment's own ``trun`` for the sample sizes, appends the auxiliary-information boxes to the
``traf``, shifts ``trun.data_offset`` past them and encrypts the ``mdat`` payload in the same
output buffer. The clear fragment is what the segment cache holds; this runs per request.
"""

from __future__ import annotations

import struct
import sys
from array import array
from dataclasses import dataclass
from functools import lru_cache

from origin.core.crypto.cenc import CBCS, CENC, SPARE, SampleCipher
from origin.core.crypto.subsamples import SubsampleMap
from origin.core.mp4.defs import (
    PIFF_SENC_UUID,
    SENC_SUBSAMPLES,
    TRUN_CTO,
    TRUN_DATA_OFFSET,
    TRUN_DURATION,
    TRUN_FIRST_FLAGS,
    TRUN_SAMPLE_FLAGS,
    TRUN_SIZE,
)

_HEADER = struct.Struct(">I4s")
_U32 = struct.Struct(">I")
_LITTLE = sys.byteorder == "little"


def _box(kind: bytes, *parts: bytes | bytearray | memoryview) -> bytes:
    return b"".join((_HEADER.pack(8 + sum(map(len, parts)), kind), *parts))


def _full_box(kind: bytes, version: int, flags: int, *parts: bytes | bytearray) -> bytes:
    return _box(kind, _U32.pack((version << 24) | flags), *parts)


# --- init segment: sample entry, sinf, pssh ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrackProtection:
    """What a protected track's init segment says: the scheme, the key id (16 bytes, the UUID's
    big-endian bytes), and for cbcs the constant IV and whether the 1:9 pattern applies."""

    scheme: str  # CENC | CBCS
    kid: bytes
    constant_iv: bytes = b""
    pattern: bool = False
    cenc_iv_size: int = 16  # Per_Sample_IV_Size of cenc: 16 (one keystream a fragment) or 8

    def __post_init__(self) -> None:
        if self.scheme not in (CENC, CBCS) or len(self.kid) != 16:
            raise ValueError("a track protection needs cenc or cbcs and a 16-byte key id")
        if self.scheme == CBCS and len(self.constant_iv) != 16:
            raise ValueError("cbcs needs a 16-byte constant IV")
        if self.cenc_iv_size not in (8, 16):
            raise ValueError("cenc IVs are 8 or 16 bytes")

    @property
    def iv_size(self) -> int:
        """Per-sample IV bytes (cbcs: none, its IV is constant, in tenc)."""
        return self.cenc_iv_size if self.scheme == CENC else 0


def tenc(p: TrackProtection) -> bytes:
    """TrackEncryptionBox (§8.2): cenc's per-sample IV size; cbcs's constant IV, and its 1:9
    pattern in version 1 (a track without a pattern, audio, encrypts every whole block and is
    written version 0, as shaka-packager does)."""
    if p.scheme == CENC:
        return _full_box(b"tenc", 0, 0, b"\x00\x00\x01", bytes((p.iv_size,)), p.kid)
    version, pattern = (1, 0x19) if p.pattern else (0, 0)  # crypt_byte_block 1, skip 9
    iv = p.constant_iv
    return _full_box(b"tenc", version, 0, bytes((0, pattern, 1, 0)), p.kid, bytes((len(iv),)), iv)


def sinf(original_format: bytes, p: TrackProtection) -> bytes:
    """ProtectionSchemeInfoBox: the original sample entry type, the scheme (version 1.0), tenc."""
    schm = _full_box(b"schm", 0, 0, p.scheme.encode(), _U32.pack(0x00010000))
    return _box(b"sinf", _box(b"frma", original_format), schm, _box(b"schi", tenc(p)))


# Bytes of a sample entry before its child boxes (14496-12 §8.5.2, §12.1.3, §12.2.3).
_VISUAL_FIELDS = 78
_AUDIO_FIELDS = {0: 28, 1: 44, 2: 64}  # by QuickTime sound description version
_ENCRYPTED = {b"avc1": b"encv", b"avc3": b"encv", b"mp4a": b"enca"}


def protected_stsd(stsd: bytes, p: TrackProtection) -> bytes:
    """The ``stsd`` box with each sample entry renamed ``encv``/``enca`` and given a ``sinf``."""
    count = _U32.unpack_from(stsd, 12)[0]
    pos, entries = 16, []
    for _ in range(count):
        size, kind = _HEADER.unpack_from(stsd, pos)
        entry = stsd[pos : pos + size]
        if len(entry) != size or size < 16:
            raise ValueError("stsd entry is truncated")
        new = _ENCRYPTED.get(kind)
        if new is None:
            raise ValueError(f"cannot encrypt a {kind.decode('latin-1')!r} sample entry")
        body = entry[8:] + sinf(kind, p)
        entries.append(_HEADER.pack(8 + len(body), new) + body)
        pos += size
    return _full_box(b"stsd", 0, 0, _U32.pack(count), *entries)


def pssh(system_id: bytes, kids: list[bytes], data: bytes = b"") -> bytes:
    """ProtectionSystemSpecificHeaderBox (§8.1), version 1 (with key ids) when ``kids``."""
    if kids:
        return _full_box(
            b"pssh", 1, 0, system_id, _U32.pack(len(kids)), *kids, _U32.pack(len(data)), data
        )
    return _full_box(b"pssh", 0, 0, system_id, _U32.pack(len(data)), data)


# --- fragments -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FragmentLayout:
    """Where things are in a clear fragment (``[styp] moof mdat``, one traf)."""

    moof: int  # offset of the moof box
    traf: int  # offset of the traf box
    traf_end: int
    data_offset_at: int  # offset of trun's data_offset field
    payload: int  # first mdat payload byte
    sizes: array[int]  # 'I': sample sizes, from trun


def _children(data: bytes | bytearray, start: int, end: int) -> dict[bytes, tuple[int, int]]:
    """The first box of each type among the boxes in ``data[start:end]``: (offset, size)."""
    out: dict[bytes, tuple[int, int]] = {}
    pos = start
    while pos + 8 <= end:
        size, kind = _HEADER.unpack_from(data, pos)
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        if size < 8 or pos + size > end:
            raise ValueError(f"box {kind!r} overruns the fragment")
        out.setdefault(kind, (pos, size))
        pos += size
    return out


def read_layout(clear: bytes | bytearray) -> FragmentLayout:
    top = _children(clear, 0, len(clear))
    if b"moof" not in top or b"mdat" not in top:
        raise ValueError("not a fragment: no moof or no mdat")
    moof, moof_size = top[b"moof"]
    mdat, _ = top[b"mdat"]
    traf, traf_size = _children(clear, moof + 8, moof + moof_size)[b"traf"]
    trun, _ = _children(clear, traf + 8, traf + traf_size)[b"trun"]
    flags = _U32.unpack_from(clear, trun + 8)[0] & 0xFFFFFF
    if not flags & TRUN_DATA_OFFSET or not flags & TRUN_SIZE:
        raise ValueError("trun without data_offset or sample sizes")
    count = _U32.unpack_from(clear, trun + 12)[0]
    entries = trun + 20 + (4 if flags & TRUN_FIRST_FLAGS else 0)
    fields = [TRUN_DURATION, TRUN_SIZE, TRUN_SAMPLE_FLAGS, TRUN_CTO]
    width = sum(1 for f in fields if flags & f)
    at = sum(1 for f in fields[:1] if flags & f)  # size comes after duration
    table = array("I", clear[entries : entries + 4 * width * count])
    if _LITTLE:
        table.byteswap()
    header = _U32.unpack_from(clear, mdat)[0]
    payload = mdat + (16 if header == 1 else 8)
    return FragmentLayout(moof, traf, traf + traf_size, trun + 16, payload, table[at::width])


@lru_cache(maxsize=64)
def _entries(n: int) -> struct.Struct:
    return struct.Struct(">H" + "HI" * n)


def _aux_sizes(smap: SubsampleMap, iv_size: int, subsamples: bool) -> bytes:
    """The size of each sample's auxiliary information (the saiz table)."""
    if not subsamples:
        return bytes((iv_size,)) * len(smap)
    return bytes(iv_size + 2 + 6 * n for n in smap.counts)


def _aux_rows(ivs: list[bytes] | None, smap: SubsampleMap, subsamples: bool) -> bytes:
    """Per sample auxiliary information: its IV (cenc), its subsample table."""
    if not subsamples:
        return b"".join(ivs) if ivs is not None else b""
    rows: list[bytes] = []
    k = 0
    clear, protected = smap.clear, smap.protected
    for i, n in enumerate(smap.counts):
        pairs = [
            v for pair in zip(clear[k : k + n], protected[k : k + n], strict=True) for v in pair
        ]
        rows.append((ivs[i] if ivs is not None else b"") + _entries(n).pack(n, *pairs))
        k += n
    return b"".join(rows)


def _saiz(sizes: bytes) -> bytes:
    n = len(sizes)
    if n and sizes[0] and sizes.count(sizes[0]) == n:  # one size for all: the default
        return _full_box(b"saiz", 0, 0, bytes((sizes[0],)), _U32.pack(n))
    return _full_box(b"saiz", 0, 0, b"\x00", _U32.pack(n), sizes)


SAIO_SIZE = 20
_SENC_HEADER = 16  # box header, version and flags, sample_count
_PIFF_HEADER = 32  # the same with the 16-byte user type


def _saio(offset: int) -> bytes:
    return _full_box(b"saio", 0, 0, _U32.pack(1), _U32.pack(offset))


def _aux_boxes(
    layout: FragmentLayout, p: TrackProtection, smap: SubsampleMap, *, piff: bool
) -> tuple[bytes, int, bool]:
    """(saiz + saio, or nothing for PIFF; the size of the senc or PIFF box; whether samples
    have subsample tables)."""
    if len(smap) != len(layout.sizes):
        raise ValueError("the subsample map is for another fragment")
    subsamples = any(smap.counts)
    aux_sizes = _aux_sizes(smap, p.iv_size, subsamples)
    aux_total = sum(aux_sizes)
    if aux_total == 0:
        # cbcs without subsamples (audio): the constant IV of tenc says everything, and a saiz
        # of zero-size entries cannot be written (a default size of 0 means a table follows).
        return b"", 0, False
    if piff:
        return b"", _PIFF_HEADER + aux_total, subsamples
    # saio counts from the moof's first byte (default-base-is-moof, or the first traf of a
    # fragment without a base_data_offset): the aux data starts 16 bytes into senc.
    saiz = _saiz(aux_sizes)
    senc_at = layout.traf_end - layout.moof + len(saiz) + SAIO_SIZE
    return saiz + _saio(senc_at + _SENC_HEADER), _SENC_HEADER + aux_total, subsamples


def protection_growth(
    clear: bytes | bytearray, p: TrackProtection, smap: SubsampleMap, *, piff: bool = False
) -> int:
    """How many bytes :func:`protect_fragment` adds to ``clear`` (the boxes; CTR and the
    cbcs pattern keep the payload's size)."""
    prefix, box_size, _ = _aux_boxes(read_layout(clear), p, smap, piff=piff)
    return len(prefix) + box_size


def protect_fragment(
    clear: bytes | bytearray,
    cipher: SampleCipher,
    p: TrackProtection,
    smap: SubsampleMap,
    *,
    base_iv: bytes = b"",
    piff: bool = False,
) -> bytearray:
    """The encrypted form of fragment ``clear`` under ``p``. ``smap``: its samples' subsample map
    (whole samples: audio); ``base_iv``: cenc's :func:`~origin.core.crypto.cenc.fragment_iv`;
    ``piff``: the Smooth Streaming form (PIFF ``uuid`` box instead of ``senc``/``saiz``/``saio``).
    """
    layout = read_layout(clear)
    sizes = layout.sizes
    prefix, box_size, subsamples = _aux_boxes(layout, p, smap, piff=piff)
    flags = SENC_SUBSAMPLES if subsamples else 0
    t = layout.traf_end
    grow = len(prefix) + box_size
    # One output buffer: the clear header with room for the boxes, then the payload, encrypted
    # in place (SPARE bytes of headroom for update_into, cut at the end).
    h = layout.payload + grow
    out = bytearray(h + len(clear) - layout.payload + SPARE)
    out[:t] = memoryview(clear)[:t]
    out[t + grow : h] = memoryview(clear)[t : layout.payload]
    src = memoryview(clear)[layout.payload :]
    out[h : h + len(src)] = src
    dst = memoryview(out)[h:]
    ivs: list[bytes] | None = None
    if p.scheme == CENC:
        ivs = cipher.cenc(src, dst, sizes, smap, base_iv, iv_size=p.iv_size)
    else:
        cipher.cbcs(src, dst, sizes, smap, p.constant_iv, pattern=p.pattern)
    del dst
    del out[len(out) - SPARE :]
    box = b""
    if box_size:
        header = _U32.pack(box_size) + (b"uuid" + PIFF_SENC_UUID if piff else b"senc")
        rows = _aux_rows(ivs, smap, subsamples)
        box = b"".join((prefix, header, _U32.pack(flags), _U32.pack(len(sizes)), rows))
    if len(box) != grow:  # pragma: no cover - guards the size arithmetic
        raise AssertionError(f"aux boxes are {len(box)} bytes, computed {grow}")
    out[t : t + grow] = box
    for at in (layout.moof, layout.traf):
        _U32.pack_into(out, at, _U32.unpack_from(out, at)[0] + grow)
    at = layout.data_offset_at
    struct.pack_into(">i", out, at, struct.unpack_from(">i", out, at)[0] + grow)
    return out
