"""Signing tokens that satisfy a restriction (``origin token``; AMS's GenerateTestToken).

The inverse of the checks in ``policy``: the restriction's issuer, audience and required claims,
an expiry ``ttl`` seconds ahead, signed with the primary key or a given private key.
"""

from __future__ import annotations

import uuid
from typing import Any

from origin.service.policy import CONTENT_KEY_CLAIM, TokenRestriction
from origin.service.tokens import jwt, swt

_RESERVED = {"jwt": {"iss", "aud", "exp", "nbf"}, "swt": {"Issuer", "Audience", "ExpiresOn"}}


def sign_token(
    restriction: TokenRestriction,
    *,
    kid: uuid.UUID | None,
    ttl: int,
    claims: dict[str, str],
    now: float,
    signing_key: bytes | None = None,
) -> str:
    """A token that satisfies ``restriction`` for ``ttl`` seconds from ``now``.

    Symmetric restrictions sign with the primary key (HS256 / HMACSHA256), or with
    ``signing_key`` as the raw secret. Asymmetric ones need ``signing_key``: a PEM private key
    matching one of the restriction's keys (RS256, or ES256/384/512 by curve).
    """
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    reserved = _RESERVED[restriction.token_type] & claims.keys()
    if reserved:
        raise ValueError(f"claims may not set {', '.join(sorted(reserved))}")
    values: dict[str, str] = {}
    if kid is not None:
        values[CONTENT_KEY_CLAIM] = str(kid)
    for claim in restriction.required_claims:
        if claim.value is not None:
            values[claim.type] = claim.value
        elif claim.type == CONTENT_KEY_CLAIM:
            if kid is None:
                raise ValueError("the restriction requires the content key claim: pass kid")
        elif claim.type not in claims:
            raise ValueError(f"required claim {claim.type} has no value: pass it in claims")
    values.update(claims)
    issued = int(now)
    key = _signing_key(restriction, signing_key)
    if restriction.token_type == "swt":
        assert isinstance(key, bytes)  # an SWT restriction only has symmetric keys
        pairs = [("Issuer", restriction.issuer), ("Audience", restriction.audience)]
        pairs += [*values.items(), ("ExpiresOn", str(issued + ttl))]
        return swt.sign(pairs, key)
    payload: dict[str, Any] = {
        "iss": restriction.issuer,
        "aud": restriction.audience,
        "nbf": issued,
        "exp": issued + ttl,
        **values,
    }
    return jwt.sign(payload, key, jwt.signing_algorithm(key))


def _signing_key(
    restriction: TokenRestriction, signing_key: bytes | None
) -> bytes | jwt.PrivateKey:
    primary = restriction.primary_key
    if primary.kind == "symmetric":
        if signing_key is None:
            assert isinstance(primary.material, bytes)
            return primary.material
        if len(signing_key) < jwt.SYMMETRIC_MIN_BYTES:
            raise ValueError(f"signing key must be at least {jwt.SYMMETRIC_MIN_BYTES} bytes")
        return signing_key
    if signing_key is None:
        raise ValueError("the primary key is asymmetric: sign with your STS (or pass signing_key)")
    private = jwt.load_private_key(signing_key)
    public = private.public_key().public_numbers()
    for key in restriction.keys:
        if not isinstance(key.material, bytes) and key.material.public_numbers() == public:
            return private
    raise ValueError("signing key matches none of the restriction's keys")
