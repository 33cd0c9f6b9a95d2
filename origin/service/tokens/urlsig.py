"""Signed segment URLs: what lets a viewer authorized for a manifest fetch its segments, checked
with one HMAC per segment request instead of a token verification.

An authorized manifest answer writes ``__token__=<token>`` on every segment and init segment URL
it lists. The token is Akamai's Edge Authorization token (EdgeAuth 2.0) format, so that an edge
that knows the key can check it without asking the origin::

    exp=<unix seconds>~acl=<path prefix>*~hmac=<hex HMAC-SHA256>

``hmac`` is HMAC-SHA256 under the shared key (given in hex) of the token text before ``~hmac=``.
``acl`` is a path as the origin sees it, ending in ``*`` to allow every path under it (the asset's
or channel's folder, ``/bbb.ism/*``); ``st=<unix seconds>`` (not valid before) is honoured when
present. One ACL per token (not Akamai's ``!``-separated lists).
"""

from __future__ import annotations

import hmac
from hashlib import sha256
from urllib.parse import quote

PARAM = "__token__"
_FIELDS = "~"
_SAFE = "/*~=!$&'()+,;:@"  # the token's own characters and what URL paths keep as they are


def sign(key: bytes, acl: str, exp: int) -> str:
    """The token allowing paths matching ``acl`` until ``exp`` (unix seconds)."""
    fields = f"exp={exp}{_FIELDS}acl={acl}"
    mac = hmac.digest(key, fields.encode(), sha256).hex()
    return f"{fields}{_FIELDS}hmac={mac}"


def query(key: bytes, acl: str, exp: int) -> str:
    """``__token__=…`` for a URL's query, encoded (ACL characters beyond a path's escaped)."""
    return f"{PARAM}={quote(sign(key, acl, exp), safe=_SAFE)}"


def check(key: bytes, token: str | None, path: str, now: float) -> str | None:
    """Why ``token`` does not allow ``path`` at ``now`` (None: it does). The reason never
    repeats the token."""
    if not token:
        return "this segment needs the signed URL of an authorized manifest"
    head, sep, mac = token.rpartition(f"{_FIELDS}hmac=")
    if not sep:
        return "malformed signed URL token"
    fields: dict[str, str] = {}
    for part in head.split(_FIELDS):
        name, eq, value = part.partition("=")
        if not eq or name in fields:
            return "malformed signed URL token"
        fields[name] = value
    # Bytes, not str: compare_digest refuses non-ASCII text, and a client sends any text.
    want = hmac.digest(key, head.encode("utf-8", "replace"), sha256).hex().encode()
    if not hmac.compare_digest(want, mac.lower().encode("utf-8", "replace")):
        return "bad signed URL signature"
    try:
        exp = int(fields["exp"])
        start = int(fields.get("st", "0"))
    except (KeyError, ValueError):
        return "malformed signed URL token"
    if now >= exp:
        return "signed URL expired"
    if now < start:
        return "signed URL not valid yet"
    acl = fields.get("acl")
    if acl is None:
        return "malformed signed URL token"
    allowed = path.startswith(acl[:-1]) if acl.endswith("*") else path == acl
    return None if allowed else "signed URL is for another path"
