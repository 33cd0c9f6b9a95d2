"""Simple Web Tokens (SWT 0.9.5.1), the form AMS and ACS issue.

A token is form-encoded ``name=value`` pairs joined by ``&``, ending in ``&HMACSHA256=<sig>``
where ``sig`` is the URL-encoded standard base64 of HMAC-SHA256(key, every byte before
``&HMACSHA256=``). Names and values are URL-decoded (``+`` is a space) only after the signature
has been checked. Claims are checked by the caller (``policy``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from urllib.parse import quote_plus, unquote_plus

SIGNATURE = "HMACSHA256"
_SEPARATOR = "&" + SIGNATURE + "="


class SwtError(ValueError):
    """A refused token. ``str()`` is a short reason, safe to send to the client."""


def mac(key: bytes, body: str) -> bytes:
    return hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()


def verify(token: str, keys: Sequence[bytes]) -> dict[str, str]:
    """The decoded claims of a token signed by one of ``keys``.

    Raises SwtError("malformed token" | "bad signature"). Structure is checked before the
    signature so that a malformed token gets the same answer whatever the keys.
    """
    if not token.isascii():
        raise SwtError("malformed token")
    body, sep, sig_text = token.rpartition(_SEPARATOR)
    # The signature must be the last pair and appear once; anything after it would be unsigned.
    if not sep or not body or "&" in sig_text:
        raise SwtError("malformed token")
    pairs = [piece.partition("=") for piece in body.split("&")]
    if any(not name or not eq or name == SIGNATURE for name, eq, _ in pairs):
        raise SwtError("malformed token")
    try:
        signature = base64.b64decode(unquote_plus(sig_text, errors="strict"), validate=True)
    except (binascii.Error, ValueError):
        raise SwtError("malformed token") from None
    if len(signature) != hashlib.sha256().digest_size:
        raise SwtError("malformed token")
    if not any(hmac.compare_digest(mac(key, body), signature) for key in keys):
        raise SwtError("bad signature")
    claims: dict[str, str] = {}
    try:
        for name, _, value in pairs:
            decoded = unquote_plus(name, errors="strict")
            # A second signature or a repeated claim makes the token mean two things: refuse.
            if decoded == SIGNATURE or decoded in claims:
                raise SwtError("malformed token")
            claims[decoded] = unquote_plus(value, errors="strict")
    except UnicodeDecodeError:
        raise SwtError("malformed token") from None
    return claims


def sign(claims: Iterable[tuple[str, str]], key: bytes) -> str:
    """Encode ``claims`` in order and append the signature."""
    body = "&".join(f"{quote_plus(name)}={quote_plus(value)}" for name, value in claims)
    if not body:
        raise ValueError("an SWT needs at least one claim")
    signature = base64.b64encode(mac(key, body)).decode("ascii")
    return f"{body}{_SEPARATOR}{quote_plus(signature)}"
