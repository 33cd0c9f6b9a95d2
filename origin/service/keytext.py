"""Key material written as text in config files: base64 secrets, AES-128 content keys and IVs.

One base64 reading for every key: standard or URL-safe alphabet, padding optional, whitespace
ignored, anything else refused (a lenient decoder would skip a typo and yield another key).
"""

from __future__ import annotations

import base64
import binascii


def decode_base64(text: str) -> bytes | None:
    """Standard or URL-safe base64, padding optional; None if it is neither."""
    t = "".join(text.split())
    t += "=" * (-len(t) % 4)
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(t, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def parse_key(text: str) -> bytes | None:
    """16 bytes from 32 hex digits (optionally 0x-prefixed) or base64; None if neither."""
    t = text.strip()
    hex_text = t[2:] if t.lower().startswith("0x") else t
    if len(hex_text) == 32:
        try:
            return bytes.fromhex(hex_text)
        except ValueError:
            pass
    raw = decode_base64(t)
    return raw if raw is not None and len(raw) == 16 else None


def parse_iv(text: str) -> bytes | None:
    """16 bytes from 0x followed by 32 hex digits (the EXT-X-KEY IV form); None otherwise."""
    t = text.strip()
    if t[:2].lower() != "0x" or len(t) != 34:
        return None
    try:
        return bytes.fromhex(t[2:])
    except ValueError:
        return None
