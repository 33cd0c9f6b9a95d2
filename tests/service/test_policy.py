"""Content key authorization policies: token checks, decisions, client address, signing."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from origin.service.auth import bearer_token, client_ip
from origin.service.policy import (
    CONTENT_KEY_CLAIM,
    Claim,
    Decision,
    Policy,
    PolicyOption,
    TokenRestriction,
    authorize,
)
from origin.service.tokens.jwt import VerificationKey
from origin.service.tokens.sign import sign_token
from tests.support.policy_tokens import (
    ALTERNATE,
    AUDIENCE,
    DROP,
    EC_CERT_PEM,
    EC_KEY,
    EC_PUBLIC_PEM,
    INSIDE,
    ISSUER,
    KID,
    KID_CLAIM,
    MISSING,
    NOW,
    OTHER_KID,
    OUTSIDE,
    PRIMARY,
    PRIMARY_B64,
    RSA_CERT_PEM,
    RSA_KEY,
    RSA_OTHER,
    RSA_PUBLIC_PEM,
    STRANGER,
    b64url,
    claims,
    flip_signature,
    hs,
    invalid,
    private_pem,
    public_pem,
    raw_jwt,
    swt_token,
)

SYM = VerificationKey.symmetric(PRIMARY)
SYM_ALT = VerificationKey.symmetric(ALTERNATE)


def restriction(
    primary: VerificationKey = SYM,
    *,
    token_type: str = "jwt",
    alternates: tuple[VerificationKey, ...] = (SYM_ALT,),
    required: tuple[Claim, ...] = (KID_CLAIM,),
) -> TokenRestriction:
    return TokenRestriction(
        token_type=token_type,  # type: ignore[arg-type]
        issuer=ISSUER,
        audience=AUDIENCE,
        primary_key=primary,
        alternate_keys=alternates,
        required_claims=required,
    )


def policy(*options: PolicyOption) -> Policy:
    return Policy("p", options)


def token_option(r: TokenRestriction | None = None, ip: tuple[str, ...] | None = None) -> Any:
    nets = tuple(ip_network(n) for n in ip) if ip is not None else None
    return PolicyOption("token", token=r or restriction(), ip=nets)


def ip_option(*nets: str) -> PolicyOption:
    return PolicyOption("ip", ip=tuple(ip_network(n) for n in nets))


JWT_SYM = policy(token_option())
JWT_ROLE = policy(token_option(restriction(required=(KID_CLAIM, Claim("role", "premium")))))
JWT_RSA = policy(token_option(restriction(VerificationKey.from_pem(RSA_PUBLIC_PEM), alternates=())))
JWT_RSA_CERT = policy(token_option(restriction(VerificationKey.from_pem(RSA_CERT_PEM))))
JWT_EC = policy(token_option(restriction(VerificationKey.from_pem(EC_PUBLIC_PEM), alternates=())))
JWT_EC_CERT = policy(token_option(restriction(VerificationKey.from_pem(EC_CERT_PEM))))
SWT_SYM = policy(token_option(restriction(token_type="swt")))
IP_ONLY = policy(ip_option("203.0.113.0/24", "2001:db8::/32"))
TOKEN_AND_IP = policy(token_option(ip=("203.0.113.0/24",)))
OPEN = policy(PolicyOption("open", open=True))
TOKEN_OR_IP = policy(token_option(), ip_option("203.0.113.0/24"))
JWT_OR_SWT = policy(token_option(), token_option(restriction(token_type="swt")))


@dataclass(frozen=True)
class Case:
    id: str
    policy: Policy
    token: str | None
    status: int
    reason: str
    www: str | None = None
    ip: IPv4Address | IPv6Address | None = INSIDE
    kid: uuid.UUID = KID


def ok(id: str, policy: Policy, token: str | None, **kw: Any) -> Case:
    return Case(id, policy, token, 200, "ok", **kw)


def bad(id: str, policy: Policy, token: str | None, reason: str, **kw: Any) -> Case:
    return Case(id, policy, token, 401, reason, invalid(reason), **kw)


CK_MISSING = f"missing claim {CONTENT_KEY_CLAIM}"
HEADER = b64url(b'{"alg":"HS256","typ":"JWT"}')
PAYLOAD = b64url(json.dumps(claims()).encode())

CASES = [
    Case("missing token", JWT_SYM, None, 401, "missing token", MISSING),
    Case("empty token is missing", JWT_SYM, "", 401, "missing token", MISSING),
    ok("valid HS256", JWT_SYM, hs(claims())),
    ok("valid HS512", JWT_SYM, hs(claims(), alg="HS512")),
    ok("valid via alternate key", JWT_SYM, hs(claims(), ALTERNATE)),
    bad("bad signature", JWT_SYM, hs(claims(), STRANGER), "bad signature"),
    bad("alg none", JWT_SYM, jwt.encode(claims(), "", algorithm="none"), "algorithm not allowed"),
    bad(
        "alg none, hand-made",
        JWT_SYM,
        b64url(b'{"alg":"none"}') + f".{PAYLOAD}.",
        "algorithm not allowed",
    ),
    bad(
        "HS256 with the RSA public PEM as secret (confusion)",
        JWT_RSA,
        raw_jwt({"alg": "HS256", "typ": "JWT"}, claims(), RSA_PUBLIC_PEM),
        "algorithm not allowed",
    ),
    bad(
        "RS256 against a symmetric key",
        JWT_SYM,
        jwt.encode(claims(), RSA_KEY, algorithm="RS256"),
        "algorithm not allowed",
    ),
    bad("alg missing", JWT_SYM, raw_jwt({"typ": "JWT"}, claims(), PRIMARY), "malformed token"),
    bad("expired", JWT_SYM, hs(claims(exp=NOW - 301)), "token expired"),
    bad("expired at skew boundary", JWT_SYM, hs(claims(exp=NOW - 300)), "token expired"),
    ok("expired but within skew", JWT_SYM, hs(claims(exp=NOW - 299))),
    bad("nbf in the future", JWT_SYM, hs(claims(nbf=NOW + 301)), "not yet valid"),
    ok("nbf within skew", JWT_SYM, hs(claims(nbf=NOW + 299))),
    ok("no nbf", JWT_SYM, hs(claims(nbf=DROP))),
    bad("iat in the future", JWT_SYM, hs(claims(iat=NOW + 301)), "not yet valid"),
    ok("iat within skew", JWT_SYM, hs(claims(iat=NOW + 299))),
    ok("iat long ago", JWT_SYM, hs(claims(iat=NOW - 86400 * 365))),
    bad(
        "iat not a number",
        JWT_SYM,
        raw_jwt({"alg": "HS256"}, claims(iat="now"), PRIMARY),
        "invalid claim iat",
    ),
    bad("wrong issuer", JWT_SYM, hs(claims(iss="http://evil.example/")), "wrong issuer"),
    bad("issuer without slash", JWT_SYM, hs(claims(iss="http://testacs.com")), "wrong issuer"),
    bad("issuer prefix", JWT_SYM, hs(claims(iss="http://testacs.com/x")), "wrong issuer"),
    bad(
        "issuer not a string",
        JWT_SYM,
        raw_jwt({"alg": "HS256"}, claims(iss=[ISSUER]), PRIMARY),
        "wrong issuer",
    ),
    bad("missing issuer", JWT_SYM, hs(claims(iss=DROP)), "missing claim iss"),
    bad("wrong audience", JWT_SYM, hs(claims(aud="urn:other")), "wrong audience"),
    ok("audience list containing ours", JWT_SYM, hs(claims(aud=["urn:other", AUDIENCE]))),
    bad("audience list without ours", JWT_SYM, hs(claims(aud=["urn:a", 5])), "wrong audience"),
    bad("missing audience", JWT_SYM, hs(claims(aud=DROP)), "missing claim aud"),
    bad("missing exp", JWT_SYM, hs(claims(exp=DROP)), "missing claim exp"),
    bad(
        "exp not a number",
        JWT_SYM,
        raw_jwt({"alg": "HS256"}, claims(exp=str(NOW + 60)), PRIMARY),
        "invalid claim exp",
    ),
    bad(
        "exp boolean",
        JWT_SYM,
        raw_jwt({"alg": "HS256"}, claims(exp=True), PRIMARY),
        "invalid claim exp",
    ),
    bad(
        "nbf not a number",
        JWT_SYM,
        raw_jwt({"alg": "HS256"}, claims(nbf="x"), PRIMARY),
        "invalid claim nbf",
    ),
    bad("missing content key claim", JWT_SYM, hs(claims(kid=DROP)), CK_MISSING),
    ok("required role", JWT_ROLE, hs(claims(role="premium"))),
    ok("required role in a list", JWT_ROLE, hs(claims(role=["basic", "premium"]))),
    bad("missing role", JWT_ROLE, hs(claims()), "missing claim role"),
    bad(
        "wrong role",
        JWT_ROLE,
        hs(claims(role="basic")),
        "claim role has the wrong value",
    ),
    bad(
        "role with a prefix of the value",
        JWT_ROLE,
        hs(claims(role="premium-ish")),
        "claim role has the wrong value",
    ),
    bad("role not a string", JWT_ROLE, hs(claims(role=1)), "claim role has the wrong value"),
    bad("kid for another key", JWT_SYM, hs(claims(kid=str(OTHER_KID))), "token is for another key"),
    bad(
        "token for kid requested with other kid",
        JWT_SYM,
        hs(claims()),
        "token is for another key",
        kid=OTHER_KID,
    ),
    ok("kid braces and upper case", JWT_SYM, hs(claims(kid="{" + str(KID).upper() + "}"))),
    bad("kid garbage", JWT_SYM, hs(claims(kid="not-a-uuid")), "token is for another key"),
    bad("kid a number", JWT_SYM, hs(claims(kid=KID.int)), "token is for another key"),
    bad("garbage", JWT_SYM, "garbage", "malformed token"),
    bad("two dots only", JWT_SYM, "..", "malformed token"),
    bad("two segments", JWT_SYM, f"{HEADER}.{PAYLOAD}", "malformed token"),
    bad("four segments", JWT_SYM, hs(claims()) + ".x", "malformed token"),
    bad("bad base64", JWT_SYM, "!!!.@@@.###", "malformed token"),
    bad("base64 with padding", JWT_SYM, f"{HEADER}=.{PAYLOAD}.xx", "malformed token"),
    bad("standard base64 alphabet", JWT_SYM, hs(claims())[:-2] + "+/", "malformed token"),
    bad(
        "non-canonical base64",
        JWT_SYM,
        f"{HEADER[:-1]}{chr(ord(HEADER[-1]) + 1)}.{PAYLOAD}.",
        "malformed token",
    ),
    bad("bad JSON header", JWT_SYM, f"{b64url(b'{not json')}.{PAYLOAD}.", "malformed token"),
    bad(
        "bad JSON payload, correctly signed",
        JWT_SYM,
        raw_jwt({"alg": "HS256"}, b'{"exp": ', PRIMARY),
        "malformed token",
    ),
    bad("payload an array", JWT_SYM, raw_jwt({"alg": "HS256"}, b"[1]", PRIMARY), "malformed token"),
    bad(
        "duplicate claim names",
        JWT_SYM,
        raw_jwt({"alg": "HS256"}, b'{"iss": "x", "iss": "y"}', PRIMARY),
        "malformed token",
    ),
    bad(
        "exp Infinity",
        JWT_SYM,
        raw_jwt({"alg": "HS256"}, b'{"exp": Infinity}', PRIMARY),
        "malformed token",
    ),
    bad(
        "exp 1e400 (a JSON number that overflows to infinity)",
        JWT_SYM,
        raw_jwt({"alg": "HS256"}, b'{"exp": 1e400}', PRIMARY),
        "malformed token",
    ),
    bad(
        "nbf -1e400 (negative infinity: valid since forever)",
        JWT_SYM,
        raw_jwt({"alg": "HS256"}, b'{"exp": 4102444800, "nbf": -1e400}', PRIMARY),
        "malformed token",
    ),
    bad(
        "NaN",
        JWT_SYM,
        raw_jwt({"alg": "HS256"}, b'{"exp": NaN}', PRIMARY),
        "malformed token",
    ),
    bad("non-ASCII", JWT_SYM, hs(claims()) + "é", "malformed token"),
    bad("oversized", JWT_SYM, hs(claims(pad="x" * 8192)), "token too large"),
    bad("oversized garbage", JWT_SYM, "x" * 8193, "token too large"),
    bad("at the size limit", JWT_SYM, "x" * 8192, "malformed token"),
    bad("crit header", JWT_SYM, hs(claims(), crit=["exp"]), "unsupported token header"),
    bad(
        "b64 header",
        JWT_SYM,
        raw_jwt({"alg": "HS256", "b64": True}, claims(), PRIMARY),
        "unsupported token header",
    ),
    ok("valid RS256, PEM public key", JWT_RSA, jwt.encode(claims(), RSA_KEY, algorithm="RS256")),
    ok("valid PS256, PEM public key", JWT_RSA, jwt.encode(claims(), RSA_KEY, algorithm="PS256")),
    ok("valid RS256, certificate", JWT_RSA_CERT, jwt.encode(claims(), RSA_KEY, algorithm="RS256")),
    ok("symmetric alternate of an RSA key", JWT_RSA_CERT, hs(claims(), ALTERNATE)),
    bad(
        "RS256 by another RSA key",
        JWT_RSA,
        jwt.encode(claims(), RSA_OTHER, algorithm="RS256"),
        "bad signature",
    ),
    bad(
        "RS256 signature altered",
        JWT_RSA,
        flip_signature(jwt.encode(claims(), RSA_KEY, algorithm="RS256")),
        "bad signature",
    ),
    ok("valid ES256, PEM public key", JWT_EC, jwt.encode(claims(), EC_KEY, algorithm="ES256")),
    ok("valid ES256, certificate", JWT_EC_CERT, jwt.encode(claims(), EC_KEY, algorithm="ES256")),
    bad(
        "ES384 header against a P-256 key",
        JWT_EC,
        raw_jwt({"alg": "ES384"}, claims(), b"x" * 32),
        "algorithm not allowed",
    ),
    bad(
        "ES256 with garbage signature",
        JWT_EC,
        raw_jwt({"alg": "ES256"}, claims(), b"x" * 32),
        "bad signature",
    ),
    ok("SWT valid", SWT_SYM, swt_token()),
    ok("SWT valid via alternate", SWT_SYM, swt_token(key=ALTERNATE)),
    bad("SWT expired", SWT_SYM, swt_token(ExpiresOn=str(NOW - 301)), "token expired"),
    ok("SWT expired within skew", SWT_SYM, swt_token(ExpiresOn=str(NOW - 299))),
    bad("SWT bad signature", SWT_SYM, swt_token(key=STRANGER), "bad signature"),
    bad("SWT wrong issuer", SWT_SYM, swt_token(Issuer="http://evil/"), "wrong issuer"),
    bad("SWT wrong audience", SWT_SYM, swt_token(Audience="urn:x"), "wrong audience"),
    bad("SWT missing ExpiresOn", SWT_SYM, swt_token(ExpiresOn=DROP), "missing claim ExpiresOn"),
    bad(
        "SWT ExpiresOn not digits", SWT_SYM, swt_token(ExpiresOn="1e99"), "invalid claim ExpiresOn"
    ),
    bad(
        "SWT missing content key claim", SWT_SYM, swt_token(**{CONTENT_KEY_CLAIM: DROP}), CK_MISSING
    ),
    bad(
        "SWT for another key",
        SWT_SYM,
        swt_token(**{CONTENT_KEY_CLAIM: str(OTHER_KID)}),
        "token is for another key",
    ),
    bad("JWT to an SWT option", SWT_SYM, hs(claims()), "malformed token"),
    ok("ip allowed", IP_ONLY, None),
    ok("ip allowed, v6", IP_ONLY, None, ip=ip_address("2001:db8::1")),
    Case("ip denied", IP_ONLY, None, 403, "address not allowed", ip=OUTSIDE),
    Case("ip unknown", IP_ONLY, None, 403, "address not allowed", ip=None),
    Case("ip denied, token sent", IP_ONLY, hs(claims()), 403, "address not allowed", ip=OUTSIDE),
    ok("token and ip", TOKEN_AND_IP, hs(claims())),
    Case(
        "token valid, wrong ip", TOKEN_AND_IP, hs(claims()), 403, "address not allowed", ip=OUTSIDE
    ),
    bad("token bad, wrong ip", TOKEN_AND_IP, hs(claims(), STRANGER), "bad signature", ip=OUTSIDE),
    Case("no token, wrong ip", TOKEN_AND_IP, None, 401, "missing token", MISSING, ip=OUTSIDE),
    ok("open", OPEN, None, ip=None),
    ok("open ignores a bad token", OPEN, "garbage"),
    ok("token or ip: no token, ip allowed", TOKEN_OR_IP, None),
    ok("token or ip: token, ip denied", TOKEN_OR_IP, hs(claims()), ip=OUTSIDE),
    Case("token or ip: neither", TOKEN_OR_IP, None, 401, "missing token", MISSING, ip=OUTSIDE),
    bad("token or ip: bad token", TOKEN_OR_IP, hs(claims(exp=0)), "token expired", ip=OUTSIDE),
    ok("jwt or swt: swt", JWT_OR_SWT, swt_token()),
    bad("jwt or swt: first reason wins", JWT_OR_SWT, hs(claims(exp=0)), "token expired"),
    bad("jwt or swt: garbage", JWT_OR_SWT, "garbage", "malformed token"),
    Case("no options", policy(), None, 403, "no option allows delivery"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_authorize(case: Case) -> None:
    decision = authorize(case.policy, kid=case.kid, token=case.token, client_ip=case.ip, now=NOW)
    assert (decision.status, decision.reason, decision.www_authenticate) == (
        case.status,
        case.reason,
        case.www,
    )
    assert decision.allowed == (case.status == 200)
    # Same inputs, same answer.
    again = authorize(case.policy, kid=case.kid, token=case.token, client_ip=case.ip, now=NOW)
    assert again == decision


def test_case_ids_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


def test_allowed_names_the_option() -> None:
    d = authorize(TOKEN_OR_IP, kid=KID, token=None, client_ip=INSIDE, now=NOW)
    assert d == Decision(True, 200, "ok", None, "ip")


def test_challenge_is_header_safe() -> None:
    r = restriction(required=(Claim('we"ird\\claim'),))
    d = authorize(policy(token_option(r)), kid=KID, token=hs(claims()), client_ip=None, now=NOW)
    assert d.reason == 'missing claim we"ird\\claim'
    assert d.www_authenticate == invalid("missing claim we?ird?claim")


# -- keys ------------------------------------------------------------------------------------------


def test_symmetric_key_length_picks_algorithms() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        VerificationKey.symmetric(b"k" * 31)
    assert VerificationKey.symmetric(b"k" * 32).algorithms == {"HS256"}
    assert VerificationKey.symmetric(b"k" * 48).algorithms == {"HS256", "HS384"}
    assert SYM.algorithms == {"HS256", "HS384", "HS512"}
    short = policy(token_option(restriction(VerificationKey.symmetric(b"k" * 32), alternates=())))
    token = raw_jwt({"alg": "HS512"}, claims(), b"k" * 32, "sha512")
    d = authorize(short, kid=KID, token=token, client_ip=None, now=NOW)
    assert d.reason == "algorithm not allowed"


def test_key_pinned_to_a_subset() -> None:
    only256 = VerificationKey("symmetric", PRIMARY, frozenset({"HS256"}))
    p = policy(token_option(restriction(only256, alternates=())))
    d = authorize(p, kid=KID, token=hs(claims(), alg="HS384"), client_ip=None, now=NOW)
    assert d.reason == "algorithm not allowed"
    with pytest.raises(ValueError, match="do not fit"):
        VerificationKey("symmetric", PRIMARY, frozenset({"RS256"}))


def test_key_text_forms() -> None:
    url_safe = base64.urlsafe_b64encode(ALTERNATE).decode().rstrip("=")
    assert VerificationKey.from_text(url_safe).material == ALTERNATE
    assert VerificationKey.from_text(PRIMARY_B64).material == PRIMARY
    with pytest.raises(ValueError, match="base64"):
        VerificationKey.from_text("not base64!")


def test_weak_or_unsuitable_asymmetric_keys() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="2048"):
        VerificationKey.from_pem(public_pem(small))
    with pytest.raises(ValueError, match="P-256"):
        VerificationKey.from_pem(public_pem(ec.generate_private_key(ec.SECP256K1())))
    with pytest.raises(ValueError, match="private key"):
        VerificationKey.from_pem(private_pem(RSA_KEY))
    with pytest.raises(ValueError, match="not a PEM"):
        VerificationKey.from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_pem_as_a_shared_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="asymmetric key"):
        VerificationKey.symmetric(RSA_PUBLIC_PEM)


def test_reprs_hide_key_material() -> None:
    p = policy(token_option(), token_option(restriction(VerificationKey.from_pem(RSA_PUBLIC_PEM))))
    text = repr(p)
    for secret in (PRIMARY, ALTERNATE):
        assert repr(secret) not in text
        assert base64.b64encode(secret).decode() not in text
        assert secret.hex() not in text
    assert "BEGIN" not in text
    assert "VerificationKey(kind='symmetric'" in text


# -- client address --------------------------------------------------------------------------------

PROXIES = [ip_network("10.0.0.0/8"), ip_network("fd00::/8")]

CLIENT_IP_CASES = [
    ("no proxy", "198.51.100.7", None, "198.51.100.7"),
    ("untrusted peer, spoofed XFF ignored", "198.51.100.7", "203.0.113.1", "198.51.100.7"),
    ("trusted peer, one hop", "10.0.0.2", "203.0.113.1", "203.0.113.1"),
    ("trusted peer, no XFF", "10.0.0.2", None, "10.0.0.2"),
    ("trusted peer, blank XFF", "10.0.0.2", "  ", "10.0.0.2"),
    (
        "spoofed entries left of the client",
        "10.0.0.2",
        "1.2.3.4, 203.0.113.1, 10.0.0.3",
        "203.0.113.1",
    ),
    ("garbage left of the client is never read", "10.0.0.2", "junk, 203.0.113.1", "203.0.113.1"),
    ("all hops trusted: the furthest", "10.0.0.2", "10.0.0.9, 10.0.0.3", "10.0.0.9"),
    ("unreadable hop from a trusted proxy", "10.0.0.2", "203.0.113.1, junk", None),
    ("empty hop", "10.0.0.2", "203.0.113.1,", None),
    ("IPv4 with port", "10.0.0.2", "203.0.113.1:5555", "203.0.113.1"),
    ("IPv6 in brackets with port", "fd00::1", "[2001:db8::1]:443", "2001:db8::1"),
    ("IPv6 bare", "fd00::1", "2001:db8::1", "2001:db8::1"),
    ("IPv4-mapped peer", "::ffff:198.51.100.7", None, "198.51.100.7"),
    ("IPv4-mapped trusted peer", "::ffff:10.0.0.2", "203.0.113.1", "203.0.113.1"),
    ("no peer (unix socket)", None, "203.0.113.1", None),
    ("unreadable peer", "nonsense", "203.0.113.1", None),
]


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [c[1:] for c in CLIENT_IP_CASES],
    ids=[c[0] for c in CLIENT_IP_CASES],
)
def test_client_ip(peer: str | None, xff: str | None, expected: str | None) -> None:
    got = client_ip(peer, xff, PROXIES)
    assert got == (ip_address(expected) if expected else None)


def test_client_ip_without_trusted_proxies() -> None:
    assert client_ip("10.0.0.2", "203.0.113.1", []) == ip_address("10.0.0.2")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer   abc", "abc"),
        ("Bearer=abc", "abc"),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic dXNlcjpwdw==", None),
        ("Bearerabc", None),
        (None, None),
        ("", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


# -- signing ---------------------------------------------------------------------------------------


def decide(p: Policy, token: str, *, now: float = NOW, kid: uuid.UUID = KID) -> Decision:
    return authorize(p, kid=kid, token=token, client_ip=INSIDE, now=now)


@pytest.mark.parametrize("p", [JWT_SYM, SWT_SYM], ids=["jwt", "swt"])
def test_sign_token_round_trip(p: Policy) -> None:
    r = p.options[0].token
    assert r is not None
    token = sign_token(r, kid=KID, ttl=600, claims={}, now=NOW)
    assert decide(p, token).allowed
    assert decide(p, token, now=NOW + 600 + 299).allowed  # within skew
    assert decide(p, token, now=NOW + 600 + 300).reason == "token expired"
    assert decide(p, token, kid=OTHER_KID).reason == "token is for another key"


def test_sign_token_claims_and_alternate_key() -> None:
    presence_only = restriction(required=(KID_CLAIM, Claim("tier")))
    with pytest.raises(ValueError, match="tier has no value"):
        sign_token(presence_only, kid=KID, ttl=60, claims={}, now=NOW)
    r = JWT_ROLE.options[0].token
    assert r is not None
    token = sign_token(r, kid=KID, ttl=60, claims={"role": "premium"}, now=NOW)
    assert decide(JWT_ROLE, token).allowed
    with pytest.raises(ValueError, match="may not set exp"):
        sign_token(r, kid=KID, ttl=60, claims={"exp": "1"}, now=NOW)
    with pytest.raises(ValueError, match="pass kid"):
        sign_token(r, kid=None, ttl=60, claims={"role": "premium"}, now=NOW)
    with pytest.raises(ValueError, match="ttl"):
        sign_token(r, kid=KID, ttl=0, claims={"role": "premium"}, now=NOW)
    rotated = sign_token(
        r, kid=KID, ttl=60, claims={"role": "premium"}, now=NOW, signing_key=ALTERNATE
    )
    assert jwt.get_unverified_header(rotated)["alg"] == "HS256"
    assert decide(JWT_ROLE, rotated).allowed
    unknown = sign_token(
        r, kid=KID, ttl=60, claims={"role": "premium"}, now=NOW, signing_key=STRANGER
    )
    assert decide(JWT_ROLE, unknown).reason == "bad signature"


@pytest.mark.parametrize(
    ("p", "private", "alg"),
    [(JWT_RSA_CERT, RSA_KEY, "RS256"), (JWT_EC, EC_KEY, "ES256")],
    ids=["rsa", "ec"],
)
def test_sign_token_asymmetric(
    p: Policy, private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, alg: str
) -> None:
    r = p.options[0].token
    assert r is not None
    with pytest.raises(ValueError, match="asymmetric: sign with your STS"):
        sign_token(r, kid=KID, ttl=60, claims={}, now=NOW)
    token = sign_token(r, kid=KID, ttl=60, claims={}, now=NOW, signing_key=private_pem(private))
    assert jwt.get_unverified_header(token)["alg"] == alg
    assert decide(p, token).allowed
    with pytest.raises(ValueError, match="matches none"):
        sign_token(r, kid=KID, ttl=60, claims={}, now=NOW, signing_key=private_pem(RSA_OTHER))
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        sign_token(r, kid=KID, ttl=60, claims={}, now=NOW, signing_key=RSA_PUBLIC_PEM)


def test_model_invariants() -> None:
    with pytest.raises(ValueError):
        PolicyOption("x")  # neither open nor restricted
    with pytest.raises(ValueError):
        PolicyOption("x", open=True, ip=(ip_network("10.0.0.0/8"),))
    with pytest.raises(ValueError):
        restriction(VerificationKey.from_pem(RSA_PUBLIC_PEM), token_type="swt")


def test_keys_compare_and_hash_by_value() -> None:
    rsa_a, rsa_b = VerificationKey.from_pem(RSA_PUBLIC_PEM), VerificationKey.from_pem(RSA_CERT_PEM)
    assert rsa_a == rsa_b and hash(rsa_a) == hash(rsa_b)  # same key, from a certificate
    assert rsa_a != VerificationKey.from_pem(public_pem(RSA_OTHER))
    assert VerificationKey.symmetric(PRIMARY) == SYM != SYM_ALT
    assert len({JWT_RSA, JWT_RSA_CERT, JWT_SYM, JWT_SYM}) == 3
