"""Policy tables from the config: every problem reported, never with key material."""

from __future__ import annotations

import base64
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import jwt
import pytest

from origin.service.config.policies import parse_policy
from origin.service.policy import (
    CONTENT_KEY_CLAIM,
    Claim,
    Policy,
    authorize,
)
from tests.support.policy_tokens import (
    ALTERNATE,
    ALTERNATE_B64,
    AUDIENCE,
    DROP,
    EC_PUBLIC_PEM,
    INSIDE,
    ISSUER,
    KID,
    KID_CLAIM,
    NOW,
    PRIMARY_B64,
    RSA_CERT_PEM,
    RSA_KEY,
    claims,
    private_pem,
)

# -- config ----------------------------------------------------------------------------------------


def parse(table: dict[str, Any], base: Path = Path("/nonexistent")) -> tuple[Any, list[str]]:
    return parse_policy("premium", table, where="policies.premium", base=base)


def test_parse_full(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "sts.pem").write_bytes(RSA_CERT_PEM)
    (tmp_path / "keys" / "ec.pem").write_bytes(EC_PUBLIC_PEM)
    (tmp_path / "keys" / "old.b64").write_text(ALTERNATE_B64 + "\n")
    table = {
        "options": [
            {
                "name": "jwt",
                "type": "token",
                "token_type": "jwt",
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "primary_key_file": "keys/sts.pem",
                "alternate_keys": [PRIMARY_B64],
                "alternate_key_files": ["keys/ec.pem", "keys/old.b64"],
                "required_claims": [{"type": CONTENT_KEY_CLAIM}, {"type": "role", "value": "p"}],
                "clock_skew": 60,
                "ip": ["203.0.113.0/24", "2001:db8::/32"],
            },
            {
                "name": "x",
                "type": "token",
                "token_type": "swt",
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "primary_key": PRIMARY_B64,
            },
            {"type": "ip", "ip": ["198.51.100.7"]},
            {"type": "open"},
        ]
    }
    p, problems = parse(table, tmp_path)
    assert problems == []
    assert isinstance(p, Policy)
    assert p.name == "premium"
    assert [o.name for o in p.options] == ["jwt", "x", "options[2]", "options[3]"]
    jwt_opt, swt_opt, ip_opt, open_opt = p.options
    assert jwt_opt.token is not None
    assert jwt_opt.token.primary_key.kind == "rsa"
    assert [k.kind for k in jwt_opt.token.alternate_keys] == ["symmetric", "ec", "symmetric"]
    assert jwt_opt.token.alternate_keys[2].material == ALTERNATE
    assert jwt_opt.token.required_claims == (KID_CLAIM, Claim("role", "p"))
    assert jwt_opt.token.clock_skew == 60
    assert jwt_opt.ip == (ip_network("203.0.113.0/24"), ip_network("2001:db8::/32"))
    assert swt_opt.token is not None and swt_opt.token.token_type == "swt"
    assert swt_opt.token.clock_skew == 300 and swt_opt.ip is None
    assert ip_opt.ip == (ip_network("198.51.100.7/32"),) and ip_opt.token is None
    assert open_opt.open
    # The parsed policy works end to end.
    token = jwt.encode(claims(role="p"), RSA_KEY, algorithm="RS256")
    d = authorize(p, kid=KID, token=token, client_ip=INSIDE, now=NOW)
    assert d.allowed and d.option == "jwt"


def token_table(**changes: Any) -> dict[str, Any]:
    option: dict[str, Any] = {
        "type": "token",
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "primary_key": PRIMARY_B64,
    }
    for name, value in changes.items():
        if value is DROP:
            option.pop(name)
        else:
            option[name] = value
    return {"options": [option]}


SHORT_B64 = base64.b64encode(b"sixteen byte key").decode()
W = "policies.premium.options[0]"

PARSE_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("not a table", "nope", "policies.premium: must be a table"),  # type: ignore[list-item]
    ("no options", {}, "policies.premium.options: at least one option is required"),
    ("empty options", {"options": []}, "policies.premium.options: must be a non-empty array"),
    (
        "unknown policy field",
        {"options": [{"type": "open"}], "x": 1},
        "policies.premium.x: unknown",
    ),
    ("option not a table", {"options": ["open"]}, f"{W}: must be a table"),
    ("missing type", {"options": [{}]}, f"{W}.type: is required: open, token or ip"),
    ("bad type", {"options": [{"type": "magic"}]}, f"{W}.type: must be one of open, token, ip"),
    ("unknown option field", token_table(colour="red"), f"{W}.colour: unknown field"),
    (
        "open with restrictions",
        {"options": [{"type": "open", "ip": ["10.0.0.0/8"]}]},
        f"{W}: an open option takes no restrictions (remove ip)",
    ),
    ("ip without ip", {"options": [{"type": "ip"}]}, f'{W}.ip: is required for type = "ip"'),
    (
        "token field on ip option",
        {"options": [{"type": "ip", "ip": ["10.0.0.0/8"], "issuer": "x"}]},
        f'{W}.issuer: is only for type = "token"',
    ),
    (
        "ip not a string",
        {"options": [{"type": "ip", "ip": [5]}]},
        f"{W}.ip[0]: 5 is not an address",
    ),
    ("empty ip list", {"options": [{"type": "ip", "ip": []}]}, f"{W}.ip: must be a non-empty"),
    (
        "bad network",
        {"options": [{"type": "ip", "ip": ["10.0.0.1/8"]}]},
        f"{W}.ip[0]: '10.0.0.1/8' is not an address or a network",
    ),
    ("missing issuer", token_table(issuer=DROP), f"{W}.issuer: is required"),
    ("empty audience", token_table(audience=""), f"{W}.audience: is required"),
    ("bad token type", token_table(token_type="saml"), f"{W}.token_type: must be jwt or swt"),
    ("no primary key", token_table(primary_key=DROP), f"{W}.primary_key: give exactly one"),
    (
        "both primary key forms",
        token_table(primary_key_file="k.pem"),
        f"{W}.primary_key: give exactly one",
    ),
    (
        "short key",
        token_table(primary_key=SHORT_B64),
        f"{W}.primary_key: must be at least 32 bytes (RFC 7518 §3.2) (value not shown)",
    ),
    (
        "not base64",
        token_table(primary_key="secret-but-not-base64!"),
        f"{W}.primary_key: must be base64 (standard or URL-safe) (value not shown)",
    ),
    (
        "key not a string",
        token_table(primary_key=12345),
        f"{W}.primary_key: must be a base64 string (value not shown)",
    ),
    (
        "short alternate",
        token_table(alternate_keys=[PRIMARY_B64, SHORT_B64]),
        f"{W}.alternate_keys[1]: must be at least 32 bytes",
    ),
    ("alternates not a list", token_table(alternate_keys=PRIMARY_B64), f"{W}.alternate_keys: must"),
    (
        "missing key file",
        token_table(primary_key=DROP, primary_key_file="keys/none.pem"),
        f"{W}.primary_key_file: cannot read /nonexistent/keys/none.pem: No such file",
    ),
    ("skew too large", token_table(clock_skew=86400), f"{W}.clock_skew: must be whole seconds"),
    ("skew boolean", token_table(clock_skew=True), f"{W}.clock_skew: must be whole seconds"),
    (
        "claims not a list",
        token_table(required_claims={"type": "x"}),
        f"{W}.required_claims: must be a list",
    ),
    (
        "claim without type",
        token_table(required_claims=[{"value": "x"}]),
        f"{W}.required_claims[0].type: is required",
    ),
    (
        "claim unknown field",
        token_table(required_claims=[{"type": "x", "vaule": "y"}]),
        f"{W}.required_claims[0].vaule: unknown field",
    ),
    (
        "claim value not a string",
        token_table(required_claims=[{"type": "x", "value": 1}]),
        f"{W}.required_claims[0].value: must be a string",
    ),
    (
        "content key claim value not a uuid",
        token_table(required_claims=[{"type": CONTENT_KEY_CLAIM, "value": "abc"}]),
        f"{W}.required_claims[0].value: the content key claim's value must be a key id",
    ),
    (
        "duplicate option names",
        {"options": [{"type": "open", "name": "a"}, {"type": "open", "name": "a"}]},
        "policies.premium.options[1].name: duplicate option name 'a'",
    ),
]


@pytest.mark.parametrize(
    ("table", "expected"), [c[1:] for c in PARSE_ERRORS], ids=[c[0] for c in PARSE_ERRORS]
)
def test_parse_errors(table: dict[str, Any], expected: str) -> None:
    p, problems = parse(table)
    assert p is None
    assert any(problem.startswith(expected) for problem in problems), problems
    for problem in problems:
        for secret in (PRIMARY_B64, SHORT_B64, "secret-but-not-base64!", "12345"):
            assert secret not in problem


def test_parse_bad_policy_name() -> None:
    _, problems = parse_policy("bad name", {"options": [{"type": "open"}]}, where="p", base=Path())
    assert problems == ["p: policy name 'bad name' must be letters, digits and . _ ~ -"]


def test_parse_key_files_never_echo_material(tmp_path: Path) -> None:
    (tmp_path / "private.pem").write_bytes(private_pem(RSA_KEY))
    (tmp_path / "short.b64").write_text(SHORT_B64)
    (tmp_path / "binary.key").write_bytes(b"\xff" * 64)
    (tmp_path / "cert.pem").write_bytes(RSA_CERT_PEM)
    table = token_table(
        primary_key=DROP,
        primary_key_file="private.pem",
        alternate_key_files=["short.b64", "binary.key"],
    )
    _, problems = parse(table, tmp_path)
    assert problems == [
        f"{W}.primary_key_file: {tmp_path}/private.pem is a private key: give the public key "
        "or certificate",
        f"{W}.alternate_key_files[0]: {tmp_path}/short.b64 must be at least 32 bytes "
        "(RFC 7518 §3.2)",
        f"{W}.alternate_key_files[1]: {tmp_path}/binary.key must hold a PEM public key or "
        "certificate, or base64 text",
    ]
    swt_table = token_table(token_type="swt", alternate_key_files=["cert.pem"])
    _, problems = parse(swt_table, tmp_path)
    assert problems == [
        f"{W}.alternate_key_files[0]: an swt restriction needs symmetric (base64) keys"
    ]


def test_parse_reports_every_problem() -> None:
    table = {"options": [{"type": "token", "primary_key": SHORT_B64}, {"type": "bogus"}]}
    _, problems = parse(table)
    assert len(problems) == 4, problems  # issuer, audience, primary_key, type
