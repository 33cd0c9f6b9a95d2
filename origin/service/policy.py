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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any, Literal

from origin.service import jwt_tokens, swt
from origin.service.jwt_tokens import TokenError, VerificationKey

__all__ = [
    "CONTENT_KEY_CLAIM",
    "Claim",
    "Decision",
    "Policy",
    "PolicyOption",
    "TokenRestriction",
    "VerificationKey",
    "authorize",
    "bearer_token",
    "check_token",
    "client_ip",
    "ip_allowed",
    "parse_policy",
    "sign_token",
]

CONTENT_KEY_CLAIM = "urn:microsoft:azure:mediaservices:contentkeyidentifier"
MAX_TOKEN_BYTES = 8192
DEFAULT_CLOCK_SKEW = 300
MAX_CLOCK_SKEW = 3600
REALM = "origin"

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
TokenType = Literal["jwt", "swt"]
Report = Callable[[str, str], None]  # (field, what is wrong)


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


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    status: int
    reason: str
    www_authenticate: str | None = None
    option: str | None = None  # the option that allowed delivery, for the access log


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
        if option.ip is not None and not ip_allowed(option.ip, client_ip):
            satisfied = False
            refusal = refusal or "address not allowed"
        if satisfied:
            return Decision(True, 200, "ok", None, option.name)
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
    try:
        if restriction.token_type == "jwt":
            claims = jwt_tokens.verify(token, restriction.keys)
            return _check_jwt_claims(restriction, claims, kid, now)
        secrets = [k.material for k in restriction.keys if isinstance(k.material, bytes)]
        return _check_swt_claims(restriction, swt.verify(token, secrets), kid, now)
    except (TokenError, swt.SwtError) as e:
        return str(e)


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


def ip_allowed(networks: Sequence[IPNetwork], address: IPAddress | None) -> bool:
    return address is not None and any(address in net for net in networks)


def _parse_ip(text: str) -> IPAddress | None:
    t = text.strip()
    if t.startswith("["):  # [v6] or [v6]:port
        end = t.find("]")
        if end < 0 or (t[end + 1 :] and not t[end + 1 :].startswith(":")):
            return None
        t = t[1:end]
    elif t.count(":") == 1:  # v4:port
        t = t.partition(":")[0]
    try:
        addr = ip_address(t)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; match them against IPv4 networks.
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[IPNetwork]
) -> IPAddress | None:
    """The client's address: the direct peer, or, when the peer is a trusted proxy, the rightmost
    X-Forwarded-For entry that is not itself a trusted proxy.

    Only entries appended by trusted proxies are believed; anything further left could have been
    written by the client. Several X-Forwarded-For headers must be joined with "," in order. An
    entry that does not parse where an address must be gives None (unknown), which no address
    restriction allows.
    """
    addr = _parse_ip(peer) if peer else None
    if addr is None or not forwarded_for or not forwarded_for.strip():
        return addr
    if not ip_allowed(trusted_proxies, addr):
        return addr
    for entry in reversed(forwarded_for.split(",")):
        hop = _parse_ip(entry)
        if hop is None:
            return None
        addr = hop
        if not ip_allowed(trusted_proxies, hop):
            return hop
    return addr  # every hop is a trusted proxy: the furthest one is the client


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (``Bearer=<token>`` too, as Azure
    Media Player sends it); None for a missing header or another scheme."""
    if not authorization:
        return None
    scheme, token = authorization[:6], authorization[6:]
    if scheme.lower() != "bearer" or not token or token[0] not in " =":
        return None
    return token[1:].strip() or None


# -- signing (test tokens, like AMS's TokenRestrictionTemplateSerializer.GenerateTestToken) --------

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
    return jwt_tokens.sign(payload, key, jwt_tokens.signing_algorithm(key))


def _signing_key(
    restriction: TokenRestriction, signing_key: bytes | None
) -> bytes | jwt_tokens.PrivateKey:
    primary = restriction.primary_key
    if primary.kind == "symmetric":
        if signing_key is None:
            assert isinstance(primary.material, bytes)
            return primary.material
        if len(signing_key) < jwt_tokens.SYMMETRIC_MIN_BYTES:
            raise ValueError(f"signing key must be at least {jwt_tokens.SYMMETRIC_MIN_BYTES} bytes")
        return signing_key
    if signing_key is None:
        raise ValueError("the primary key is asymmetric: sign with your STS (or pass signing_key)")
    private = jwt_tokens.load_private_key(signing_key)
    public = private.public_key().public_numbers()
    for key in restriction.keys:
        if not isinstance(key.material, bytes) and key.material.public_numbers() == public:
            return private
    raise ValueError("signing key matches none of the restriction's keys")


# -- config ----------------------------------------------------------------------------------------

_OPTION_TYPES = ("open", "token", "ip")
_TOKEN_FIELDS = {
    "token_type", "issuer", "audience", "primary_key", "primary_key_file", "alternate_keys",
    "alternate_key_files", "required_claims", "clock_skew",
}  # fmt: skip
_OPTION_FIELDS = {"name", "type", "ip"} | _TOKEN_FIELDS
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]*")


def parse_policy(
    name: str, table: dict[str, Any], *, where: str, base: Path
) -> tuple[Policy | None, list[str]]:
    """Validate one ``[policies.NAME]`` table; every problem is reported, as
    ``"<where>.<field>: what is wrong"``. Key material is never repeated in a problem.

    Key files are relative to ``base``: a PEM public key or certificate (RSA, EC), or base64 text
    of a shared secret.
    """
    problems: list[str] = []
    if not isinstance(table, dict):
        return None, [f"{where}: must be a table"]
    if not _NAME.fullmatch(name):
        problems.append(f"{where}: policy name {name!r} must be letters, digits and . _ ~ -")
    for field_name in table:
        if field_name != "options":
            problems.append(f"{where}.{field_name}: unknown field")
    raw = table.get("options")
    options: list[PolicyOption] = []
    if raw is None:
        problems.append(f"{where}.options: at least one option is required ([[{where}.options]])")
    elif not isinstance(raw, list) or not raw:
        problems.append(f"{where}.options: must be a non-empty array of tables")
    else:
        names: set[str] = set()
        for i, t in enumerate(raw):
            option = _option(t, f"{where}.options[{i}]", f"options[{i}]", base, problems)
            if option is None:
                continue
            if option.name in names:
                problems.append(f"{where}.options[{i}].name: duplicate option name {option.name!r}")
            names.add(option.name)
            options.append(option)
    if problems:
        return None, problems
    return Policy(name, tuple(options)), []


def _option(
    t: object, where: str, default_name: str, base: Path, problems: list[str]
) -> PolicyOption | None:
    if not isinstance(t, dict):
        problems.append(f"{where}: must be a table")
        return None
    before = len(problems)

    def bad(field_name: str, what: str) -> None:
        problems.append(f"{where}.{field_name}: {what}" if field_name else f"{where}: {what}")

    for field_name in t:
        if field_name not in _OPTION_FIELDS:
            bad(field_name, "unknown field")
    name = t.get("name", default_name)
    if not isinstance(name, str) or not name:
        bad("name", "must be a non-empty string")
    kind = t.get("type")
    if kind is None:
        bad("type", "is required: open, token or ip")
    elif kind not in _OPTION_TYPES:
        bad("type", f"must be one of open, token, ip, got {kind!r}")
    ip = _networks(t["ip"], bad) if "ip" in t else None
    token = None
    if kind == "open":
        extra = sorted(set(t) - {"name", "type"})
        if extra:
            bad("", f"an open option takes no restrictions (remove {', '.join(extra)})")
    elif kind == "ip":
        if "ip" not in t:
            bad("ip", 'is required for type = "ip"')
        for field_name in sorted(_TOKEN_FIELDS & set(t)):
            bad(field_name, 'is only for type = "token"')
    elif kind == "token":
        token = _token(t, bad, base)
    if len(problems) > before:
        return None
    assert isinstance(name, str)
    return PolicyOption(name, open=kind == "open", token=token, ip=ip)


def _networks(raw: object, bad: Report) -> tuple[IPNetwork, ...] | None:
    if not isinstance(raw, list) or not raw:
        bad("ip", 'must be a non-empty list of networks like "203.0.113.0/24"')
        return None
    out: list[IPNetwork] = []
    for j, text in enumerate(raw):
        try:
            if not isinstance(text, str):
                raise TypeError(text)  # ip_network(5) would quietly mean 0.0.0.5
            out.append(ip_network(text))
        except (ValueError, TypeError):
            bad(f"ip[{j}]", f"{text!r} is not an address or a network without host bits set")
    return tuple(out)


def _token(t: dict[str, Any], report: Report, base: Path) -> TokenRestriction | None:
    failures: list[str] = []

    def bad(field_name: str, what: str) -> None:
        failures.append(field_name)
        report(field_name, what)

    token_type = t.get("token_type", "jwt")
    if token_type not in ("jwt", "swt"):
        bad("token_type", f"must be jwt or swt, got {token_type!r}")
    texts: dict[str, str] = {}
    for field_name in ("issuer", "audience"):
        value = t.get(field_name)
        if not isinstance(value, str) or not value:
            bad(field_name, "is required (a non-empty string)")
        else:
            texts[field_name] = value
    skew = t.get("clock_skew", DEFAULT_CLOCK_SKEW)
    if not isinstance(skew, int) or isinstance(skew, bool) or not 0 <= skew <= MAX_CLOCK_SKEW:
        bad("clock_skew", f"must be whole seconds, 0..{MAX_CLOCK_SKEW}")
    primary: VerificationKey | None = None
    primary_label = "primary_key_file" if "primary_key_file" in t else "primary_key"
    if ("primary_key" in t) == ("primary_key_file" in t):
        bad("primary_key", "give exactly one of primary_key or primary_key_file")
    elif "primary_key" in t:
        primary = _key_text(t["primary_key"], "primary_key", bad)
    else:
        primary = _key_file(t["primary_key_file"], "primary_key_file", base, bad)
    alternates: list[tuple[str, VerificationKey | None]] = []
    for field_name in ("alternate_keys", "alternate_key_files"):
        raw = t.get(field_name, [])
        if not isinstance(raw, list):
            bad(field_name, "must be a list")
            continue
        for j, value in enumerate(raw):
            label = f"{field_name}[{j}]"
            if field_name == "alternate_keys":
                alternates.append((label, _key_text(value, label, bad)))
            else:
                alternates.append((label, _key_file(value, label, base, bad)))
    if token_type == "swt":
        for label, key in [(primary_label, primary), *alternates]:
            if key is not None and key.kind != "symmetric":
                bad(label, "an swt restriction needs symmetric (base64) keys")
    claims = _claims(t.get("required_claims", []), bad)
    if failures or primary is None or claims is None:
        return None
    try:
        return TokenRestriction(
            token_type=token_type,
            issuer=texts["issuer"],
            audience=texts["audience"],
            primary_key=primary,
            alternate_keys=tuple(k for _, k in alternates if k is not None),
            required_claims=claims,
            clock_skew=skew,
        )
    except ValueError as e:  # already reported above; messages here carry no key material
        bad("", str(e))
        return None


def _key_text(value: object, label: str, bad: Report) -> VerificationKey | None:
    if not isinstance(value, str):
        bad(label, "must be a base64 string (value not shown)")
        return None
    try:
        return VerificationKey.from_text(value)
    except ValueError as e:
        bad(label, f"{e} (value not shown)")
        return None


def _key_file(value: object, label: str, base: Path, bad: Report) -> VerificationKey | None:
    if not isinstance(value, str) or not value:
        bad(label, "must be a path string")
        return None
    path = Path(value) if Path(value).is_absolute() else base / value
    try:
        data = path.read_bytes()
    except OSError as e:
        bad(label, f"cannot read {path}: {e.strerror or type(e).__name__}")
        return None
    except ValueError:  # a NUL in the path
        bad(label, f"cannot read {str(path)!r}: not a valid path")
        return None
    try:
        if b"-----BEGIN" in data:
            return VerificationKey.from_pem(data)
        return VerificationKey.from_text(data.decode("ascii"))
    except UnicodeDecodeError:
        bad(label, f"{path} must hold a PEM public key or certificate, or base64 text")
    except ValueError as e:
        bad(label, f"{path} {e}")
    return None


def _claims(raw: object, bad: Report) -> tuple[Claim, ...] | None:
    if not isinstance(raw, list):
        bad("required_claims", "must be a list of { type = ..., value = ... } tables")
        return None
    out: list[Claim] = []
    ok = True
    for j, c in enumerate(raw):
        label = f"required_claims[{j}]"
        if not isinstance(c, dict):
            bad(label, 'must be a table like { type = "role", value = "premium" }')
            ok = False
            continue
        for field_name in c:
            if field_name not in ("type", "value"):
                bad(f"{label}.{field_name}", "unknown field")
                ok = False
        claim_type, value = c.get("type"), c.get("value")
        if not isinstance(claim_type, str) or not claim_type:
            bad(f"{label}.type", "is required (a non-empty string)")
            ok = False
            continue
        if value is not None and not isinstance(value, str):
            bad(f"{label}.value", "must be a string")
            ok = False
            continue
        if claim_type == CONTENT_KEY_CLAIM and value is not None:
            try:
                uuid.UUID(value)
            except ValueError:
                bad(f"{label}.value", "the content key claim's value must be a key id (UUID)")
                ok = False
                continue
        out.append(Claim(claim_type, value))
    return tuple(out) if ok else None
