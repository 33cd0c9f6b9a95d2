"""DRM signalling for Common Encryption, and the W3C ClearKey license format.

One description of how a protected stream is announced (:class:`Signalling`), written by every
protocol from the same data: the W3C Common PSSH (ClearKey, system 1077efec-…) in init segments
and DASH, the DASH-IF ClearKey descriptor with its license URL (``dashif:laurl``), PlayReady's
Header Object (``pssh``, ``mspr:pro``, Smooth ``<ProtectionHeader>``), Widevine's ``pssh`` with
the key id, and FairPlay's ``skd://`` key tag for HLS. Only ClearKey can be played here (the
origin runs its license service); the others are written for the operator's DRM vendor, from
the license URLs a policy configures.

ClearKey license exchange (W3C EME §9.1.3, JSON Web Key): the request is
``{"kids": [base64url KID, ...], "type": "temporary"}``, the response
``{"keys": [{"kty": "oct", "k": base64url key, "kid": base64url KID}], "type": "temporary"}``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from origin.core.manifest import dash
from origin.core.mp4.defs import (
    SYSTEM_CLEARKEY_DASH,
    SYSTEM_COMMON,
    SYSTEM_PLAYREADY,
    SYSTEM_WIDEVINE,
)
from origin.core.mux.encrypted import pssh

CLEARKEY = "org.w3.clearkey"
FAIRPLAY_KEYFORMAT = "com.apple.streamingkeydelivery"
PLAYREADY_HEADER_NS = "http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader"
LICENSE_LIMIT = 16 * 1024  # bytes of a license request body
MAX_KIDS = 64


def system_uuid(system_id: bytes) -> str:
    return str(uuid.UUID(bytes=system_id))


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWK (RFC 7515 §2) and EME ClearKey write it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    if not isinstance(text, str) or not text or len(text) > 64:
        raise ValueError("a key id is a base64url string")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except ValueError:
        raise ValueError("a key id is not base64url") from None


class LicenseRequestError(ValueError):
    """A ClearKey license request that is not one (HTTP 400); the message says why."""


def parse_license_request(body: bytes) -> list[uuid.UUID]:
    """The key ids a ClearKey license request asks for."""
    if len(body) > LICENSE_LIMIT:
        raise LicenseRequestError("license request too large")
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise LicenseRequestError("license request is not JSON") from None
    kids = doc.get("kids") if isinstance(doc, dict) else None
    if not isinstance(kids, list) or not kids:
        raise LicenseRequestError('license request needs "kids": a non-empty list')
    if len(kids) > MAX_KIDS:
        raise LicenseRequestError(f"license request asks for more than {MAX_KIDS} keys")
    out = []
    for kid in kids:
        try:
            raw = _unb64url(kid)
        except ValueError as e:
            raise LicenseRequestError(str(e)) from None
        if len(raw) != 16:
            raise LicenseRequestError("a key id is 16 bytes")
        out.append(uuid.UUID(bytes=raw))
    return out


def license_response(
    keys: Sequence[tuple[uuid.UUID, bytes]], session_type: str = "temporary"
) -> bytes:
    """The ClearKey license (a JWK set) for ``(kid, key)`` pairs."""
    doc = {
        "keys": [{"kty": "oct", "k": b64url(key), "kid": b64url(kid.bytes)} for kid, key in keys],
        "type": session_type,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


# --- PlayReady, Widevine ----------------------------------------------------------------------


def playready_header(kid: uuid.UUID, la_url: str | None, *, cbcs: bool = False) -> bytes:
    """A PlayReady Header Object (PlayReady Header Specification): one rights-management record
    holding a WRMHEADER, v4.0.0.0 (AES-CTR) or v4.3.0.0 (AES-CBC, cbcs). The KID is written in
    the GUID's little-endian byte order, as PlayReady reads it."""
    kid_b64 = base64.b64encode(kid.bytes_le).decode()
    la = f"<LA_URL>{escape(la_url)}</LA_URL>" if la_url else ""
    if cbcs:
        data = (
            f'<PROTECTINFO><KIDS><KID ALGID="AESCBC" VALUE="{kid_b64}"></KID></KIDS></PROTECTINFO>'
            f"{la}"
        )
        version = "4.3.0.0"
    else:
        data = (
            "<PROTECTINFO><KEYLEN>16</KEYLEN><ALGID>AESCTR</ALGID></PROTECTINFO>"
            f"<KID>{kid_b64}</KID>{la}"
        )
        version = "4.0.0.0"
    head = f'<WRMHEADER xmlns="{PLAYREADY_HEADER_NS}" version="{version}">'
    xml = f"{head}<DATA>{data}</DATA></WRMHEADER>"
    record = xml.encode("utf-16-le")
    body = (1).to_bytes(2, "little") + len(record).to_bytes(2, "little") + record
    return (6 + len(body)).to_bytes(4, "little") + (1).to_bytes(2, "little") + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def widevine_pssh_data(kid: uuid.UUID, scheme: str, provider: str | None = None) -> bytes:
    """WidevinePsshData (protobuf): key_id (2), provider (3), protection_scheme (9, a FourCC)."""
    out = b"\x12\x10" + kid.bytes
    if provider:
        p = provider.encode()
        out += b"\x1a" + _varint(len(p)) + p
    return out + b"\x48" + _varint(int.from_bytes(scheme.encode(), "big"))


# --- what a stream announces -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Systems:
    """The commercial DRM systems a policy points players at (None: not signalled)."""

    playready_la_url: str | None = None
    widevine: bool = False
    widevine_provider: str | None = None
    fairplay_uri: str | None = None  # skd:// URI template, "{kid}" replaced by the key id

    def fairplay_key_uri(self, kid: uuid.UUID) -> str | None:
        """FairPlay's ``skd://`` key URI for ``kid``, if a template is configured."""
        return self.fairplay_uri.replace("{kid}", kid.hex) if self.fairplay_uri else None


NO_SYSTEMS = Systems()


@dataclass(frozen=True, slots=True)
class Signalling:
    """How a stream protected with key ``kid`` under ``scheme`` (cenc | cbcs) is announced;
    ``license_url``: the origin's ClearKey license service, absolute."""

    kid: uuid.UUID
    scheme: str
    license_url: str
    systems: Systems = NO_SYSTEMS

    def psshs(self) -> list[bytes]:
        """The pssh boxes of the init segment's moov: Common (ClearKey), then the others."""
        out = [pssh(SYSTEM_COMMON, [self.kid.bytes])]
        if self.systems.playready_la_url:
            out.append(pssh(SYSTEM_PLAYREADY, [], self.pro()))
        if self.systems.widevine:
            data = widevine_pssh_data(self.kid, self.scheme, self.systems.widevine_provider)
            out.append(pssh(SYSTEM_WIDEVINE, [], data))
        return out

    def pro(self) -> bytes:
        return playready_header(self.kid, self.systems.playready_la_url, cbcs=self.scheme == "cbcs")

    def content_protection(self) -> tuple[dash.ContentProtection, ...]:
        """DASH descriptors (DASH-IF IOP 7.5): mp4protection first, then one per system."""
        out = [
            dash.ContentProtection(
                dash.MP4_PROTECTION_SCHEME, value=self.scheme, default_kid=str(self.kid)
            ),
            dash.ContentProtection(
                "urn:uuid:" + system_uuid(SYSTEM_CLEARKEY_DASH),
                value="ClearKey1.0",
                laurl=self.license_url,
            ),
            dash.ContentProtection(
                "urn:uuid:" + system_uuid(SYSTEM_COMMON), pssh=pssh(SYSTEM_COMMON, [self.kid.bytes])
            ),
        ]
        if self.systems.playready_la_url:
            pro = self.pro()
            out.append(
                dash.ContentProtection(
                    "urn:uuid:" + system_uuid(SYSTEM_PLAYREADY),
                    value="MSPR 2.0",
                    pssh=pssh(SYSTEM_PLAYREADY, [], pro),
                    pro=pro,
                )
            )
        if self.systems.widevine:
            data = widevine_pssh_data(self.kid, self.scheme, self.systems.widevine_provider)
            out.append(
                dash.ContentProtection(
                    "urn:uuid:" + system_uuid(SYSTEM_WIDEVINE),
                    value="Widevine",
                    pssh=pssh(SYSTEM_WIDEVINE, [], data),
                )
            )
        return tuple(out)

    def smooth_protection(self) -> tuple[str, str]:
        """(SystemID, base64 header) of Smooth's ``<ProtectionHeader>``: PlayReady's, which is
        what Smooth clients read the key id from (with a ClearKey license set in the player)."""
        return system_uuid(SYSTEM_PLAYREADY).upper(), base64.b64encode(self.pro()).decode()

    def fairplay_uri(self) -> str | None:
        return self.systems.fairplay_key_uri(self.kid)
