"""Envelope keys (seed 002: a KMS data key kept only as its "enveloped data key"): a content
key wrapped by a master key, with its key id and its authorization policy's name, as one opaque
token that travels in the key URI (``/key?kid=…&edk=…``) and sits in the catalog.

The wrap is AES Key Wrap with Padding (RFC 5649, from ``cryptography``): deterministic, so every
node and worker writes the same token for the same key (playlists stay byte-identical and CDN
friendly), and authenticated, so a changed byte fails to unwrap. The key id and the policy are
inside the wrap: a token cannot be replayed under another key id or with a looser policy.

Token (base64url, no padding): version 1 | length of the master key id | master key id (ASCII) |
RFC 5649 wrap of (key id 16 | key length 1 | key | policy name UTF-8, empty: open).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

VERSION = 1
MASTER_KEY_BYTES = 32  # AES-256 key-encryption keys
MASTER_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
MAX_TOKEN_CHARS = 512  # a 16-byte key and a policy name of 64 bytes need ~150


class EnvelopeError(ValueError):
    """An envelope that cannot be opened. ``malformed``: not a token at all (HTTP 400), else it
    does not open with the master key it names (tampered, or another master: 403)."""

    def __init__(self, reason: str, *, malformed: bool) -> None:
        super().__init__(reason)
        self.malformed = malformed


@dataclass(frozen=True, slots=True)
class Envelope:
    master_id: str  # which master key wraps it
    wrapped: bytes


@dataclass(frozen=True, slots=True)
class Opened:
    kid: uuid.UUID
    key: bytes = field(repr=False)
    policy: str | None


def seal(master: bytes, master_id: str, kid: uuid.UUID, key: bytes, policy: str | None) -> str:
    """The token of ``key`` under ``master``."""
    if not MASTER_ID.fullmatch(master_id):
        raise ValueError("a master key id is 1-32 of A-Z a-z 0-9 _ -")
    if not 1 <= len(key) <= 255:
        raise ValueError("a content key is 1-255 bytes")
    plain = kid.bytes + bytes([len(key)]) + key + (policy or "").encode()
    wrapped = aes_key_wrap_with_padding(master, plain)
    raw = bytes([VERSION, len(master_id)]) + master_id.encode("ascii") + wrapped
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def parse(token: str) -> Envelope:
    """The master key id and wrapped bytes of a token; EnvelopeError(malformed) if it is none."""
    if len(token) > MAX_TOKEN_CHARS:
        raise EnvelopeError("the envelope is too long", malformed=True)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise EnvelopeError("the envelope is not base64url", malformed=True) from None
    if len(raw) < 2 or raw[0] != VERSION:
        raise EnvelopeError("the envelope's version is not 1", malformed=True)
    end = 2 + raw[1]
    master_id = raw[2:end].decode("ascii", "replace")
    if not MASTER_ID.fullmatch(master_id) or len(raw) < end + 24:
        raise EnvelopeError("the envelope is truncated or damaged", malformed=True)
    return Envelope(master_id, raw[end:])


def open_envelope(master: bytes, envelope: Envelope) -> Opened:
    """The key inside; EnvelopeError (not malformed) when it does not unwrap."""
    try:
        plain = aes_key_unwrap_with_padding(master, envelope.wrapped)
    except (InvalidUnwrap, ValueError):
        raise EnvelopeError(
            f"the envelope does not open with master key {envelope.master_id!r}", malformed=False
        ) from None
    if len(plain) < 18 or len(plain) < 17 + plain[16]:
        raise EnvelopeError("the envelope's content is damaged", malformed=False)
    size = plain[16]
    try:
        policy = plain[17 + size :].decode()
    except UnicodeDecodeError:
        raise EnvelopeError("the envelope's policy is not UTF-8", malformed=False) from None
    return Opened(uuid.UUID(bytes=plain[:16]), plain[17 : 17 + size], policy or None)
