"""Simple Web Tokens: the format, signed vectors and parse edge cases."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus

import pytest

from origin.service.tokens import swt

KEY = bytes(range(32))  # 000102…1f
KID = "da3813af-55e6-48e7-aa9f-a4d6031f7b4d"

# Written out by hand from the format: URL-encoded pairs (lowercase escapes, as AMS/ACS emit
# them), joined by "&". The signature was computed once, outside Python, with
#   KEY=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
#   printf '%s' "$BODY" | openssl dgst -sha256 -mac HMAC -macopt hexkey:$KEY -binary | base64
# giving YLBMSMf/i1sT2CHCPJr6oEIG9KZTKaoU7hRL9TJKDhw= (hex 60b04c48…4a0e1c), then URL-encoded by
# hand ("/" → %2F, "=" → %3D).
VECTOR_BODY = (
    "Issuer=http%3a%2f%2ftestacs.com%2f&Audience=urn%3atest&ExpiresOn=1700000000"
    "&urn%3amicrosoft%3aazure%3amediaservices%3acontentkeyidentifier="
    "da3813af-55e6-48e7-aa9f-a4d6031f7b4d"
)
VECTOR = VECTOR_BODY + "&HMACSHA256=YLBMSMf%2Fi1sT2CHCPJr6oEIG9KZTKaoU7hRL9TJKDhw%3D"
VECTOR_CLAIMS = {
    "Issuer": "http://testacs.com/",
    "Audience": "urn:test",
    "ExpiresOn": "1700000000",
    "urn:microsoft:azure:mediaservices:contentkeyidentifier": KID,
}


def signature(body: str, key: bytes = KEY) -> str:
    """The expected signature, computed independently of swt.py."""
    digest = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode("ascii"))


def signed(body: str, key: bytes = KEY) -> str:
    return f"{body}&HMACSHA256={signature(body, key)}"


def test_literal_vector() -> None:
    assert signature(VECTOR_BODY) == "YLBMSMf%2Fi1sT2CHCPJr6oEIG9KZTKaoU7hRL9TJKDhw%3D"
    assert swt.verify(VECTOR, [KEY]) == VECTOR_CLAIMS


def test_literal_vector_lowercase_escape_in_signature() -> None:
    # %2f and %2F decode alike; the signature covers only the text before &HMACSHA256=.
    token = VECTOR.replace("%2F", "%2f").replace("%3D", "%3d")
    assert swt.verify(token, [KEY]) == VECTOR_CLAIMS


def test_sign_matches_independent_hmac() -> None:
    claims = [("Issuer", "http://testacs.com/"), ("Audience", "urn:test"), ("role", "a b&c=d")]
    token = swt.sign(claims, KEY)
    body = "Issuer=http%3A%2F%2Ftestacs.com%2F&Audience=urn%3Atest&role=a+b%26c%3Dd"
    assert token == f"{body}&HMACSHA256={signature(body)}"
    assert swt.verify(token, [KEY]) == dict(claims)


def test_rotation_tries_every_key() -> None:
    other = b"\x55" * 32
    assert swt.verify(VECTOR, [other, KEY]) == VECTOR_CLAIMS
    with pytest.raises(swt.SwtError, match=r"^bad signature$"):
        swt.verify(VECTOR, [other])


def test_signature_covers_raw_text() -> None:
    # Same decoded claims, different escapes: the signature no longer matches.
    tampered = VECTOR.replace("urn%3atest", "urn%3Atest")
    with pytest.raises(swt.SwtError, match=r"^bad signature$"):
        swt.verify(tampered, [KEY])


def test_plus_and_percent20_both_decode_to_space() -> None:
    token = signed("Issuer=a+b&Audience=a%20b&ExpiresOn=1")
    assert swt.verify(token, [KEY]) == {"Issuer": "a b", "Audience": "a b", "ExpiresOn": "1"}


def test_empty_value_and_equals_in_value() -> None:
    token = signed("a=&b=x=y")
    assert swt.verify(token, [KEY]) == {"a": "", "b": "x=y"}


MALFORMED = {
    "no signature": "Issuer=a&Audience=b",
    "signature only": "HMACSHA256=" + signature(""),
    "signature not last": VECTOR_BODY + "&HMACSHA256=" + signature(VECTOR_BODY) + "&x=1",
    "signature duplicated": signed("a=1&HMACSHA256=" + signature("a=1")),
    "empty signature": VECTOR_BODY + "&HMACSHA256=",
    "bad base64 signature": VECTOR_BODY + "&HMACSHA256=%%%%",
    "signature not base64 alphabet": VECTOR_BODY + "&HMACSHA256=" + "*" * 44,
    "short signature": VECTOR_BODY + "&HMACSHA256=" + quote_plus(base64.b64encode(b"x" * 16)),
    "unencoded + in signature": VECTOR_BODY
    + "&HMACSHA256="
    + base64.b64encode(b"\xfb" * 32).decode(),  # '+' means space in form encoding
    "empty pair": signed("a=1&&b=2"),
    "pair without =": signed("a=1&b"),
    "empty name": signed("=1&b=2"),
    "repeated claim": signed("a=1&a=2"),
    "encoded signature name": signed("HMACSHA%3256=x&a=1"),
    "bad utf-8 escape": signed("a=%FF"),
    "non-ascii": signed("a=1") + "é",
}


@pytest.mark.parametrize("token", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed(token: str) -> None:
    with pytest.raises(swt.SwtError, match=r"^malformed token$"):
        swt.verify(token, [KEY])


def test_malformed_before_signature() -> None:
    # Structure is judged the same whatever the keys, so the answer does not depend on them.
    with pytest.raises(swt.SwtError, match=r"^malformed token$"):
        swt.verify("a=1&&b=2&HMACSHA256=" + signature("x"), [])


def test_sign_needs_a_claim() -> None:
    with pytest.raises(ValueError):
        swt.sign([], KEY)
