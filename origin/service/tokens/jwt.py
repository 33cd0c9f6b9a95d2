"""JSON Web Tokens (RFC 7519, JWS compact form) for content key authorization.

PyJWT supplies the signature algorithms and signing. The compact form is parsed here, strictly and
once, so that the header's ``alg`` is checked against the key *before* any verification (RFC 8725
§3.1: no HS/RS confusion, never ``none``) and so that a malformed token gets the same answer
whatever keys are configured. Claims are checked by the caller (``policy``); this module only
answers "which of these keys signed this, and what does it say".
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import Algorithm

from origin.service.keytext import decode_base64

KeyKind = Literal["symmetric", "rsa", "ec"]
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# RFC 7518 §3.2: an HMAC key must be at least as long as the hash output, so a key allows only
# the HS algorithms it is long enough for (and PyJWT never warns about short keys at run time).
SYMMETRIC_MIN_BYTES = 32
_HMAC = (("HS256", 32), ("HS384", 48), ("HS512", 64))
_RSA = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
RSA_MIN_BITS = 2048
# RFC 7518 §3.4 ties each ES algorithm to one curve.
_EC = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class TokenError(ValueError):
    """A refused token. ``str()`` is a short reason, safe to send to the client."""


@dataclass(frozen=True, slots=True, eq=False)
class VerificationKey:
    """A key that may verify tokens, with the algorithms it is pinned to.

    ``material`` is the shared secret (symmetric) or a public key object; it is kept out of the
    repr. ``algorithms`` defaults to every algorithm the key is fit for; a subset pins it further.
    """

    kind: KeyKind
    material: bytes | PublicKey = field(repr=False)
    algorithms: frozenset[str] = frozenset()
    _prepared: Mapping[str, tuple[Algorithm, Any]] = field(
        init=False, repr=False, default_factory=dict
    )
    # The secret, or the public key's DER: equality and hashing by value (cryptography's key
    # objects are not hashable), so policies compare and hash like the rest of the config.
    _canonical: bytes = field(init=False, repr=False, default=b"")

    def __post_init__(self) -> None:
        fit = _fit_algorithms(self.kind, self.material)
        algs = self.algorithms or fit
        if not algs <= fit:
            raise ValueError(f"algorithms {sorted(algs - fit)} do not fit this {self.kind} key")
        prepared = {}
        for name in algs:
            alg = jwt.get_algorithm_by_name(name)
            try:
                prepared[name] = (alg, alg.prepare_key(self.material))
            except jwt.InvalidKeyError:
                # PyJWT refuses HMAC secrets that look like PEM/DER keys: the confusion attack's
                # raw material. The message is ours so that nothing of the key is repeated.
                raise ValueError(
                    "looks like an asymmetric key or certificate, not a shared secret"
                ) from None
        object.__setattr__(self, "algorithms", frozenset(algs))
        object.__setattr__(self, "_prepared", prepared)
        if isinstance(self.material, bytes):
            canonical = self.material
        else:
            canonical = self.material.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        object.__setattr__(self, "_canonical", canonical)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerificationKey):
            return NotImplemented
        return (
            self.kind == other.kind
            and self.algorithms == other.algorithms
            and hmac.compare_digest(self._canonical, other._canonical)
        )

    def __hash__(self) -> int:
        # A digest, not the secret itself, goes into the hash.
        return hash((self.kind, self.algorithms, hashlib.sha256(self._canonical).digest()))

    @classmethod
    def symmetric(cls, secret: bytes) -> VerificationKey:
        return cls("symmetric", secret)

    @classmethod
    def from_text(cls, text: str) -> VerificationKey:
        """A symmetric key from standard or URL-safe base64 (padding optional)."""
        secret = decode_base64(text)
        if secret is None:
            raise ValueError("must be base64 (standard or URL-safe)")
        return cls("symmetric", secret)

    @classmethod
    def from_pem(cls, data: bytes) -> VerificationKey:
        """An RSA or EC public key from a PEM public key or a PEM X.509 certificate.

        A certificate only carries the key: its validity dates and chain are not checked (AMS's
        X509CertTokenVerificationKey does the same).
        """
        key: Any
        if b"PRIVATE KEY-----" in data:
            raise ValueError("is a private key: give the public key or certificate")
        try:
            if b"-----BEGIN CERTIFICATE-----" in data:
                key = x509.load_pem_x509_certificate(data).public_key()
            else:
                key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError):
            raise ValueError("is not a PEM public key or certificate") from None
        if isinstance(key, rsa.RSAPublicKey):
            return cls("rsa", key)
        if isinstance(key, ec.EllipticCurvePublicKey):
            return cls("ec", key)
        raise ValueError("must be an RSA or EC (P-256, P-384, P-521) key")

    def verify(self, alg: str, signing_input: bytes, signature: bytes) -> bool:
        entry = self._prepared.get(alg)
        if entry is None:
            return False
        algorithm, prepared = entry
        try:
            return bool(algorithm.verify(signing_input, prepared, signature))
        except ValueError:  # e.g. an ECDSA signature of the wrong length
            return False


def _fit_algorithms(kind: str, material: object) -> frozenset[str]:
    if kind == "symmetric":
        if not isinstance(material, bytes):
            raise ValueError("a symmetric key must be bytes")
        if len(material) < SYMMETRIC_MIN_BYTES:
            raise ValueError(f"must be at least {SYMMETRIC_MIN_BYTES} bytes (RFC 7518 §3.2)")
        return frozenset(name for name, size in _HMAC if len(material) >= size)
    if kind == "rsa":
        if not isinstance(material, rsa.RSAPublicKey):
            raise ValueError("an rsa key must be an RSA public key")
        if material.key_size < RSA_MIN_BITS:
            raise ValueError(f"RSA key must have at least {RSA_MIN_BITS} bits")
        return _RSA
    if kind == "ec":
        if not isinstance(material, ec.EllipticCurvePublicKey):
            raise ValueError("an ec key must be an EC public key")
        alg = _EC.get(material.curve.name)
        if alg is None:
            raise ValueError("EC key must be on P-256, P-384 or P-521")
        return frozenset({alg})
    raise ValueError("kind must be symmetric, rsa or ec")


_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def _b64url(segment: str) -> bytes:
    # Strict and canonical: a token has exactly one spelling, so nothing can be smuggled in
    # padding bits or characters a lenient decoder would skip.
    if len(segment) % 4 == 1 or not _B64URL.fullmatch(segment):
        raise TokenError("malformed token")
    standard = segment.encode("ascii").translate(_TO_STANDARD) + b"=" * (-len(segment) % 4)
    raw = binascii.a2b_base64(standard)
    if binascii.b2a_base64(raw, newline=False) != standard:
        raise TokenError("malformed token")
    return raw


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 7519 §4: refuse duplicate member names rather than guess which one the issuer meant.
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate member")
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN / Infinity: an exp of Infinity never expires


def _finite_float(text: str) -> float:
    # JSON has no infinity, but float("1e400") is one: an exp of 1e400 would never expire.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


_JSON = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_float=_finite_float
)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = _JSON.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise TokenError("malformed token") from None
    if not isinstance(value, dict):
        raise TokenError("malformed token")
    return value


def verify(token: str, keys: Sequence[VerificationKey]) -> dict[str, Any]:
    """The claims of a JWS compact token signed by one of ``keys`` (tried in order).

    Raises TokenError("malformed token" | "unsupported token header" | "algorithm not allowed" |
    "bad signature"). Claims are *not* validated here.
    """
    if not token.isascii():
        raise TokenError("malformed token")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("malformed token")
    header = _json_object(_b64url(parts[0]))
    payload = _json_object(_b64url(parts[1]))
    signature = _b64url(parts[2])
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenError("malformed token")
    # b64=false (RFC 7797) changes what is signed and crit names extensions we don't implement.
    if "crit" in header or "b64" in header:
        raise TokenError("unsupported token header")
    # The header's alg picks among the keys' pinned algorithms and never the other way round:
    # a key only ever verifies with an algorithm of its own kind, so "none" and HS-with-a-public-
    # key fall out here, before any signature is computed.
    candidates = [k for k in keys if alg in k.algorithms]
    if not candidates:
        raise TokenError("algorithm not allowed")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    for key in candidates:
        if key.verify(alg, signing_input, signature):
            return payload
    raise TokenError("bad signature")


def load_private_key(pem: bytes) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ValueError("signing key is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("signing key must be RSA or EC")
    return key


def sign(
    claims: Mapping[str, Any],
    key: bytes | PrivateKey,
    algorithm: str,
) -> str:
    return jwt.encode(dict(claims), key, algorithm=algorithm)


def signing_algorithm(key: bytes | PrivateKey) -> str:
    """HS256 for secrets, RS256 for RSA, ES256/384/512 by curve."""
    if isinstance(key, bytes):
        return "HS256"
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    alg = _EC.get(key.curve.name)
    if alg is None:
        raise ValueError("EC signing key must be on P-256, P-384 or P-521")
    return alg
