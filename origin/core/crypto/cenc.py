"""Common Encryption of samples (ISO/IEC 23001-7): ``cenc`` (AES-128-CTR) and ``cbcs``
(AES-128-CBC with a 1:9 pattern and a constant IV), over the payload of one fragment.

The payload is the fragment's samples back to back (an ``mdat``'s body); a
:class:`~origin.core.crypto.subsamples.SubsampleMap` says which bytes of each are protected.
Both schemes write into a buffer that already holds the clear payload, so clear bytes are never
copied twice and the caller can put the fragment's header in front of it in the same buffer.

``cenc`` with 16-byte per-sample IVs (Per_Sample_IV_Size 16, the whole counter block, §9.2;
CMAF, DASH and HLS fMP4): one CTR context per fragment. Sample ``k``'s IV is the fragment's base
IV plus the number of blocks the samples before it used, so one keystream runs through the
fragment and each sample starts on a fresh block (a sample's last partial block of keystream is
skipped). With 8-byte IVs (Smooth Streaming: PIFF clients such as dash.js and Shaka assume 8)
each sample restarts its block counter, so each gets a context of its own (~8 µs each): IV
``k`` is the base's first half plus ``k``. The base IV is a digest of what names the fragment
(:func:`fragment_iv`), with its low 64 bits zero: counter blocks never repeat under a key across
fragments, tracks, renditions or assets (2^64 fragment bases), nor carry out of the low half,
and the same fragment always gets the same bytes (a strong ETag, one copy in a CDN).

``cbcs``: each subsample's protected part is encrypted from the constant IV (the chain restarts
per subsample, §10.4.2); with the 1:9 pattern one 16-byte block in ten, else (audio) every
whole block; a trailing partial block stays clear. The blocks are gathered with strided
``memoryview`` copies, CBC-encrypted in one call per subsample on one long-lived context (see
:class:`~origin.core.crypto.aes128.Aes128Cbc`), and scattered back the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from origin.core.crypto.aes128 import BLOCK, Aes128Cbc
from origin.core.crypto.subsamples import SubsampleMap

CENC = "cenc"
CBCS = "cbcs"
PATTERN = (1, 9)  # cbcs video: crypt_byte_block, skip_byte_block (§10.4.2)
SPARE = BLOCK  # bytes a destination needs after the payload (update_into's headroom)

_ZEROS = bytes(BLOCK)


def fragment_iv(*names: object) -> bytes:
    """The 16-byte base IV of the fragment that ``names`` identify (asset, track, rendition,
    fragment number, ...): 8 digest bytes, then 8 zero bytes for the block counter."""
    digest = hashlib.blake2b(repr(names).encode(), digest_size=8, person=b"origin-cenc-iv").digest()
    return digest + bytes(8)


def protected_ranges(
    sizes: Sequence[int], smap: SubsampleMap
) -> tuple[list[tuple[int, int]], list[int]]:
    """The (offset, length) of every protected run in the payload, in order, and per sample the
    index of its first run (one more entry: the total)."""
    if len(sizes) != len(smap):
        raise ValueError("the subsample map is for another number of samples")
    ranges: list[tuple[int, int]] = []
    firsts: list[int] = []
    pos = k = 0
    clear, protected = smap.clear, smap.protected
    for size, n in zip(sizes, smap.counts, strict=True):
        firsts.append(len(ranges))
        if n == 0:
            if size:
                ranges.append((pos, size))
        else:
            at = pos
            for c, p in zip(clear[k : k + n], protected[k : k + n], strict=True):
                at += c
                if p:
                    ranges.append((at, p))
                at += p
            if at != pos + size:
                raise ValueError("a subsample map does not add up to its sample's size")
            k += n
        pos += size
    firsts.append(len(ranges))
    return ranges, firsts


@dataclass(frozen=True, slots=True)
class Runs:
    """What encrypting one fragment's payload takes, worked out once (it depends only on the
    clear samples, the scheme and the base IV): the protected runs, and for cenc each sample's
    IV and the keystream steps (a run to encrypt, or ``(-1, n)``: n bytes of keystream to skip
    so the next sample starts on a fresh counter block)."""

    ranges: list[tuple[int, int]]
    firsts: list[int]  # per sample, its first run; one more entry: the total
    ivs: list[bytes]  # cenc: per sample; cbcs: empty
    steps: list[tuple[int, int]]  # cenc with 16-byte IVs: one keystream through the fragment


def runs(
    sizes: Sequence[int], smap: SubsampleMap, *, scheme: str, base_iv: bytes = b"", iv_size: int = 0
) -> Runs:
    """The :class:`Runs` of a payload of ``sizes`` under ``smap``; cenc needs the fragment's
    ``base_iv`` (:func:`fragment_iv`) and its ``iv_size`` (16, or 8 for PIFF)."""
    ranges, firsts = protected_ranges(sizes, smap)
    if scheme != CENC:
        return Runs(ranges, firsts, [], [])
    if len(base_iv) != BLOCK or base_iv[8:] != bytes(8):
        raise ValueError("a base IV is 8 bytes and a zero counter")
    ivs: list[bytes] = []
    steps: list[tuple[int, int]] = []
    if iv_size == 8:
        high = int.from_bytes(base_iv[:8], "big")
        ivs = [((high + s) & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "big") for s in range(len(sizes))]
        return Runs(ranges, firsts, ivs, steps)
    if iv_size != BLOCK:
        raise ValueError("cenc IVs are 8 or 16 bytes")
    base = int.from_bytes(base_iv, "big")
    blocks = 0
    for s in range(len(sizes)):
        ivs.append((base + blocks).to_bytes(BLOCK, "big"))
        mine = ranges[firsts[s] : firsts[s + 1]]
        steps += mine
        used = sum(n for _, n in mine)
        if tail := used % BLOCK:
            steps.append((-1, BLOCK - tail))
        blocks += -(-used // BLOCK)
    return Runs(ranges, firsts, ivs, steps)


class SampleCipher:
    """A prepared content key for ``cenc`` and ``cbcs``. Not thread-safe (one per thread)."""

    __slots__ = ("_aes", "_cbc")

    def __init__(self, key: bytes) -> None:
        if len(key) != BLOCK:
            raise ValueError("Common Encryption needs a 16-byte key")
        self._aes = algorithms.AES(key)
        self._cbc = Aes128Cbc(key)

    def __repr__(self) -> str:  # never show the key
        return "SampleCipher(<key hidden>)"

    def cenc(self, src: memoryview, dst: memoryview, plan: Runs) -> None:
        """AES-CTR the protected bytes of ``src`` into ``dst`` (same offsets; ``dst`` holds the
        clear payload and SPARE bytes more), with the IVs of ``plan``."""
        if not plan.ranges:
            return
        if len(plan.ivs[0]) == BLOCK:  # 16-byte IVs: one keystream for the fragment
            ctr = Cipher(self._aes, modes.CTR(plan.ivs[0])).encryptor()
            for off, n in plan.steps:
                if off < 0:
                    ctr.update(_ZEROS[:n])
                else:
                    ctr.update_into(src[off : off + n], dst[off:])
            return
        firsts, ranges = plan.firsts, plan.ranges
        for s, iv in enumerate(plan.ivs):  # 8-byte IVs: each sample counts from 0
            mine = ranges[firsts[s] : firsts[s + 1]]
            if mine:
                ctr = Cipher(self._aes, modes.CTR(iv + bytes(8))).encryptor()
                for off, n in mine:
                    ctr.update_into(src[off : off + n], dst[off:])

    def cbcs(
        self, src: memoryview, dst: memoryview, plan: Runs, iv: bytes, *, pattern: bool
    ) -> None:
        """AES-CBC ``cbcs`` of the protected bytes of ``src`` into ``dst`` with the constant
        ``iv``; ``pattern``: 1:9 (video), else every whole block (audio)."""
        ranges = plan.ranges
        cbc = self._cbc
        crypt, skip = PATTERN
        period = crypt + skip
        for off, n in ranges:
            whole = n - n % BLOCK
            if whole == 0:
                continue
            region = src[off : off + whole]
            if not pattern or whole <= BLOCK:
                dst[off : off + whole] = cbc.encrypt_blocks(region, iv)
                continue
            q = region.cast("Q")  # 8-byte units: a block is two
            picked = bytearray(BLOCK * -(-(whole // BLOCK) // period))
            pq = memoryview(picked).cast("Q")
            pq[0::2] = q[0 :: 2 * period]
            pq[1::2] = q[1 :: 2 * period]
            enc = memoryview(cbc.encrypt_blocks(picked, iv)).cast("Q")
            out = dst[off : off + whole].cast("Q")
            out[0 :: 2 * period] = enc[0::2]
            out[1 :: 2 * period] = enc[1::2]
