"""The encryption stage of the pipeline: which protocol gets which scheme, which segments stay
clear, and which IV a segment is encrypted with.

Today one scheme: HLS ``METHOD=AES-128`` (whole-segment CBC, RFC 8216 §5.2), for HLS only;
DASH and Smooth are served clear. Common Encryption (``cenc``/``cbcs``, ISO/IEC 23001-7) goes
beside it as another :class:`Scheme`: chosen per format in :func:`scheme_for`, applied per sample
by its own branch of :func:`encrypt_segment`, signalled by its own playlist/manifest tags.

:func:`encrypted_body` defers the work: it gives the body's size (and the IV, hence the ETag)
at once, its bytes whole or slice by slice when the response is written, so that a server can
answer 304 or HEAD without encrypting and stream a big segment without holding its event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Protocol as TypingProtocol

from origin.core import urls
from origin.core.crypto import padded_size, sequence_iv
from origin.core.plan import SegmentRef
from origin.core.urls import Format, Protocol


class Scheme(Enum):
    AES_128 = "AES-128"  # HLS whole-segment AES-128-CBC, PKCS#7 padded


class SegmentCipher(TypingProtocol):
    """A prepared key (``crypto.Aes128Cbc``): encrypts a whole segment with a given IV."""

    def encrypt(self, data: bytes | bytearray | memoryview, iv: bytes) -> bytearray: ...

    def encrypt_slices(
        self, data: bytes | bytearray | memoryview, iv: bytes, slice_size: int
    ) -> Iterator[bytearray]: ...


@dataclass(frozen=True, slots=True)
class Encrypted:
    """A segment's encrypted body, not yet computed: its length is known (PKCS#7 adds 1-16
    bytes), its bytes are made by :meth:`whole` or :meth:`slices` when they are needed."""

    clear: bytes | bytearray
    cipher: SegmentCipher
    iv: bytes

    def __len__(self) -> int:
        return padded_size(len(self.clear))

    def whole(self) -> bytearray:
        return self.cipher.encrypt(self.clear, self.iv)

    def slices(self, size: int) -> Iterator[bytearray]:
        """The same bytes as :meth:`whole`, ~``size`` bytes at a time, each made when asked."""
        return self.cipher.encrypt_slices(self.clear, self.iv, size)


def scheme_for(fmt: Format | None) -> Scheme | None:
    """The scheme a protected asset is delivered with in ``fmt``; None: delivered clear."""
    return Scheme.AES_128 if urls.protocol_of(fmt) is Protocol.HLS else None


def encrypt_segment(
    ref: SegmentRef, clear: bytes | bytearray, cipher: SegmentCipher, iv: bytes | None
) -> tuple[bytes | bytearray, bytes]:
    """(body, IV used) of segment ``ref``: ``iv`` is the asset's configured IV, None for the
    media sequence number. The init segment stays clear (IV used ``b""``): the playlist puts
    EXT-X-MAP before EXT-X-KEY, so the key does not apply to it."""
    body, used = encrypted_body(ref, clear, cipher, iv)
    return (body.whole() if isinstance(body, Encrypted) else body), used


def encrypted_body(
    ref: SegmentRef, clear: bytes | bytearray, cipher: SegmentCipher, iv: bytes | None
) -> tuple[bytes | bytearray | Encrypted, bytes]:
    """As :func:`encrypt_segment`, the encryption deferred: (``clear`` itself for the init
    segment, else an :class:`Encrypted` body; the IV used)."""
    if ref.index == urls.INIT:
        return clear, b""
    used = iv or sequence_iv(ref.sequence)
    return Encrypted(clear, cipher, used), used
