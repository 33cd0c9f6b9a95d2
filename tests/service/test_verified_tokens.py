"""Verified tokens remembered briefly by their exact bytes: a repeat skips the signature check
but never outlives the token, never crosses a key, a restriction or a reload, and stays bounded."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from origin.service.policy import TokenRestriction, check_token
from origin.service.tokens import jwt as jwt_module
from origin.service.tokens.jwt import VerificationKey
from origin.service.tokens.verified import VERIFIED, VerifiedTokens
from tests.support.policy_tokens import (
    AUDIENCE,
    ISSUER,
    KID,
    KID_CLAIM,
    NOW,
    OTHER_KID,
    PRIMARY,
    claims,
    hs,
    swt_token,
)


def _restriction(token_type: str = "jwt") -> TokenRestriction:
    return TokenRestriction(
        token_type=token_type,  # type: ignore[arg-type]
        issuer=ISSUER,
        audience=AUDIENCE,
        primary_key=VerificationKey.symmetric(PRIMARY),
        required_claims=(KID_CLAIM,),
    )


@pytest.fixture(autouse=True)
def empty() -> None:
    VERIFIED.clear()


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token whose signature is checked."""
    seen: list[str] = []
    real = jwt_module.verify

    def counting(token: str, keys: Any) -> dict[str, Any]:
        seen.append(token)
        return real(token, keys)

    monkeypatch.setattr(jwt_module, "verify", counting)  # policy calls jwt.verify through it
    return seen


def test_a_repeated_token_is_verified_once(verifications: list[str]) -> None:
    r, token = _restriction(), hs(claims())
    for k in range(5):
        assert check_token(r, token, kid=KID, now=NOW + k) is None
    assert len(verifications) == 1


def test_a_remembered_token_still_expires(verifications: list[str]) -> None:
    r, token = _restriction(), hs(claims(exp=NOW + 30))
    assert check_token(r, token, kid=KID, now=NOW) is None
    skew = r.clock_skew
    assert check_token(r, token, kid=KID, now=NOW + 30 + skew) == "token expired"
    assert len(verifications) == 2


def test_it_is_trusted_for_a_minute_at_most(verifications: list[str]) -> None:
    r, token = _restriction(), hs(claims())
    check_token(r, token, kid=KID, now=NOW)
    check_token(r, token, kid=KID, now=NOW + 59)
    check_token(r, token, kid=KID, now=NOW + 61)
    assert len(verifications) == 2


def test_a_clock_stepped_back_verifies_again(verifications: list[str]) -> None:
    r, token = _restriction(), hs(claims(nbf=NOW))
    assert check_token(r, token, kid=KID, now=NOW + 10) is None
    skew = r.clock_skew
    assert check_token(r, token, kid=KID, now=NOW - skew - 1) == "not yet valid"


def test_another_key_another_restriction_or_a_failure_is_never_taken_from_it(
    verifications: list[str],
) -> None:
    r, token = _restriction(), hs(claims())
    assert check_token(r, token, kid=KID, now=NOW) is None
    assert check_token(r, token, kid=OTHER_KID, now=NOW) == "token is for another key"
    assert check_token(_restriction(), token, kid=KID, now=NOW) is None  # a reloaded policy
    bad = hs(claims(), key=b"x" * 64)
    assert check_token(r, bad, kid=KID, now=NOW) is not None
    assert check_token(r, bad, kid=KID, now=NOW) is not None
    assert len(verifications) == 5


def test_swt_tokens_are_remembered_too() -> None:
    r, token = _restriction("swt"), swt_token()
    assert check_token(r, token, kid=KID, now=NOW) is None
    assert len(VERIFIED) == 1
    assert check_token(r, token, kid=KID, now=NOW + 1) is None


def test_the_cache_stays_within_its_bytes() -> None:
    cache = VerifiedTokens(budget=10_000)
    r = object()
    for k in range(1_000):
        cache.add(r, f"token-{k}-" + "x" * 100, uuid.uuid4(), NOW, NOW + 3600)
    assert 0 < cache.used <= 10_000 and len(cache) < 1_000
    cache.clear()
    assert cache.used == 0 and len(cache) == 0


def test_only_address_sized_strings_are_kept_by_the_address_cache() -> None:
    from origin.service import auth  # noqa: PLC0415

    before = auth._parse_short_ip.cache_info().currsize
    long_entry = "1.2.3.4" + " " * 100  # a client can send any X-Forwarded-For
    assert auth.client_ip("10.0.0.1", long_entry, ()) is not None
    assert auth._parse_ip(long_entry) == auth._parse_ip("1.2.3.4")
    after = auth._parse_short_ip.cache_info().currsize
    assert after <= before + 2  # "10.0.0.1" and "1.2.3.4", never the long one
