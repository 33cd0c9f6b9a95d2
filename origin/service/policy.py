"""Content key authorization policies (AMS ContentKeyAuthorizationPolicy): model and evaluation.

Pure and synchronous: the HTTP layer extracts the token and the client address, calls
``authorize`` and turns the ``Decision`` into a response.

A policy has options and the key is delivered when ANY option is satisfied; an option is satisfied
when ALL of its restrictions pass (an open option has none). Token restrictions follow AMS's
TokenRestrictionTemplate: issuer, audience, a primary and alternate verification keys (rotation),
required claims, JWT or SWT.

Choices worth knowing:
- ``exp`` (SWT ``ExpiresOn``) is required; ``nbf`` is honoured when present; ``iat`` is ignored
  unless it is further in the future than the clock skew (a token minted by a clock that runs
  ahead is refused rather than trusted for longer than the issuer meant).
- ``iss`` and ``aud`` are required and compared exactly (no trailing-slash folding); ``aud`` may be
  a list in a JWT. A required claim with a value also matches a JWT list containing that value
  (multi-valued claims, as .NET maps them).
- The content key claim with no configured value must name the requested key id; UUIDs are
  compared as UUIDs (case, braces, ``urn:uuid:`` do not matter).
- Every comparison of claims and signatures is constant-time.
- Reasons are fixed short strings (plus a configured claim type): never token or key material.
"""

from __future__ import annotations

import hmac
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from origin.core.drm import NO_SYSTEMS, Systems
from origin.service.addresses import IPAddress, IPNetwork, in_networks
from origin.service.tokens import jwt, swt
from origin.service.tokens.jwt import TokenError, VerificationKey
from origin.service.tokens.verified import VERIFIED

CONTENT_KEY_CLAIM = "urn:microsoft:azure:mediaservices:contentkeyidentifier"
MAX_TOKEN_BYTES = 8192
DEFAULT_CLOCK_SKEW = 300
MAX_CLOCK_SKEW = 3600
REALM = "origin"

TokenType = Literal["jwt", "swt"]


@dataclass(frozen=True, slots=True)
class Claim:
    type: str
    value: str | None = None


@dataclass(frozen=True, slots=True)
class TokenRestriction:
    token_type: TokenType
    issuer: str
    audience: str
    primary_key: VerificationKey
    alternate_keys: tuple[VerificationKey, ...] = ()
    required_claims: tuple[Claim, ...] = ()
    clock_skew: int = DEFAULT_CLOCK_SKEW

    def __post_init__(self) -> None:
        if self.token_type not in ("jwt", "swt"):
            raise ValueError("token_type must be jwt or swt")
        if self.token_type == "swt" and any(k.kind != "symmetric" for k in self.keys):
            raise ValueError("an SWT restriction needs symmetric keys")
        if not 0 <= self.clock_skew <= MAX_CLOCK_SKEW:
            raise ValueError(f"clock_skew must be 0..{MAX_CLOCK_SKEW}")
        for claim in self.required_claims:
            if claim.type == CONTENT_KEY_CLAIM and claim.value is not None:
                uuid.UUID(claim.value)  # ValueError early rather than a refusal per request

    @property
    def keys(self) -> tuple[VerificationKey, ...]:
        return (self.primary_key, *self.alternate_keys)


@dataclass(frozen=True, slots=True)
class PolicyOption:
    name: str
    open: bool = False
    token: TokenRestriction | None = None
    ip: tuple[IPNetwork, ...] | None = None

    def __post_init__(self) -> None:
        restricted = self.token is not None or self.ip is not None
        if self.open == restricted:
            raise ValueError("an option is either open or has at least one restriction")


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    options: tuple[PolicyOption, ...]
    # The commercial DRM systems its Common Encryption streams are signalled for (the
    # operator's license servers); ClearKey (this origin's license service) always is.
    systems: Systems = NO_SYSTEMS


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    status: int
    reason: str
    www_authenticate: str | None = None
    option: str | None = None  # the option that allowed delivery, for the access log
    # Allowed by a token alone (an option with no address restriction): the same token is
    # allowed again, from anywhere, until then (its verification's trust, expiry included).
    until: float | None = None


_MISSING_TOKEN = f'Bearer realm="{REALM}"'
_DESCRIPTION_UNSAFE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")  # RFC 6750 §3 error_description


def authorize(
    policy: Policy,
    *,
    kid: uuid.UUID,
    token: str | None,
    client_ip: IPAddress | None,
    now: float,
) -> Decision:
    """Decide whether the key ``kid`` may be delivered under ``policy``.

    Options are tried in order and the first satisfied one wins. Otherwise: 401 "missing token"
    when some option wants a token and none came; 401 invalid_token with the first token option's
    reason when a token came and failed every token option; else 403 (a valid token refused by
    another restriction, or an address that no option lists).
    """
    token = token or None
    wants_token = False
    token_verified = False
    token_failure: str | None = None
    refusal: str | None = None
    for option in policy.options:
        if option.open:
            return Decision(True, 200, "ok", None, option.name)
        satisfied = True
        if option.token is not None:
            wants_token = True
            if token is None:
                satisfied = False
            else:
                failure = check_token(option.token, token, kid=kid, now=now)
                if failure is None:
                    token_verified = True
                else:
                    satisfied = False
                    token_failure = token_failure or failure
        if option.ip is not None and not in_networks(option.ip, client_ip):
            satisfied = False
            refusal = refusal or "address not allowed"
        if satisfied:
            until = None
            if option.token is not None and option.ip is None and token is not None:
                until = VERIFIED.trusted_until(option.token, token, kid, now)
            return Decision(True, 200, "ok", None, option.name, until)
    if wants_token and token is None:
        return Decision(False, 401, "missing token", _MISSING_TOKEN)
    if token_failure is not None and not token_verified:
        description = _DESCRIPTION_UNSAFE.sub("?", token_failure)
        challenge = f'Bearer error="invalid_token", error_description="{description}"'
        return Decision(False, 401, token_failure, challenge)
    return Decision(False, 403, refusal or "no option allows delivery")


def check_token(
    restriction: TokenRestriction, token: str, *, kid: uuid.UUID, now: float
) -> str | None:
    """None when ``token`` satisfies ``restriction``, else a short reason safe to send."""
    if len(token) > MAX_TOKEN_BYTES:
        return "token too large"
    if VERIFIED.hit(restriction, token, kid, now):
        return None
    try:
        if restriction.token_type == "jwt":
            claims: Mapping[str, Any] = jwt.verify(token, restriction.keys)
            failure = _check_jwt_claims(restriction, claims, kid, now)
            expires = "exp"
        else:
            secrets = [k.material for k in restriction.keys if isinstance(k.material, bytes)]
            claims = swt.verify(token, secrets)
            failure = _check_swt_claims(restriction, claims, kid, now)
            expires = "ExpiresOn"
    except (TokenError, swt.SwtError) as e:
        return str(e)
    if failure is None:  # the claim checks passed: the expiry is a number (or digits)
        until = float(claims[expires]) + restriction.clock_skew
        VERIFIED.add(restriction, token, kid, now, until)
    return failure


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: str, b: str) -> bool:
    # surrogatepass: JSON can carry lone surrogates, which must compare unequal, not raise.
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


def _check_jwt_claims(
    r: TokenRestriction, claims: Mapping[str, Any], kid: uuid.UUID, now: float
) -> str | None:
    skew = r.clock_skew
    if "exp" not in claims:
        return "missing claim exp"
    exp = claims["exp"]
    if not _is_number(exp):
        return "invalid claim exp"
    if now >= exp + skew:
        return "token expired"
    if "nbf" in claims:
        nbf = claims["nbf"]
        if not _is_number(nbf):
            return "invalid claim nbf"
        if now + skew < nbf:
            return "not yet valid"
    if "iat" in claims:
        iat = claims["iat"]
        if not _is_number(iat):
            return "invalid claim iat"
        if iat > now + skew:
            return "not yet valid"
    iss = claims.get("iss")
    if iss is None:
        return "missing claim iss"
    if not isinstance(iss, str) or not _same(iss, r.issuer):
        return "wrong issuer"
    aud = claims.get("aud")
    if aud is None:
        return "missing claim aud"
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    # Compare against every entry (no early exit) so the time does not tell which one matched.
    matches = [isinstance(a, str) and _same(a, r.audience) for a in audiences]
    if not any(matches):
        return "wrong audience"
    return _check_required(r, claims, kid)


_DIGITS = re.compile(r"[0-9]{1,12}")


def _check_swt_claims(
    r: TokenRestriction, claims: Mapping[str, str], kid: uuid.UUID, now: float
) -> str | None:
    expires = claims.get("ExpiresOn")
    if expires is None:
        return "missing claim ExpiresOn"
    if not _DIGITS.fullmatch(expires):
        return "invalid claim ExpiresOn"
    if now >= int(expires) + r.clock_skew:
        return "token expired"
    issuer = claims.get("Issuer")
    if issuer is None:
        return "missing claim Issuer"
    if not _same(issuer, r.issuer):
        return "wrong issuer"
    audience = claims.get("Audience")
    if audience is None:
        return "missing claim Audience"
    if not _same(audience, r.audience):
        return "wrong audience"
    return _check_required(r, claims, kid)


def _same_kid(value: object, expected: uuid.UUID) -> bool:
    if not isinstance(value, str):
        return False
    try:
        got = uuid.UUID(value.strip())
    except ValueError:
        return False
    return hmac.compare_digest(got.bytes, expected.bytes)


def _claim_matches(value: object, expected: str) -> bool:
    if isinstance(value, str):
        return _same(value, expected)
    if isinstance(value, list):
        return any([isinstance(v, str) and _same(v, expected) for v in value])
    return False


def _check_required(r: TokenRestriction, claims: Mapping[str, Any], kid: uuid.UUID) -> str | None:
    for claim in r.required_claims:
        if claim.type not in claims:
            return f"missing claim {claim.type}"
        value = claims[claim.type]
        if claim.type == CONTENT_KEY_CLAIM:
            expected = kid if claim.value is None else uuid.UUID(claim.value)
            if not _same_kid(value, expected):
                return "token is for another key"
        elif claim.value is not None and not _claim_matches(value, claim.value):
            return f"claim {claim.type} has the wrong value"
    return None
