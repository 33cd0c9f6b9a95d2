"""A reference Common Encryption decryptor (ISO/IEC 23001-7) for tests, written from the spec and
independent of the origin's writer: it reads the init segment's ``tenc`` (or is told the scheme
and IVs for Smooth), each fragment's ``trun`` and ``senc`` (or PIFF ``uuid``) boxes, and decrypts
each sample with one ``cryptography`` context per sample (cenc) or per subsample (cbcs), block by
block, as the spec describes it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PIFF_SENC = bytes.fromhex("A2394F525A9B4F14A2446C427C648DF4")
CONTAINERS = {
    b"moov",
    b"trak",
    b"mdia",
    b"minf",
    b"stbl",
    b"moof",
    b"traf",
    b"sinf",
    b"schi",
    b"mvex",
}


def walk(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of every box under ``data[start:end]``, containers opened, sample
    entries of ``stsd`` opened too."""
    out = []
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        assert size >= 8 and pos + size <= end, f"box {kind!r} at {pos} overruns"
        out.append((kind, pos, size))
        if kind in CONTAINERS:
            out += walk(data, pos + 8, pos + size)
        elif kind == b"stsd":
            out += walk(data, pos + 16, pos + size)
        elif kind in (b"encv", b"avc1"):
            out += walk(data, pos + 8 + 78, pos + size)
        elif kind in (b"enca", b"mp4a"):
            out += walk(data, pos + 8 + 28, pos + size)
        pos += size
    return out


def find(data: bytes, kind: bytes) -> list[tuple[int, int]]:
    return [(o, s) for k, o, s in walk(data) if k == kind]


@dataclass
class Tenc:
    scheme: str
    kid: bytes
    iv_size: int
    crypt: int = 0
    skip: int = 0
    constant_iv: bytes = b""


def read_tenc(init: bytes) -> Tenc:
    ((schm, _),) = find(init, b"schm")
    scheme = init[schm + 12 : schm + 16].decode()
    ((t, _),) = find(init, b"tenc")
    version = init[t + 8]
    crypt_skip = init[t + 13]
    protected, iv_size = init[t + 14], init[t + 15]
    assert protected == 1
    kid = init[t + 16 : t + 32]
    constant = b""
    if protected and iv_size == 0:
        n = init[t + 32]
        constant = init[t + 33 : t + 33 + n]
    crypt, skip = (crypt_skip >> 4, crypt_skip & 15) if version >= 1 else (0, 0)
    return Tenc(scheme, kid, iv_size, crypt, skip, constant)


def _trun_sizes(data: bytes, trun: int) -> tuple[list[int], int]:
    flags = struct.unpack_from(">I", data, trun + 8)[0] & 0xFFFFFF
    count = struct.unpack_from(">I", data, trun + 12)[0]
    pos = trun + 16
    data_offset = 0
    if flags & 1:
        data_offset = struct.unpack_from(">i", data, pos)[0]
        pos += 4
    if flags & 4:
        pos += 4
    sizes = []
    for _ in range(count):
        if flags & 0x100:
            pos += 4
        sizes.append(struct.unpack_from(">I", data, pos)[0])
        pos += 4
        pos += 4 * bool(flags & 0x400) + 4 * bool(flags & 0x800)
    return sizes, data_offset


def _aux(
    data: bytes, box: int, piff: bool, iv_size: int
) -> list[tuple[bytes, list[tuple[int, int]]]]:
    pos = box + 8 + (16 if piff else 0)
    flags = struct.unpack_from(">I", data, pos)[0] & 0xFFFFFF
    pos += 4
    if flags & 1:  # PIFF override of algorithm, IV size and KID
        iv_size = data[pos + 3]
        pos += 20
    count = struct.unpack_from(">I", data, pos)[0]
    pos += 4
    out = []
    for _ in range(count):
        iv = data[pos : pos + iv_size]
        pos += iv_size
        subs = []
        if flags & 2:
            n = struct.unpack_from(">H", data, pos)[0]
            pos += 2
            for _ in range(n):
                subs.append(struct.unpack_from(">HI", data, pos))
                pos += 6
        out.append((iv, subs))
    return out


def _cenc_sample(key: bytes, iv: bytes, sample: bytes, subs: list[tuple[int, int]]) -> bytes:
    ctr = Cipher(algorithms.AES(key), modes.CTR(iv.ljust(16, b"\0"))).decryptor()
    if not subs:
        return ctr.update(sample)
    out, pos = bytearray(), 0
    for clear, protected in subs:
        out += sample[pos : pos + clear]
        pos += clear
        out += ctr.update(sample[pos : pos + protected])
        pos += protected
    assert pos == len(sample), "subsamples do not add up to the sample"
    return bytes(out)


def _cbcs_range(key: bytes, iv: bytes, data: bytes, crypt: int, skip: int) -> bytes:
    out = bytearray(data)
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    blocks = len(data) // 16
    period = crypt + skip if crypt else 1
    crypt = crypt or 1
    for b in range(blocks):
        if b % period < crypt:
            out[16 * b : 16 * b + 16] = dec.update(data[16 * b : 16 * b + 16])
    return bytes(out)


def _cbcs_sample(
    key: bytes, iv: bytes, sample: bytes, subs: list[tuple[int, int]], tenc: Tenc
) -> bytes:
    if not subs:
        return _cbcs_range(key, iv, sample, tenc.crypt, tenc.skip)
    out, pos = bytearray(), 0
    for clear, protected in subs:
        out += sample[pos : pos + clear]
        pos += clear
        out += _cbcs_range(key, iv, sample[pos : pos + protected], tenc.crypt, tenc.skip)
        pos += protected
    assert pos == len(sample)
    return bytes(out)


def decrypt_fragment(fragment: bytes, key: bytes, tenc: Tenc) -> list[bytes]:
    """The clear samples of one encrypted fragment (``[styp] moof mdat``)."""
    ((moof, _),) = find(fragment, b"moof")
    ((trun, _),) = find(fragment, b"trun")
    sizes, data_offset = _trun_sizes(fragment, trun)
    sencs = find(fragment, b"senc")
    piffs = [(o, s) for o, s in find(fragment, b"uuid") if fragment[o + 8 : o + 24] == PIFF_SENC]
    if not sencs and not piffs:  # constant IV, whole samples: tenc says it all (cbcs audio)
        aux: list[tuple[bytes, list[tuple[int, int]]]] = [(b"", [])] * len(sizes)
    elif sencs:
        aux = _aux(fragment, sencs[0][0], False, tenc.iv_size)
        # saio must point at the same bytes as the senc's sample data
        ((saio, _),) = find(fragment, b"saio")
        offset = struct.unpack_from(">I", fragment, saio + 16)[0]
        assert moof + offset == sencs[0][0] + 16, "saio does not point at senc's data"
    else:
        aux = _aux(fragment, piffs[0][0], True, tenc.iv_size)
    assert len(aux) == len(sizes)
    pos = moof + data_offset
    samples = []
    for size, (iv, subs) in zip(sizes, aux, strict=True):
        sample = fragment[pos : pos + size]
        pos += size
        if tenc.scheme == "cenc":
            samples.append(_cenc_sample(key, iv, sample, subs))
        else:
            samples.append(_cbcs_sample(key, tenc.constant_iv, sample, subs, tenc))
    return samples


def clear_samples(fragment: bytes) -> list[bytes]:
    """The samples of a clear fragment, for comparison."""
    ((moof, _),) = find(fragment, b"moof")
    ((trun, _),) = find(fragment, b"trun")
    sizes, data_offset = _trun_sizes(fragment, trun)
    pos = moof + data_offset
    out = []
    for size in sizes:
        out.append(fragment[pos : pos + size])
        pos += size
    return out
