"""DRM signalling and the delivery policy's scheme rule, sans-IO: the ClearKey license format
(W3C EME), the PlayReady Header Object read back as a PlayReady client reads it, Widevine's
pssh data read back as protobuf, the DASH / Smooth / HLS signals of a protected stream."""

from __future__ import annotations

import base64
import json
import uuid
import xml.etree.ElementTree as ET
from fractions import Fraction

import m3u8
import pytest

from origin.core import drm, pipeline
from origin.core.manifest import dash
from origin.core.mp4 import parse_bytes
from origin.core.mp4.defs import SYSTEM_PLAYREADY, SYSTEM_WIDEVINE
from origin.core.urls import Encryption, Format, Options
from tests.support import cenc_decrypt as ref

KID = uuid.UUID("6e5a1d26-2757-47d7-8046-eaa5d1d34b5a")
KEY = bytes(range(16))
LA = "https://pr.example/rightsmanager.asmx?x=1&y=2"


def test_clearkey_license_request_and_response_follow_w3c_eme() -> None:
    kid = base64.urlsafe_b64encode(KID.bytes).rstrip(b"=").decode()
    body = json.dumps({"kids": [kid], "type": "temporary"}).encode()
    assert drm.parse_license_request(body) == [KID]
    doc = json.loads(drm.license_response([(KID, KEY)]))
    assert doc == {
        "keys": [{"kty": "oct", "k": "AAECAwQFBgcICQoLDA0ODw", "kid": kid}],
        "type": "temporary",
    }


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[]", "kids"),
        (b'{"kids": []}', "kids"),
        (b'{"kids": "abc"}', "kids"),
        (b'{"kids": [5]}', "base64url"),
        (b'{"kids": ["!!!"]}', "base64url"),
        (b'{"kids": ["AAAA"]}', "16 bytes"),
        (b"\xff\xfe", "not JSON"),
        (json.dumps({"kids": ["AAAAAAAAAAAAAAAAAAAAAA"] * 65}).encode(), "more than"),
    ],
)
def test_a_malformed_license_request_says_what_is_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(drm.LicenseRequestError, match=reason):
        drm.parse_license_request(body)


def _wrmheader(pro: bytes) -> ET.Element:
    """Read a PlayReady Header Object as PlayReady clients (and dash.js's MSS parser) do."""
    assert int.from_bytes(pro[:4], "little") == len(pro)
    assert int.from_bytes(pro[4:6], "little") == 1  # one record
    kind, size = int.from_bytes(pro[6:8], "little"), int.from_bytes(pro[8:10], "little")
    assert kind == 1 and size == len(pro) - 10
    return ET.fromstring(pro[10:].decode("utf-16-le"))


def test_playready_header_object_carries_the_kid_little_endian_and_the_license_url() -> None:
    ns = {"pr": drm.PLAYREADY_HEADER_NS}
    root = _wrmheader(drm.playready_header(KID, LA))
    assert root.get("version") == "4.0.0.0"
    kid = root.find("pr:DATA/pr:KID", ns)
    assert kid is not None and uuid.UUID(bytes_le=base64.b64decode(kid.text or "")) == KID
    assert root.findtext("pr:DATA/pr:LA_URL", namespaces=ns) == LA  # & escaped and back
    assert root.findtext("pr:DATA/pr:PROTECTINFO/pr:ALGID", namespaces=ns) == "AESCTR"
    cbcs = _wrmheader(drm.playready_header(KID, None, cbcs=True))
    assert cbcs.get("version") == "4.3.0.0"
    entry = cbcs.find("pr:DATA/pr:PROTECTINFO/pr:KIDS/pr:KID", ns)
    assert entry is not None and entry.get("ALGID") == "AESCBC"
    assert uuid.UUID(bytes_le=base64.b64decode(entry.get("VALUE") or "")) == KID


def _protobuf(data: bytes) -> dict[int, list[bytes | int]]:
    fields: dict[int, list[bytes | int]] = {}
    pos = 0

    def varint() -> int:
        nonlocal pos
        shift = value = 0
        while True:
            b = data[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value

    while pos < len(data):
        key = varint()
        if key & 7 == 2:
            n = varint()
            fields.setdefault(key >> 3, []).append(data[pos : pos + n])
            pos += n
        else:
            fields.setdefault(key >> 3, []).append(varint())
    return fields


def test_widevine_pssh_data_names_the_key_and_the_scheme() -> None:
    fields = _protobuf(drm.widevine_pssh_data(KID, "cbcs", "origin"))
    assert fields[2] == [KID.bytes] and fields[3] == [b"origin"]
    assert fields[9] == [int.from_bytes(b"cbcs", "big")]


def test_signalling_writes_every_configured_system() -> None:
    systems = drm.Systems(playready_la_url=LA, widevine=True, fairplay_uri="skd://keys/{kid}")
    sig = drm.Signalling(KID, "cenc", "https://o.example/clearkey?token=t", systems)
    boxes = sig.psshs()
    ids = [b[12:28] for b in boxes]
    assert ids == [
        bytes.fromhex("1077efecc0b24d02ace33c1e52e2fb4b"),
        SYSTEM_PLAYREADY,
        SYSTEM_WIDEVINE,
    ]
    schemes = [cp.scheme_id_uri for cp in sig.content_protection()]
    assert schemes[0] == dash.MP4_PROTECTION_SCHEME
    assert "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e" in schemes
    assert "urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95" in schemes
    assert "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed" in schemes
    system_id, header = sig.smooth_protection()
    assert system_id == "9A04F079-9840-4286-AB92-E65BE0885F95"
    assert base64.b64decode(header) == sig.pro()
    assert sig.fairplay_uri() == f"skd://keys/{KID.hex}"


def test_the_mpd_signals_the_scheme_the_key_and_the_license_url(
    fuzz_inputs: dict[str, bytes],
) -> None:
    p = pipeline.prepare("a", [parse_bytes(fuzz_inputs["progressive.mp4"])], Fraction(2))
    sig = drm.Signalling(KID, "cbcs", "https://o.example/clearkey")
    text = pipeline.dash_manifest(
        p,
        Options(format=Format.DASH_CSF, encryption=Encryption.CBCS),
        protection=sig.content_protection(),
    )
    root = ET.fromstring(text)
    ns = {"d": dash.NAMESPACE, "cenc": dash.CENC_NAMESPACE, "dashif": dash.DASHIF_NAMESPACE}
    sets = root.findall("d:Period/d:AdaptationSet", ns)
    assert len(sets) == 2
    for s in sets:
        cps = s.findall("d:ContentProtection", ns)
        assert cps[0].get("value") == "cbcs"
        assert cps[0].get(f"{{{dash.CENC_NAMESPACE}}}default_KID") == str(KID)
        assert s.findtext("d:ContentProtection/dashif:Laurl", namespaces=ns) == sig.license_url
        pssh = base64.b64decode(s.findtext("d:ContentProtection/cenc:pssh", namespaces=ns) or "")
        assert pssh[4:8] == b"pssh" and pssh[32:48] == KID.bytes
        # ContentProtection comes before Role and SegmentTemplate (the schema's order).
        tags = [c.tag.split("}")[1] for c in s]
        assert tags.index("ContentProtection") < tags.index("SegmentTemplate")
    # dash.js reads the KID attribute by its literal prefixed name.
    assert 'cenc:default_KID="' in text and "<dashif:Laurl>" in text


def test_hls_sample_aes_keys_go_before_the_map_and_the_master_lists_them_as_session_keys(
    fuzz_inputs: dict[str, bytes],
) -> None:
    p = pipeline.prepare("a", [parse_bytes(fuzz_inputs["progressive.mp4"])], Fraction(2))
    opts = Options(format=Format.HLS_CMAF, encryption=Encryption.CBCS)
    text = pipeline.media_playlist(
        p,
        "video",
        p.video[0].id,
        opts,
        key_uri="../../key?kid=k",
        iv=bytes(16),
        scheme=pipeline.Scheme.CBCS,
    )
    (key,) = m3u8.loads(text).keys
    assert key.method == "SAMPLE-AES" and key.uri == "../../key?kid=k" and key.iv is None
    assert text.index("#EXT-X-KEY") < text.index("#EXT-X-MAP")
    ctr = pipeline.media_playlist(
        p, "video", p.video[0].id, opts, key_uri="../../key?kid=k", scheme=pipeline.Scheme.CENC
    )
    assert "METHOD=SAMPLE-AES-CTR" in ctr
    aes = pipeline.media_playlist(
        p, "video", p.video[0].id, Options(format=Format.HLS_TS), key_uri="k"
    )
    assert aes.index("#EXT-X-KEY") > aes.index("#EXT-X-TARGETDURATION")
    session = pipeline.hls_key(pipeline.Scheme.CBCS, "../key?kid=k", None)
    master = pipeline.master_playlist(p, opts, query="token=t", session_keys=[session])
    parsed = m3u8.loads(master)
    assert [k.uri for k in parsed.session_keys] == ["../key?kid=k&token=t"]
    assert parsed.session_keys[0].method == "SAMPLE-AES"


@pytest.mark.parametrize(
    ("fmt", "requested", "allowed", "expected"),
    [
        (Format.HLS_TS, None, ("cbc",), pipeline.Scheme.AES_128),
        (Format.HLS_TS, None, ("cbcs", "cbc"), pipeline.Scheme.AES_128),  # TS carries only cbc
        (Format.HLS_CMAF, None, ("cbcs", "cbc"), pipeline.Scheme.CBCS),
        (Format.DASH_CSF, None, ("clear", "cenc"), None),
        (Format.DASH_CSF, Encryption.CENC, ("clear", "cenc"), pipeline.Scheme.CENC),
        (None, None, ("cenc",), pipeline.Scheme.CENC),
    ],
)
def test_the_delivery_policy_default_is_its_first_scheme_the_format_can_carry(
    fmt: Format | None,
    requested: Encryption | None,
    allowed: tuple[str, ...],
    expected: pipeline.Scheme | None,
) -> None:
    assert pipeline.choose(fmt, requested, allowed) is expected


@pytest.mark.parametrize(
    ("fmt", "requested", "allowed", "reason"),
    [
        (Format.DASH_CSF, None, (), "not in the delivery policy"),
        (Format.DASH_CSF, Encryption.CBCS, ("cenc",), "encryption=cbcs-aapl is not in"),
        (Format.HLS_TS, None, ("cenc",), "fits format=m3u8-aapl"),
        (Format.HLS_CMAF, Encryption.CENC, ("clear", "cbc"), "not in the delivery policy"),
    ],
)
def test_what_the_policy_does_not_allow_is_refused_with_the_reason(
    fmt: Format | None, requested: Encryption | None, allowed: tuple[str, ...], reason: str
) -> None:
    with pytest.raises(pipeline.Refused, match=reason):
        pipeline.choose(fmt, requested, allowed)


def test_a_walk_of_the_init_segment_finds_the_signalled_pssh_boxes(
    fuzz_inputs: dict[str, bytes],
) -> None:
    p = pipeline.prepare("a", [parse_bytes(fuzz_inputs["progressive.mp4"])], Fraction(2))
    r = p.video[0]
    sig = drm.Signalling(KID, "cenc", "u", drm.Systems(playready_la_url=LA, widevine=True))
    prot = pipeline.track_protection(pipeline.Scheme.CENC, KID.bytes, r.track, None)
    init = pipeline.protected_init(r.track, r.edit, prot, sig.psshs())
    found = [init[o + 12 : o + 28] for o, _ in ref.find(init, b"pssh")]
    assert found == [b[12:28] for b in sig.psshs()]
