"""Segments of gated assets (``require_token``) need the signed URL of an authorized manifest."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from origin.service.app import build_app
from origin.service.config import ConfigError, load_config, resolve_secrets
from origin.service.state import build_state
from origin.service.tokens import urlsig
from tests.support import token_server

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]

KEY = bytes(range(32))
AUTH = {"Authorization": f"Bearer {token_server.make_jwt(kid=token_server.OTHER_KID)}"}


# ---------------------------------------------------------------------------- the token format


def test_the_token_is_edgeauth_exp_acl_and_hex_hmac_sha256_of_the_fields() -> None:
    token = urlsig.sign(KEY, "/gated.ism/*", 1_900_000_000)
    fields = "exp=1900000000~acl=/gated.ism/*"
    mac = hmac.new(KEY, fields.encode(), hashlib.sha256).hexdigest()
    assert token == f"{fields}~hmac={mac}"
    assert urlsig.query(KEY, "/gated.ism/*", 1_900_000_000) == f"__token__={token}"


@pytest.mark.parametrize(
    ("token", "path", "now", "reason"),
    [
        (None, "/gated.ism/x", 0, "needs the signed URL"),
        ("exp=5~acl=/gated.ism/*", "/gated.ism/x", 0, "malformed"),
        ("garbage~hmac=00", "/gated.ism/x", 0, "malformed"),
        ("exp=5~acl=/gated.ism/*~hmac=00", "/gated.ism/x", 0, "bad signed URL signature"),
        ("exp=5~acl=/gated.ism/*~hmac=\u00e9\ud800", "/gated.ism/x", 0, "bad signed URL"),
        ("exp=\ud800~acl=/gated.ism/*~hmac=00", "/gated.ism/x", 0, "bad signed URL"),
        (urlsig.sign(KEY, "/gated.ism/*", 100), "/gated.ism/x", 100, "expired"),
        (urlsig.sign(KEY, "/gated.ism/*", 100), "/other.ism/x", 50, "another path"),
        (urlsig.sign(KEY, "/gated.ism/a", 100), "/gated.ism/ab", 50, "another path"),
        (urlsig.sign(bytes(32), "/gated.ism/*", 100), "/gated.ism/x", 50, "bad signed URL"),
        (urlsig.sign(KEY, "/gated.ism/*", 100).replace("exp=100", "exp=900"), "/gated.ism/x", 50,
         "bad signed URL signature"),
    ],
)  # fmt: skip
def test_a_token_is_refused_with_its_reason(
    token: str | None, path: str, now: float, reason: str
) -> None:
    got = urlsig.check(KEY, token, path, now)
    assert got is not None and reason in got
    assert token is None or token not in got


def test_a_valid_token_allows_its_paths_until_exp_and_honours_st() -> None:
    token = urlsig.sign(KEY, "/gated.ism/*", 100)
    assert urlsig.check(KEY, token, "/gated.ism/QualityLevels(1)/Fragments(video=0)", 99) is None
    fields = "st=60~exp=100~acl=/gated.ism/*"
    later = f"{fields}~hmac={hmac.new(KEY, fields.encode(), hashlib.sha256).hexdigest()}"
    assert urlsig.check(KEY, later, "/gated.ism/x", 70) is None
    assert "not valid yet" in (urlsig.check(KEY, later, "/gated.ism/x", 50) or "")


# ---------------------------------------------------------------------------- the origin


# A clear asset behind the same token policy: DASH and Smooth deliver it too.
CLEAR_GATED = f"""
[[assets]]
name = "open"
files = [{token_server.FILES}]
segment_duration = 4.0
policy = "gated"
require_token = true
"""


@pytest.fixture
async def client(tmp_path: Path, aiohttp_client: MakeClient) -> Client:
    cfg = tmp_path / "origin.toml"
    cfg.write_text(token_server.config_text() + CLEAR_GATED)
    return await aiohttp_client(build_app(build_state(load_config(cfg))))


def _uris(text: str) -> list[str]:
    out = re.findall(r'URI="([^"]+)"', text)
    return out + [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


async def _media(client: Client, fmt: str) -> tuple[str, str]:
    master_url = str(client.make_url(f"/gated.ism/manifest(format={fmt})"))
    master = await client.session.get(master_url, headers=AUTH)
    assert master.status == 200
    media_url = urljoin(master_url, _uris(await master.text())[-1])
    media = await client.session.get(media_url, headers=AUTH)
    assert media.status == 200
    return media_url, await media.text()


@pytest.mark.parametrize("fmt", ["m3u8-aapl", "m3u8-cmaf"])
async def test_an_authorized_playlist_signs_every_segment_and_init_url_and_they_play(
    client: Client, fmt: str
) -> None:
    media_url, text = await _media(client, fmt)
    fetched = [urljoin(media_url, u) for u in _uris(text) if "Fragments(" in u]
    assert fetched and all(urlsig.PARAM in u for u in fetched)
    assert ("Fragments(video=i" in text or "Fragments(audio=i" in text) == (fmt == "m3u8-cmaf")
    for url in fetched[:3] + fetched[-1:]:
        got = await client.session.get(url)  # no token of the viewer's: the signature is enough
        assert got.status == 200, await got.text()
        assert got.headers["Cache-Control"].startswith("public")
    assert "private" in (await client.session.get(media_url, headers=AUTH)).headers["Cache-Control"]


async def test_a_gated_segment_without_or_with_a_bad_signature_is_403_and_never_echoed(
    client: Client,
) -> None:
    media_url, text = await _media(client, "m3u8-aapl")
    url = urljoin(media_url, next(u for u in _uris(text) if "Fragments(" in u))
    parts = urlsplit(url)
    token = parse_qs(parts.query)[urlsig.PARAM][0]
    bare = parts.path
    assert (await client.get(bare)).status == 403
    assert "needs the signed URL" in await (await client.get(bare)).text()
    odd = await client.get(bare, params={urlsig.PARAM: "exp=1~acl=/x*~hmac=\u00e9t\u00e9"})
    assert odd.status == 403  # non-ASCII: refused like any bad signature, never a 500
    tampered = token.replace("exp=", "exp=9")
    got = await client.get(bare, params={urlsig.PARAM: tampered})
    assert got.status == 403 and tampered not in await got.text()
    other = url.replace("/gated.ism/", "/secure.ism/")  # another asset's path, this signature
    assert (await client.session.get(other)).status == 200  # an ungated asset needs none
    foreign = urlsig.query(KEY, "/elsewhere.ism/*", int(time.time()) + 60)
    assert (await client.get(f"{bare}?{foreign}")).status == 403


@pytest.mark.parametrize("fmt", ["mpd-time-csf", "mpd-time-cmaf", "smooth"])
async def test_dash_and_smooth_manifests_sign_their_segment_templates_and_those_play(
    client: Client, fmt: str
) -> None:
    path = "/open.ism/manifest" + ("" if fmt == "smooth" else f"(format={fmt})")
    got = await client.get(path, headers=AUTH)
    assert got.status == 200, await got.text()
    text = await got.text()
    templates = re.findall(r'(?:media|initialization|Url)="([^"]+)"', text)
    assert templates and all(urlsig.PARAM in t for t in templates)
    # The first fragment of the first level, as a player expands the template.
    if fmt == "smooth":
        bitrate = re.search(r'QualityLevel Index="0" Bitrate="(\d+)"', text)
        start = re.search(r'<c t="(\d+)"', text)
        assert bitrate and start
        url = templates[0].replace("{bitrate}", bitrate[1]).replace("{start time}", start[1])
    else:
        rep = re.search(r'<Representation id="([^"]+)"', text)
        assert rep
        init = next(t for t in templates if "$Time$" not in t and "$Number$" not in t)
        url = init.replace("$RepresentationID$", rep[1])
    assert (await client.get(f"/open.ism/{url}")).status == 200
    bare = f"/open.ism/{url.split('?')[0]}"
    assert (await client.get(bare)).status == 403


def test_a_short_url_signing_key_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "origin.toml"
    rest = token_server.config_text().split("\n", 3)[3]  # after its [server] lines
    cfg.write_text('[server]\nurl_signing_key = "abcd"\n' + rest)
    with pytest.raises(ConfigError, match=r"url_signing_key.*value not shown") as e:
        load_config(cfg)
    assert "abcd" not in str(e.value)


def test_the_generated_signing_key_is_kept_in_state_dir_for_every_worker_and_restart(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "origin.toml"
    cfg.write_text(token_server.config_text())
    first = resolve_secrets(load_config(cfg), tmp_path / "state")
    again = resolve_secrets(load_config(cfg), tmp_path / "state")
    assert first.server.url_signing_key is not None and len(first.server.url_signing_key) == 32
    assert again.server.url_signing_key == first.server.url_signing_key
    kept = tmp_path / "state" / "url-signing.key"
    assert kept.stat().st_mode & 0o777 == 0o600
    assert build_state(first).signing_key == first.server.url_signing_key


async def test_a_gated_live_channel_signs_its_segments_and_refuses_them_unsigned(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    cfg = tmp_path / "origin.toml"
    channel = (
        '[[channels]]\nname = "tv"\nloop = true\nasset = "open"\n'
        'policy = "gated"\nrequire_token = true\n'
    )
    cfg.write_text(token_server.config_text() + CLEAR_GATED + channel)
    client = await aiohttp_client(build_app(build_state(load_config(cfg))))
    master_url = str(client.make_url("/tv.isml/manifest(format=m3u8-cmaf)"))
    for _ in range(100):  # the loop publishes its first segments
        master = await client.session.get(master_url, headers=AUTH)
        if master.status == 200:
            break
        await asyncio.sleep(0.05)
    assert master.status == 200, await master.text()
    assert (await client.session.get(master_url)).status == 401  # no token: no playlist
    media_url = urljoin(master_url, _uris(await master.text())[-1])
    text = await (await client.session.get(media_url, headers=AUTH)).text()
    listed = [urljoin(media_url, u) for u in _uris(text) if "Fragments(" in u]
    assert listed and all(urlsig.PARAM in u for u in listed)
    for url in (listed[0], listed[-1]):  # the init segment and the newest
        assert (await client.session.get(url)).status == 200
        assert (await client.session.get(url.split("?")[0])).status == 403
    mpd = await client.get("/tv.isml/manifest(format=mpd-time-cmaf)", headers=AUTH)
    assert mpd.status == 200
    assert all(
        urlsig.PARAM in t
        for t in re.findall(r'(?:media|initialization)="([^"]+)"', await mpd.text())
    )
