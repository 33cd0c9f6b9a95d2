"""A token-protected config of the sample (a JWT/SWT policy, an IP-gated asset) and tokens for it,
shared by the end-to-end token tests and the browser token test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from urllib.parse import quote, urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from tests.support.server import ROOT, SAMPLE_KEY

KID = uuid.UUID("9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d")
OTHER_KID = uuid.UUID("11111111-2222-4333-8444-555555555555")
PRIMARY = bytes(range(64))
ALTERNATE = bytes(range(64, 128))
ISSUER, AUDIENCE = "http://testacs.com", "urn:test"
CK_CLAIM = "urn:microsoft:azure:mediaservices:contentkeyidentifier"
SAMPLE = ROOT / "origin" / "sample"
FILES = ", ".join(f'"{SAMPLE / f"sample_{n}.mp4"}"' for n in ("240p", "360p", "480p"))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def jwt_policy(name: str = "jwt") -> str:
    """A ``[policies.NAME]`` of one HS256 JWT option requiring the content key claim."""
    return f"""
[[policies.{name}.options]]
type = "token"
token_type = "jwt"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
primary_key = "{b64(PRIMARY)}"
required_claims = [{{ type = "{CK_CLAIM}" }}]
"""


def config_text(*, alternate: bool = True) -> str:
    alt = f'["{b64(ALTERNATE)}"]' if alternate else "[]"
    return f"""
[server]
trusted_proxies = ["127.0.0.1/32"]

[[assets]]
name = "secure"
files = [{FILES}]
segment_duration = 4.0
protection = "aes-128"
key_id = "{KID}"
key = "{SAMPLE_KEY.hex()}"
policy = "premium"

[[assets]]
name = "gated"
files = [{FILES}]
segment_duration = 4.0
protection = "aes-128"
key_id = "{OTHER_KID}"
key = "{"22" * 16}"
policy = "gated"
require_token = true
token_segments = true

[[policies.premium.options]]
name = "jwt"
type = "token"
token_type = "jwt"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
primary_key = "{b64(PRIMARY)}"
alternate_keys = {alt}
required_claims = [{{ type = "{CK_CLAIM}" }}, {{ type = "role", value = "premium" }}]
clock_skew = 60

[[policies.premium.options]]
name = "swt"
type = "token"
token_type = "swt"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
primary_key = "{b64(PRIMARY)}"

[[policies.premium.options]]
name = "office"
type = "ip"
ip = ["203.0.113.0/24"]

[[policies.gated.options]]
type = "token"
token_type = "jwt"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
primary_key = "{b64(PRIMARY)}"
ip = ["127.0.0.0/8", "198.51.100.0/24"]
"""


def make_jwt(
    key: bytes | RSAPrivateKey = PRIMARY,
    *,
    alg: str = "HS256",
    kid: uuid.UUID = KID,
    **over: object,
) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": ISSUER, "aud": AUDIENCE, "nbf": now - 10, "exp": now + 3 * 3600,
        CK_CLAIM: str(kid), "role": "premium",
    }  # fmt: skip
    claims.update(over)
    for name, value in list(claims.items()):
        if value is None:
            del claims[name]
    return jwt.encode(claims, key, algorithm=alg)


def make_swt(key: bytes = PRIMARY, *, expires: int | None = None, issuer: str = ISSUER) -> str:
    expires = expires or int(time.time()) + 3 * 3600
    body = urlencode([("Issuer", issuer), ("Audience", AUDIENCE), ("ExpiresOn", str(expires))])
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return body + "&HMACSHA256=" + quote(base64.b64encode(mac).decode(), safe="")
