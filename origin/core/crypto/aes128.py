"""HLS ``METHOD=AES-128``: AES-128-CBC with PKCS#7 padding over a whole segment (RFC 8216 §5.2).

The key schedule is prepared once per key: one long-lived OpenSSL CBC context encrypts every
segment. Creating a context costs ~20 µs (a fixed price on every small request), and a CBC
context can be re-pointed at any IV without being re-created: feeding it the block
``D_k(iv) XOR chain`` makes it output exactly ``iv``, after which the chaining value *is* the IV.
That costs one ECB block from a second long-lived context. Output is written with
``update_into`` into one ``bytearray``: ``update()`` allocates a fresh bytes object per call,
which measured ~2.5x slower on 1 MB segments.

A big segment can also be encrypted a slice at a time (:meth:`Aes128Cbc.encrypt_slices`), so a
server writes each slice as it is made and other requests run between slices: each slice steers
the shared context to the chain it continues (the previous slice's last ciphertext block), so
slices of many segments may interleave on one context.

Instances are not thread-safe (the chain is state); use one per thread.
"""

from __future__ import annotations

from collections.abc import Iterator

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16


def sequence_iv(media_sequence: int) -> bytes:
    """The IV RFC 8216 §5.2 implies when EXT-X-KEY has no IV: the media sequence number."""
    return media_sequence.to_bytes(BLOCK, "big")


def padded_size(n: int) -> int:
    """Size of ``n`` bytes after PKCS#7 padding (always 1..16 bytes added)."""
    return n + BLOCK - n % BLOCK


class Aes128Cbc:
    """Whole-segment AES-128-CBC + PKCS#7 with one prepared key schedule."""

    __slots__ = ("_chain", "_dec", "_enc", "_key")

    def __init__(self, key: bytes) -> None:
        if len(key) != BLOCK:
            raise ValueError("AES-128 needs a 16-byte key")
        self._key = key
        self._reset()

    def _reset(self) -> None:
        self._enc = Cipher(algorithms.AES(self._key), modes.CBC(bytes(BLOCK))).encryptor()
        self._dec = Cipher(algorithms.AES(self._key), modes.ECB()).decryptor()
        self._chain = bytes(BLOCK)

    def __repr__(self) -> str:  # never show the key
        return "Aes128Cbc(<key hidden>)"

    def encrypt(self, data: bytes | bytearray | memoryview, iv: bytes) -> bytearray:
        """Encrypt ``data`` with ``iv``; returns ciphertext of ``padded_size(len(data))``."""
        if len(iv) != BLOCK:
            raise ValueError("the IV must be 16 bytes")
        return self._guarded(memoryview(data).cast("B"), iv, final=True)

    def encrypt_blocks(self, data: bytes | bytearray | memoryview, iv: bytes) -> bytearray:
        """CBC of whole blocks with no padding (Common Encryption's ``cbcs`` runs)."""
        if len(iv) != BLOCK:
            raise ValueError("the IV must be 16 bytes")
        return self._guarded(memoryview(data).cast("B"), iv, final=False)

    def encrypt_slices(
        self, data: bytes | bytearray | memoryview, iv: bytes, slice_size: int
    ) -> Iterator[bytearray]:
        """``encrypt(data, iv)`` in pieces of ``slice_size`` bytes (rounded down to whole
        blocks), the last one the rest and its 1-16 bytes of padding; each made when asked for.

        Between two pieces the context may encrypt anything else: the next piece steers it back.
        """
        if len(iv) != BLOCK:  # said now, not at the first slice
            raise ValueError("the IV must be 16 bytes")
        return self._slices(
            memoryview(data).cast("B"), iv, max(slice_size - slice_size % BLOCK, BLOCK)
        )

    def _slices(self, view: memoryview, iv: bytes, step: int) -> Iterator[bytearray]:
        chain, start, n = iv, 0, len(view)
        while n - start > step:
            out = self._guarded(view[start : start + step], chain, final=False)
            chain = bytes(out[-BLOCK:])
            start += step
            yield out
        yield self._guarded(view[start:], chain, final=True)

    def _guarded(self, data: memoryview, chain: bytes, *, final: bool) -> bytearray:
        try:
            return self._encrypt(data, chain, final)
        except BaseException:
            # The chain state is unknown after a failure: start from a clean context.
            self._reset()
            raise

    def _encrypt(self, data: memoryview, chain: bytes, final: bool) -> bytearray:
        """CBC-encrypt ``data`` continuing from ``chain`` (the IV, or the ciphertext block
        before ``data``); ``final``: PKCS#7-pad it, else it must be whole blocks."""
        n = len(data)
        if not final and n % BLOCK:
            raise ValueError("only the last slice may end inside a block")
        if chain != self._chain:  # steer: the context's chain becomes ``chain``
            steer = self._dec.update(chain)
            steer = (int.from_bytes(steer, "big") ^ int.from_bytes(self._chain, "big")).to_bytes(
                BLOCK, "big"
            )
            self._enc.update(steer)  # outputs ``chain``; the context now chains from it
            self._chain = chain
        whole = n - n % BLOCK
        size = whole + BLOCK if final else whole
        out = bytearray(size + BLOCK - 1)  # update_into wants block_size - 1 spare
        view = memoryview(out)
        if whole:
            self._enc.update_into(data[:whole], view)
            self._chain = bytes(view[whole - BLOCK : whole])
        if final:
            pad = BLOCK - n % BLOCK
            last = bytes(data[whole:]) + bytes((pad,)) * pad
            tail = self._enc.update(last)
            view[whole : whole + BLOCK] = tail
            self._chain = tail
        del view
        del out[size:]
        return out


def decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """Reference decryption (tests, tools): CBC then strip and check PKCS#7."""
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    clear = dec.update(data) + dec.finalize()
    pad = clear[-1] if clear else 0
    if not 1 <= pad <= BLOCK or clear[-pad:] != bytes((pad,)) * pad:
        raise ValueError("bad PKCS#7 padding")
    return clear[:-pad]
