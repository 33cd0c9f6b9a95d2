"""The ``[policies.NAME]`` tables of the config, read into ``policy.Policy`` objects.

Key files are relative to the config file: a PEM public key or certificate (RSA, EC), or base64
text of a shared secret. Key material is never repeated in a problem.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from origin.core.drm import Systems
from origin.service.addresses import IPNetwork, parse_network
from origin.service.config.check import Checker
from origin.service.policy import (
    CONTENT_KEY_CLAIM,
    DEFAULT_CLOCK_SKEW,
    MAX_CLOCK_SKEW,
    Claim,
    Policy,
    PolicyOption,
    TokenRestriction,
)
from origin.service.tokens.jwt import VerificationKey

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
    ``"<where>.<field>: what is wrong"``. Key files are relative to ``base``."""
    c = Checker()
    t = c.table(table, where)
    if t is None:
        return None, c.problems
    if not _NAME.fullmatch(name):
        c.bad(where, f"policy name {name!r} must be letters, digits and . _ ~ -")
    c.unknown(t, {"options", "drm"}, where)
    systems = _systems(c, t.get("drm"), f"{where}.drm")
    raw = t.get("options")
    options: list[PolicyOption] = []
    if raw is None:
        c.bad(f"{where}.options", f"at least one option is required ([[{where}.options]])")
    elif not isinstance(raw, list) or not raw:
        c.bad(f"{where}.options", "must be a non-empty array of tables")
    else:
        names: set[str] = set()
        for i, option_table in enumerate(raw):
            option = _option(c, option_table, f"{where}.options[{i}]", f"options[{i}]", base)
            if option is None:
                continue
            if option.name in names:
                c.bad(f"{where}.options[{i}].name", f"duplicate option name {option.name!r}")
            names.add(option.name)
            options.append(option)
    if c.problems:
        return None, c.problems
    return Policy(name, tuple(options), systems), []


_DRM_FIELDS = {"playready_la_url", "widevine", "widevine_provider", "fairplay_uri"}


def _systems(c: Checker, raw: object, where: str) -> Systems:
    """``[policies.NAME.drm]``: the license servers of commercial DRM systems to signal."""
    if raw is None:
        return Systems()
    t = c.table(raw, where)
    if t is None:
        return Systems()
    c.unknown(t, _DRM_FIELDS, where)
    la_url = c.typed(t, "playready_la_url", where, str, None)
    if la_url is not None and not la_url.startswith(("https://", "http://")):
        c.bad(f"{where}.playready_la_url", "must be an http(s) URL")
    fairplay = c.typed(t, "fairplay_uri", where, str, None)
    if fairplay is not None and not fairplay.startswith("skd://"):
        c.bad(f"{where}.fairplay_uri", 'must be an skd:// URI (may contain "{kid}")')
    if fairplay is not None and any(ch in fairplay for ch in '"\r\n'):
        c.bad(f"{where}.fairplay_uri", "must not contain quotes or line breaks")
    return Systems(
        playready_la_url=la_url,
        widevine=c.typed(t, "widevine", where, bool, False),
        widevine_provider=c.typed(t, "widevine_provider", where, str, None),
        fairplay_uri=fairplay,
    )


def _option(
    c: Checker, raw: object, where: str, default_name: str, base: Path
) -> PolicyOption | None:
    t = c.table(raw, where)
    if t is None:
        return None
    before = len(c.problems)
    c.unknown(t, _OPTION_FIELDS, where)
    name = t.get("name", default_name)
    if not isinstance(name, str) or not name:
        c.bad(f"{where}.name", "must be a non-empty string")
    kind = t.get("type")
    if kind is None:
        c.bad(f"{where}.type", "is required: open, token or ip")
    elif kind not in _OPTION_TYPES:
        c.bad(f"{where}.type", f"must be one of open, token, ip, got {kind!r}")
    ip = _networks(c, t["ip"], f"{where}.ip") if "ip" in t else None
    token = None
    if kind == "open":
        extra = sorted(set(t) - {"name", "type"})
        if extra:
            c.bad(where, f"an open option takes no restrictions (remove {', '.join(extra)})")
    elif kind == "ip":
        if "ip" not in t:
            c.bad(f"{where}.ip", 'is required for type = "ip"')
        for field_name in sorted(_TOKEN_FIELDS & set(t)):
            c.bad(f"{where}.{field_name}", 'is only for type = "token"')
    elif kind == "token":
        token = _token(c, t, where, base)
    if len(c.problems) > before:
        return None
    assert isinstance(name, str)
    return PolicyOption(name, open=kind == "open", token=token, ip=ip)


def _networks(c: Checker, raw: object, where: str) -> tuple[IPNetwork, ...] | None:
    if not isinstance(raw, list) or not raw:
        c.bad(where, 'must be a non-empty list of networks like "203.0.113.0/24"')
        return None
    out: list[IPNetwork] = []
    for j, text in enumerate(raw):
        net = parse_network(text, strict=True)
        if net is None:
            c.bad(f"{where}[{j}]", f"{text!r} is not an address or a network without host bits set")
        else:
            out.append(net)
    return tuple(out)


def _token(c: Checker, t: dict[str, Any], where: str, base: Path) -> TokenRestriction | None:
    before = len(c.problems)
    token_type = t.get("token_type", "jwt")
    if token_type not in ("jwt", "swt"):
        c.bad(f"{where}.token_type", f"must be jwt or swt, got {token_type!r}")
    texts: dict[str, str] = {}
    for field_name in ("issuer", "audience"):
        value = t.get(field_name)
        if not isinstance(value, str) or not value:
            c.bad(f"{where}.{field_name}", "is required (a non-empty string)")
        else:
            texts[field_name] = value
    skew = t.get("clock_skew", DEFAULT_CLOCK_SKEW)
    if not isinstance(skew, int) or isinstance(skew, bool) or not 0 <= skew <= MAX_CLOCK_SKEW:
        c.bad(f"{where}.clock_skew", f"must be whole seconds, 0..{MAX_CLOCK_SKEW}")
    primary: VerificationKey | None = None
    primary_label = "primary_key_file" if "primary_key_file" in t else "primary_key"
    if ("primary_key" in t) == ("primary_key_file" in t):
        c.bad(f"{where}.primary_key", "give exactly one of primary_key or primary_key_file")
    elif "primary_key" in t:
        primary = _key_text(c, t["primary_key"], f"{where}.primary_key")
    else:
        primary = _key_file(c, t["primary_key_file"], f"{where}.primary_key_file", base)
    alternates: list[tuple[str, VerificationKey | None]] = []
    for field_name in ("alternate_keys", "alternate_key_files"):
        raw = t.get(field_name, [])
        if not isinstance(raw, list):
            c.bad(f"{where}.{field_name}", "must be a list")
            continue
        for j, value in enumerate(raw):
            label = f"{field_name}[{j}]"
            if field_name == "alternate_keys":
                alternates.append((label, _key_text(c, value, f"{where}.{label}")))
            else:
                alternates.append((label, _key_file(c, value, f"{where}.{label}", base)))
    if token_type == "swt":
        for label, key in [(primary_label, primary), *alternates]:
            if key is not None and key.kind != "symmetric":
                c.bad(f"{where}.{label}", "an swt restriction needs symmetric (base64) keys")
    claims = _claims(c, t.get("required_claims", []), f"{where}.required_claims")
    if len(c.problems) > before or primary is None or claims is None:
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
        c.bad(where, str(e))
        return None


def _key_text(c: Checker, value: object, where: str) -> VerificationKey | None:
    if not isinstance(value, str):
        c.bad(where, "must be a base64 string (value not shown)")
        return None
    try:
        return VerificationKey.from_text(value)
    except ValueError as e:
        c.bad(where, f"{e} (value not shown)")
        return None


def _key_file(c: Checker, value: object, where: str, base: Path) -> VerificationKey | None:
    if not isinstance(value, str) or not value:
        c.bad(where, "must be a path string")
        return None
    path = Path(value) if Path(value).is_absolute() else base / value
    try:
        data = path.read_bytes()
    except OSError as e:
        c.bad(where, f"cannot read {path}: {e.strerror or type(e).__name__}")
        return None
    except ValueError:  # a NUL in the path
        c.bad(where, f"cannot read {str(path)!r}: not a valid path")
        return None
    try:
        if b"-----BEGIN" in data:
            return VerificationKey.from_pem(data)
        return VerificationKey.from_text(data.decode("ascii"))
    except UnicodeDecodeError:
        c.bad(where, f"{path} must hold a PEM public key or certificate, or base64 text")
    except ValueError as e:
        c.bad(where, f"{path} {e}")
    return None


def _claims(c: Checker, raw: object, where: str) -> tuple[Claim, ...] | None:
    if not isinstance(raw, list):
        c.bad(where, "must be a list of { type = ..., value = ... } tables")
        return None
    before = len(c.problems)
    out: list[Claim] = []
    for j, claim in enumerate(raw):
        label = f"{where}[{j}]"
        if not isinstance(claim, dict):
            c.bad(label, 'must be a table like { type = "role", value = "premium" }')
            continue
        c.unknown(claim, ("type", "value"), label)
        claim_type, value = claim.get("type"), claim.get("value")
        if not isinstance(claim_type, str) or not claim_type:
            c.bad(f"{label}.type", "is required (a non-empty string)")
            continue
        if value is not None and not isinstance(value, str):
            c.bad(f"{label}.value", "must be a string")
            continue
        if claim_type == CONTENT_KEY_CLAIM and value is not None:
            try:
                uuid.UUID(value)
            except ValueError:
                c.bad(f"{label}.value", "the content key claim's value must be a key id (UUID)")
                continue
        out.append(Claim(claim_type, value))
    return tuple(out) if len(c.problems) == before else None
