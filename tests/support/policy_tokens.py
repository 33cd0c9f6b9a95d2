"""Keys, certificates and token makers shared by the policy tests (values derived, not captured)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import uuid
from ipaddress import ip_address
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from origin.service.policy import (
    CONTENT_KEY_CLAIM,
    Claim,
)
from origin.service.tokens import swt

NOW = 1_700_000_000
KID = uuid.UUID("da3813af-55e6-48e7-aa9f-a4d6031f7b4d")
OTHER_KID = uuid.UUID("2e6d36a7-a17c-4e9a-830d-eca23ad1a6f9")
ISSUER = "http://testacs.com/"
AUDIENCE = "urn:test"
# The seeds' SymmetricVerificationKey values (64 bytes each).
PRIMARY_B64 = (
    "E5BUHiN4vBdzUzdP0IWaHFMMU3D1uRZgF16TOhSfwwHGSw+Kbf0XqsHzEIYk11M372viB9vbiacsdcQksA0ftw=="
)
ALTERNATE_B64 = (
    "BklyAFiPTQsuJNKriQJBZHYaKM2CkCTDQX2bw9sMYuvEC9sjW0W7GUIBygQL/+POEeUqCYPnmEU2g0o1GW2Oqg=="
)
PRIMARY = base64.b64decode(PRIMARY_B64)
ALTERNATE = base64.b64decode(ALTERNATE_B64)
STRANGER = hashlib.sha512(b"not a configured key").digest()

MISSING = 'Bearer realm="origin"'


def invalid(reason: str) -> str:
    return f'Bearer error="invalid_token", error_description="{reason}"'


def self_signed(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sts.test")])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .sign(private, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def public_pem(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_pem(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_PUBLIC_PEM = public_pem(RSA_KEY)
RSA_CERT_PEM = self_signed(RSA_KEY)
EC_PUBLIC_PEM = public_pem(EC_KEY)
EC_CERT_PEM = self_signed(EC_KEY)

DROP = object()


def claims(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "nbf": NOW - 10,
        "exp": NOW + 3600,
        CONTENT_KEY_CLAIM: str(KID),
    }
    for alias, value in changes.items():
        name = {"kid": CONTENT_KEY_CLAIM}.get(alias, alias)
        if value is DROP:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def hs(payload: dict[str, Any], key: bytes = PRIMARY, alg: str = "HS256", **headers: Any) -> str:
    return jwt.encode(payload, key, algorithm=alg, headers=headers or None)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_jwt(
    header: dict[str, Any] | bytes,
    payload: dict[str, Any] | bytes,
    secret: bytes,
    digest: str = "sha256",
) -> str:
    """A token built by hand: an HMAC over whatever header and payload bytes we like (PyJWT's
    encoder refuses some of the broken tokens we need)."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    p = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64url(h)}.{b64url(p)}"
    sig = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(sig)}"


def flip_signature(token: str) -> str:
    """Change the signature's first character (always a canonical base64url change)."""
    head, _, sig = token.rpartition(".")
    return f"{head}.{'B' if sig[0] == 'A' else 'A'}{sig[1:]}"


def swt_token(**changes: str | object) -> str:
    pairs: dict[str, Any] = {
        "Issuer": ISSUER,
        "Audience": AUDIENCE,
        "ExpiresOn": str(NOW + 3600),
        CONTENT_KEY_CLAIM: str(KID),
    }
    key = changes.pop("key", PRIMARY)
    assert isinstance(key, bytes)
    for name, value in changes.items():
        if value is DROP:
            pairs.pop(name)
        else:
            pairs[name] = value
    return swt.sign(list(pairs.items()), key)


KID_CLAIM = Claim(CONTENT_KEY_CLAIM)
INSIDE = ip_address("203.0.113.7")
OUTSIDE = ip_address("198.51.100.7")
