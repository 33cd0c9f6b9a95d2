"""Protected fMP4 (ISO/IEC 23001-7 §8, ISO/IEC 14496-12 §8.12): encrypted sample entries with
``sinf``/``frma``/``schm``/``schi``/``tenc``, ``pssh``, and per fragment ``senc`` + ``saiz`` +
``saio`` (CMAF, DASH, HLS fMP4) or PIFF 1.1's ``uuid`` SampleEncryptionBox (Smooth Streaming).

:func:`plan_fragment` works out, once per clear fragment (as :mod:`~origin.core.mux.fmp4` and
:mod:`~origin.core.mux.smooth` write it), everything of its encrypted form but the encryption:
it reads the fragment's own ``trun`` for the sample sizes, appends the auxiliary-information
boxes to the ``traf`` and shifts ``trun.data_offset`` past them. :func:`encrypt_fragment` then
runs per request: that header, and the ``mdat`` payload encrypted in the same output buffer.
The clear fragment is what the segment cache holds.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass
from functools import lru_cache

from origin.core.crypto.cenc import CBCS, CENC, SPARE, Runs, SampleCipher, runs
from origin.core.crypto.subsamples import SubsampleMap
from origin.core.errors import MediaError
from origin.core.mp4.boxes import be_array, child_map
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
from origin.core.mux.fmp4 import _box, _full_box  # one writer of box headers

_HEADER = struct.Struct(">I4s")
_U32 = struct.Struct(">I")


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
    """The ``stsd`` box with each sample entry renamed ``encv``/``enca`` and given a ``sinf``.

    The clear init copies a source's ``stsd`` as it is, damage included; an encrypted one must
    be rewritten, so a sample description it cannot walk is a MediaError with the reason."""
    if len(stsd) < 16:
        raise MediaError("the sample description (stsd) is too short to encrypt")
    count = _U32.unpack_from(stsd, 12)[0]
    pos = 16
    entries: list[bytes] = []
    while pos < len(stsd) and len(entries) < count:
        if pos + 8 > len(stsd):
            raise MediaError("a sample entry of the stsd is truncated: cannot encrypt it")
        size, kind = _HEADER.unpack_from(stsd, pos)
        size = size or len(stsd) - pos  # 0: to the end of the enclosing box
        if size < 16 or pos + size > len(stsd):
            raise MediaError("a sample entry of the stsd is damaged: cannot encrypt it")
        new = _ENCRYPTED.get(kind)
        if new is None:
            raise MediaError(f"cannot encrypt a {kind.decode('latin-1')!r} sample entry")
        body = stsd[pos + 8 : pos + size] + sinf(kind, p)
        entries.append(_HEADER.pack(8 + len(body), new) + body)
        pos += size
    if not entries:
        raise MediaError("the stsd has no sample entry to encrypt")
    return _full_box(b"stsd", 0, 0, _U32.pack(len(entries)), *entries)


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


def read_layout(clear: bytes | bytearray) -> FragmentLayout:
    data = clear
    top = child_map(data, 0, len(data))
    if "moof" not in top or "mdat" not in top:
        raise ValueError("not a fragment: no moof or no mdat")
    moof, mdat = top["moof"], top["mdat"]
    traf = child_map(data, moof.payload, moof.end)["traf"]
    trun = child_map(data, traf.payload, traf.end)["trun"]
    flags = _U32.unpack_from(data, trun.offset + 8)[0] & 0xFFFFFF
    if not flags & TRUN_DATA_OFFSET or not flags & TRUN_SIZE:
        raise ValueError("trun without data_offset or sample sizes")
    count = _U32.unpack_from(data, trun.offset + 12)[0]
    entries = trun.offset + 20 + (4 if flags & TRUN_FIRST_FLAGS else 0)
    fields = [TRUN_DURATION, TRUN_SIZE, TRUN_SAMPLE_FLAGS, TRUN_CTO]
    width = sum(1 for f in fields if flags & f)
    at = sum(1 for f in fields[:1] if flags & f)  # size comes after duration
    table = be_array("I", data[entries : entries + 4 * width * count])
    return FragmentLayout(
        moof.offset, traf.offset, traf.end, trun.offset + 16, mdat.payload, table[at::width]
    )


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
_SPARE = bytes(SPARE)
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


def aux_size_bound(samples: int, *, video: bool) -> int:
    """The bytes the aux boxes add to a CMAF fragment of ``samples`` samples under the costlier
    scheme (cenc, 16-byte IVs), for bandwidths announced before any segment is encrypted: video
    counted with one subsample a sample (a picture of one slice; each more slice adds 6 bytes)
    and a saiz table, audio with a default saiz size."""
    saio_senc = SAIO_SIZE + _SENC_HEADER
    if video:
        return 17 + samples + saio_senc + samples * (16 + 2 + 6)
    return 17 + saio_senc + samples * 16


@dataclass(frozen=True, slots=True)
class ProtectedFragment:
    """A clear fragment's encrypted form, worked out except for the encryption itself: the
    final header (the moof grown by the aux boxes, with cenc's IVs), where the payload starts in
    the clear fragment, and the runs to encrypt. It depends only on the clear bytes, the scheme,
    the key id and the fragment's name, so a server keeps it beside the clear fragment and a
    request is then: copy the header and the payload, run the cipher over the runs."""

    header: bytes
    payload: int  # offset of the first payload byte in the clear fragment
    runs: Runs
    size: int  # of the encrypted fragment

    @property
    def cost(self) -> int:
        """Bytes held, roughly, for a byte-bounded cache."""
        return len(self.header) + 40 * (len(self.runs.ranges) + len(self.runs.steps)) + 200


def plan_fragment(
    clear: bytes | bytearray,
    p: TrackProtection,
    smap: SubsampleMap,
    *,
    base_iv: bytes = b"",
    piff: bool = False,
) -> ProtectedFragment:
    """The :class:`ProtectedFragment` of fragment ``clear`` under ``p``. ``smap``: its samples'
    subsample map (whole samples: audio); ``base_iv``: cenc's
    :func:`~origin.core.crypto.cenc.fragment_iv`; ``piff``: the Smooth Streaming form (PIFF
    ``uuid`` box instead of ``senc``/``saiz``/``saio``)."""
    layout = read_layout(clear)
    sizes = layout.sizes
    prefix, box_size, subsamples = _aux_boxes(layout, p, smap, piff=piff)
    plan = runs(sizes, smap, scheme=p.scheme, base_iv=base_iv, iv_size=p.iv_size)
    box = b""
    if box_size:
        header = _U32.pack(box_size) + (b"uuid" + PIFF_SENC_UUID if piff else b"senc")
        flags = _U32.pack(SENC_SUBSAMPLES if subsamples else 0)
        rows = _aux_rows(plan.ivs or None, smap, subsamples)
        box = b"".join((prefix, header, flags, _U32.pack(len(sizes)), rows))
    grow = len(box)
    if grow != len(prefix) + box_size:  # pragma: no cover - guards the size arithmetic
        raise AssertionError(f"aux boxes are {grow} bytes, computed {len(prefix) + box_size}")
    t = layout.traf_end
    head = bytearray(clear[: layout.payload])
    head[t:t] = box
    for at in (layout.moof, layout.traf):
        _U32.pack_into(head, at, _U32.unpack_from(head, at)[0] + grow)
    at = layout.data_offset_at
    struct.pack_into(">i", head, at, struct.unpack_from(">i", head, at)[0] + grow)
    return ProtectedFragment(bytes(head), layout.payload, plan, len(clear) + grow)


def encrypt_fragment(
    plan: ProtectedFragment, clear: bytes | bytearray, cipher: SampleCipher, p: TrackProtection
) -> bytearray:
    """The encrypted fragment: ``plan``'s header, then ``clear``'s payload encrypted in the
    same buffer (SPARE bytes of headroom for ``update_into``, cut at the end)."""
    h = len(plan.header)
    src = memoryview(clear)[plan.payload :]
    # Appending: assigning a slice in the middle of a bytearray measured ~20x slower.
    out = bytearray(plan.header)
    out += src
    out += _SPARE
    dst = memoryview(out)[h:]
    if p.scheme == CENC:
        cipher.cenc(src, dst, plan.runs)
    else:
        cipher.cbcs(src, dst, plan.runs, p.constant_iv, pattern=p.pattern)
    del dst
    del out[plan.size :]
    return out


def protect_fragment(
    clear: bytes | bytearray,
    cipher: SampleCipher,
    p: TrackProtection,
    smap: SubsampleMap,
    *,
    base_iv: bytes = b"",
    piff: bool = False,
) -> bytearray:
    """:func:`plan_fragment` and :func:`encrypt_fragment` in one call."""
    plan = plan_fragment(clear, p, smap, base_iv=base_iv, piff=piff)
    return encrypt_fragment(plan, clear, cipher, p)
