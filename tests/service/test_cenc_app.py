"""Common Encryption through the app (pytest-aiohttp's in-process client): the delivery policy's
schemes per protocol, encrypted init and media segments that decrypt to the clear ones, the
ClearKey license service and its refusals (the key service's 400/401/403/404), CORS preflight for
license requests with a token, and manifests that name the request's host cached per host."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from origin.service.app import build_app
from origin.service.config import ConfigError, load_config
from origin.service.state import build_state
from tests.support import cenc_decrypt as ref
from tests.support.server import SAMPLE_KEY, SAMPLE_KID, sample_config
from tests.support.token_server import jwt_policy, make_jwt

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
KID = uuid.UUID(SAMPLE_KID)
VIDEO = "/bbb.ism/QualityLevels(152122)/Fragments(video={t},format={fmt}{enc}).{ext}"
POLICY = jwt_policy()


def kids(*ids: uuid.UUID) -> bytes:
    return json.dumps(
        {"kids": [base64.urlsafe_b64encode(k.bytes).rstrip(b"=").decode() for k in ids]}
    ).encode()


async def _client(aiohttp_client: MakeClient, tmp_path: Path, asset: str, more: str = "") -> Client:
    cfg = sample_config(tmp_path, asset=asset, more=more)
    return await aiohttp_client(build_app(build_state(load_config(cfg))))


@pytest.fixture
async def client(tmp_path: Path, aiohttp_client: MakeClient) -> Client:
    return await _client(
        aiohttp_client,
        tmp_path,
        'hls = ["cbc", "cbcs", "cenc"]\ndash = ["cenc", "cbcs"]\nsmooth = "cenc"',
    )


@pytest.fixture
async def clear_client(tmp_path: Path, aiohttp_client: MakeClient) -> Client:
    (tmp_path / "clear").mkdir()
    return await _client(aiohttp_client, tmp_path / "clear", 'dash = "clear"')


@pytest.fixture
async def gated(tmp_path: Path, aiohttp_client: MakeClient) -> Client:
    return await _client(aiohttp_client, tmp_path, 'dash = "cenc"\npolicy = "jwt"', POLICY)


async def fetch(client: Client, path: str) -> bytes:
    r = await client.get(path)
    assert r.status == 200, (path, await r.text())
    return await r.read()


@pytest.mark.parametrize(
    ("fmt", "enc", "scheme"),
    [
        ("mpd-time-csf", "", "cenc"),  # the policy's default for DASH
        ("mpd-time-cmaf", ",encryption=cbcs-aapl", "cbcs"),
        ("m3u8-cmaf", ",encryption=cenc", "cenc"),
        ("m3u8-cmaf", ",encryption=cbcs-aapl", "cbcs"),
    ],
)
async def test_encrypted_segments_decrypt_to_the_clear_ones(
    client: Client, clear_client: Client, fmt: str, enc: str, scheme: str
) -> None:
    init = await fetch(client, VIDEO.format(t="i", fmt=fmt, enc=enc, ext="mp4"))
    tenc = ref.read_tenc(init)
    assert tenc.scheme == scheme and tenc.kid == KID.bytes
    media = await fetch(client, VIDEO.format(t=0, fmt=fmt, enc=enc, ext="m4s"))
    clear = await fetch(clear_client, VIDEO.format(t=0, fmt="mpd-time-csf", enc="", ext="m4s"))
    assert ref.decrypt_fragment(media, SAMPLE_KEY, tenc) == ref.clear_samples(clear)


async def test_smooth_fragments_carry_piff_sample_encryption(client: Client) -> None:
    manifest = (await fetch(client, "/bbb.ism/manifest")).decode()
    assert '<ProtectionHeader SystemID="9A04F079-9840-4286-AB92-E65BE0885F95">' in manifest
    assert "Fragments(video={start time},encryption=cenc)" not in manifest  # default: no option
    fragment = await fetch(client, "/bbb.ism/QualityLevels(152122)/Fragments(video=0)")
    assert ref.find(fragment, b"uuid") and not ref.find(fragment, b"senc")
    samples = ref.decrypt_fragment(fragment, SAMPLE_KEY, ref.Tenc("cenc", KID.bytes, 8))
    assert all(s[:4] != b"\0\0\0\0" for s in samples)  # NAL lengths survived decryption


async def test_a_scheme_outside_the_policy_is_403_and_one_a_format_cannot_carry_is_400(
    client: Client,
) -> None:
    r = await client.get("/bbb.ism/manifest(format=mpd-time-csf,encryption=cbcs-aapl)")
    assert r.status == 200
    r = await client.get("/bbb.ism/QualityLevels(64664)/Fragments(audio=0,encryption=cbcs-aapl)")
    assert r.status == 400 and "not a scheme for Smooth" in await r.text()
    r = await client.get("/bbb.ism/manifest(format=m3u8-aapl,encryption=cenc)")
    assert r.status == 400


async def test_a_protocol_outside_the_policy_is_403(gated: Client) -> None:
    r = await gated.get("/bbb.ism/manifest(format=mpd-time-csf,encryption=cbcs-aapl)")
    assert (
        r.status == 403 and "encryption=cbcs-aapl is not in the delivery policy" in await r.text()
    )
    r = await gated.get("/bbb.ism/manifest")
    assert r.status == 403 and "Smooth Streaming is not in" in await r.text()


async def test_clearkey_license_is_the_jwk_of_the_key_uncached(client: Client) -> None:
    r = await client.post("/clearkey", data=kids(KID))
    assert r.status == 200 and r.content_type == "application/json"
    assert "no-store" in r.headers["Cache-Control"]
    (key,) = (await r.json())["keys"]
    assert base64.urlsafe_b64decode(key["k"] + "==") == SAMPLE_KEY
    assert key["kty"] == "oct" and base64.urlsafe_b64decode(key["kid"] + "==") == KID.bytes


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{", 400), (b'{"kids": ["x"]}', 400), (kids(uuid.uuid4()), 404)],
)
async def test_clearkey_license_refuses_bad_or_unknown_key_ids(
    client: Client, body: bytes, status: int
) -> None:
    r = await client.post("/clearkey", data=body)
    assert r.status == status
    assert SAMPLE_KEY.hex() not in await r.text()


async def test_clearkey_license_behind_a_token_refuses_as_the_key_service_does(
    gated: Client,
) -> None:
    r = await gated.post("/clearkey", data=kids(KID))
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    for token in (make_jwt(kid=KID, aud="someone-else"), make_jwt(kid=uuid.uuid4()), "x.y.z"):
        auth = {"Authorization": f"Bearer {token}"}
        r = await gated.post("/clearkey", data=kids(KID), headers=auth)
        key = await gated.get(f"/key?kid={KID}", headers=auth)
        assert r.status == key.status and r.status in (401, 403)
        assert r.headers.get("WWW-Authenticate") == key.headers.get("WWW-Authenticate")
    good = make_jwt(kid=KID)
    r = await gated.post("/clearkey", data=kids(KID), headers={"Authorization": f"Bearer {good}"})
    assert r.status == 200
    r = await gated.post(f"/clearkey?token={good}", data=kids(KID))
    assert r.status == 200


async def test_a_license_request_with_a_token_from_another_origin_is_preflighted(
    gated: Client,
) -> None:
    r = await gated.options(
        "/clearkey",
        headers={
            "Origin": "https://player.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert r.status == 204
    allowed = r.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "POST" in r.headers["Access-Control-Allow-Methods"]


async def test_the_mpd_names_the_license_url_of_the_host_it_was_asked_on(client: Client) -> None:
    path = "/bbb.ism/manifest(format=mpd-time-csf)"
    texts = []
    for host in ("a.example", "b.example:8443"):
        r = await client.get(path, headers={"Host": host})
        assert r.status == 200
        texts.append(await r.text())
    assert re.findall(r"<dashif:Laurl>([^<]+)<", texts[0])[0] == "http://a.example/clearkey"
    assert re.findall(r"<dashif:Laurl>([^<]+)<", texts[1])[0] == "http://b.example:8443/clearkey"


async def test_a_live_channel_refuses_common_encryption_with_the_reason(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    # A looped channel with no protection options of its own takes its asset's, cenc included.
    client = await _client(
        aiohttp_client,
        tmp_path,
        'dash = ["clear", "cenc"]',
        '[[channels]]\nname = "tv"\nloop = true\nasset = "bbb"\nwindow = 30\n',
    )
    r = await client.get("/tv.isml/manifest(format=mpd-time-csf,encryption=cenc)")
    assert r.status == 403 and "not built for live" in await r.text()


@pytest.mark.parametrize(
    ("lines", "field", "reason"),
    [
        ('dash = "cbc"', "assets[0].dash", "must be one of"),
        ('smooth = "cbcs"', "assets[0].smooth", "must be one of"),
        ('hls = ["cbc", "cbc"]', "assets[0].hls", "twice"),
        ("dash = []", "assets[0].dash", "must be one of"),
    ],
)
def test_a_delivery_policy_a_protocol_cannot_carry_is_a_config_error(
    tmp_path: Path, lines: str, field: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(sample_config(tmp_path, asset=lines))
    assert field in str(e.value) and reason in str(e.value)


async def test_a_policy_with_drm_systems_signals_them_in_every_protocol(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    drm = (
        '[policies.vendor]\n[[policies.vendor.options]]\ntype = "open"\n'
        "[policies.vendor.drm]\n"
        'playready_la_url = "https://pr.example/rightsmanager.asmx"\n'
        "widevine = true\n"
        'fairplay_uri = "skd://fps.example/{kid}"\n'
    )
    client = await _client(
        aiohttp_client,
        tmp_path,
        'policy = "vendor"\nhls = ["cbcs"]\ndash = "cenc"\nsmooth = "cenc"',
        drm,
    )
    media = (
        await fetch(client, "/bbb.ism/QualityLevels(152122)/Manifest(video,format=m3u8-cmaf)")
    ).decode()
    keys = [line for line in media.splitlines() if line.startswith("#EXT-X-KEY:")]
    assert len(keys) == 2 and "METHOD=SAMPLE-AES," in keys[0] and "/key?kid=" in keys[0]
    assert f'URI="skd://fps.example/{KID.hex}"' in keys[1]
    assert 'KEYFORMAT="com.apple.streamingkeydelivery"' in keys[1]
    master = (await fetch(client, "/bbb.ism/manifest(format=m3u8-cmaf)")).decode()
    assert master.count("#EXT-X-SESSION-KEY:") == 2
    mpd = (await fetch(client, "/bbb.ism/manifest(format=mpd-time-csf)")).decode()
    assert "urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95" in mpd and "<mspr:pro>" in mpd
    assert "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed" in mpd
    init = await fetch(
        client, "/bbb.ism/QualityLevels(152122)/Fragments(video=i,format=mpd-time-csf).mp4"
    )
    systems = {init[o + 12 : o + 28].hex() for o, _ in ref.find(init, b"pssh")}
    assert systems == {
        "1077efecc0b24d02ace33c1e52e2fb4b",
        "9a04f07998404286ab92e65be0885f95",
        "edef8ba979d64acea3c827dcd51d21ed",
    }
    smooth = (await fetch(client, "/bbb.ism/manifest")).decode()
    header = re.search(r'<ProtectionHeader SystemID="[^"]+">([^<]+)<', smooth)
    assert header and "pr.example" in base64.b64decode(header[1])[10:].decode("utf-16-le")
