"""Envelope keys through the app: with ``envelope_keys`` the key URIs and license URLs carry the
key sealed by the master key, and a node that shares only the master keys and the policies
(never the asset or its key) serves it, under the sealed policy; a changed envelope is 403, what
is not one is 400, and a rotated master key keeps old envelopes opening."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from origin.service.app import build_app
from origin.service.config import ConfigError, load_config, resolve_secrets
from origin.service.keys.kms import key_line
from origin.service.state import build_state
from tests.support.server import ROOT, SAMPLE_KEY, SAMPLE_KID, sample_config
from tests.support.token_server import jwt_policy, make_jwt

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
KID = uuid.UUID(SAMPLE_KID)
MEDIA = "/bbb.ism/QualityLevels(152122)/Manifest(video,format=m3u8-aapl)"


def _server_lines(master: Path) -> str:
    return f'envelope_keys = true\nmaster_key_file = "{master}"\nstate_dir = "{master.parent}"'


async def _origin(aiohttp_client: MakeClient, cfg: Path) -> Client:
    config = load_config(cfg)
    config = resolve_secrets(config, config.server.state_dir)
    return await aiohttp_client(build_app(build_state(config)))


@pytest.fixture
def master(tmp_path: Path) -> Path:
    path = tmp_path / "master.keys"
    path.write_text(key_line("m1"))
    return path


async def _node_a(
    aiohttp_client: MakeClient, tmp_path: Path, master: Path, asset: str = ""
) -> Client:
    (tmp_path / "a").mkdir(exist_ok=True)
    cfg = sample_config(
        tmp_path / "a",
        server=_server_lines(master),
        asset=asset + '\ndash = "cenc"',
        more=jwt_policy(),
    )
    return await _origin(aiohttp_client, cfg)


async def _node_b(aiohttp_client: MakeClient, tmp_path: Path, master: Path | None) -> Client:
    """A node with no asset at all: only the policies, and the master keys when given."""
    (tmp_path / "b").mkdir(exist_ok=True)
    server = _server_lines(master) if master else f'state_dir = "{tmp_path / "b"}"'
    cfg = tmp_path / "b" / "origin.toml"
    cfg.write_text(f"[server]\n{server}\n{jwt_policy()}")
    return await _origin(aiohttp_client, cfg)


async def _key_uri(a: Client) -> str:
    text = await (await a.get(MEDIA)).text()
    m = re.search(r'#EXT-X-KEY:METHOD=AES-128,URI="([^"]+)"', text)
    assert m, text
    return "/" + m.group(1).lstrip("./")


async def test_a_node_that_never_saw_the_key_serves_it_from_the_envelope(
    tmp_path: Path, master: Path, aiohttp_client: MakeClient
) -> None:
    a = await _node_a(aiohttp_client, tmp_path, master)
    uri = await _key_uri(a)
    query = parse_qs(urlsplit(uri).query)
    assert query["kid"] == [SAMPLE_KID] and len(query["edk"][0]) > 40
    assert SAMPLE_KEY.hex() not in uri and base64.b64encode(SAMPLE_KEY).decode() not in uri
    assert await _key_uri(a) == uri  # deterministic: every node and worker writes the same
    b = await _node_b(aiohttp_client, tmp_path, master)
    r = await b.get(uri)
    assert r.status == 200 and await r.read() == SAMPLE_KEY
    assert (await b.get(f"/key?kid={SAMPLE_KID}")).status == 404  # without it: unknown here


async def test_the_sealed_policy_is_enforced_by_the_node_that_opens_it(
    tmp_path: Path, master: Path, aiohttp_client: MakeClient
) -> None:
    a = await _node_a(aiohttp_client, tmp_path, master, 'policy = "jwt"')
    uri = await _key_uri(a)
    b = await _node_b(aiohttp_client, tmp_path, master)
    assert (await b.get(uri)).status == 401
    r = await b.get(uri, headers={"Authorization": f"Bearer {make_jwt(kid=KID)}"})
    assert r.status == 200 and await r.read() == SAMPLE_KEY


async def test_a_policy_unknown_to_the_node_is_refused_with_403(
    tmp_path: Path, master: Path, aiohttp_client: MakeClient
) -> None:
    a = await _node_a(aiohttp_client, tmp_path, master, 'policy = "jwt"')
    uri = await _key_uri(a)
    (tmp_path / "c").mkdir()
    cfg = tmp_path / "c" / "origin.toml"
    cfg.write_text(f"[server]\n{_server_lines(master)}\n")
    c = await _origin(aiohttp_client, cfg)
    r = await c.get(uri)
    assert r.status == 403 and "policy 'jwt' is not known here" in await r.text()


async def test_a_changed_envelope_is_403_and_what_is_not_one_is_400_never_500(
    tmp_path: Path, master: Path, aiohttp_client: MakeClient
) -> None:
    a = await _node_a(aiohttp_client, tmp_path, master)
    uri = await _key_uri(a)
    edk = parse_qs(urlsplit(uri).query)["edk"][0]
    b = await _node_b(aiohttp_client, tmp_path, master)
    flipped = edk[:-3] + ("A" if edk[-3] != "A" else "B") + edk[-2:]
    r = await b.get(f"/key?kid={SAMPLE_KID}&edk={flipped}")
    body = await r.text()
    assert r.status == 403 and "does not open" in body
    assert SAMPLE_KEY.hex() not in body
    for junk in ("x", "%00%01", "A" * 700, "AQJtMQ"):
        r = await b.get(f"/key?kid={SAMPLE_KID}&edk={junk}")
        assert r.status == 400, (junk, await r.text())
    other = tmp_path / "other.keys"
    other.write_text(key_line("m1"))
    (tmp_path / "b2").mkdir()
    cfg = tmp_path / "b2" / "origin.toml"
    cfg.write_text(f"[server]\n{_server_lines(other)}\n")
    stranger = await _origin(aiohttp_client, cfg)
    assert (await stranger.get(uri)).status == 403  # the same id, another master key


async def test_a_node_without_master_keys_ignores_envelopes_and_serves_what_it_knows(
    tmp_path: Path, master: Path, aiohttp_client: MakeClient
) -> None:
    a = await _node_a(aiohttp_client, tmp_path, master)
    uri = await _key_uri(a)
    b = await _node_b(aiohttp_client, tmp_path, None)
    assert (await b.get(uri)).status == 404


async def test_the_clearkey_license_url_carries_the_envelope_and_another_node_answers_it(
    tmp_path: Path, master: Path, aiohttp_client: MakeClient
) -> None:
    a = await _node_a(aiohttp_client, tmp_path, master)
    mpd = await (await a.get("/bbb.ism/manifest(format=mpd-time-csf)")).text()
    m = re.search(r"<dashif:Laurl[^>]*>([^<]+)</dashif:Laurl>", mpd)
    assert m, mpd
    url = urlsplit(m.group(1).replace("&amp;", "&"))
    assert url.path == "/clearkey" and "edk=" in url.query
    b = await _node_b(aiohttp_client, tmp_path, master)
    kid = base64.urlsafe_b64encode(KID.bytes).rstrip(b"=").decode()
    r = await b.post(
        f"/clearkey?{url.query}", data=json.dumps({"kids": [kid], "type": "temporary"})
    )
    assert r.status == 200
    jwk = json.loads(await r.read())["keys"][0]
    assert base64.urlsafe_b64decode(jwk["k"] + "==") == SAMPLE_KEY


async def test_after_rotation_new_envelopes_use_the_new_master_and_old_ones_still_open(
    tmp_path: Path, master: Path, aiohttp_client: MakeClient
) -> None:
    a = await _node_a(aiohttp_client, tmp_path, master)
    old = await _key_uri(a)
    run = subprocess.run(
        [sys.executable, "-m", "origin", "master-key", "rotate", "--config",
         str(tmp_path / "a" / "origin.toml")],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "master key 'm2' added" in run.stdout
    assert master.read_text().count("\n") == 2
    a2 = await _node_a(aiohttp_client, tmp_path, master)
    new = await _key_uri(a2)
    assert new != old
    b = await _node_b(aiohttp_client, tmp_path, master)
    for uri in (old, new):
        r = await b.get(uri)
        assert r.status == 200 and await r.read() == SAMPLE_KEY


def test_an_unreadable_master_key_file_stops_the_start_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "master.keys"
    bad.write_text("m1 abcd\n")
    cfg = sample_config(tmp_path, server=_server_lines(bad))
    with pytest.raises(ConfigError) as e:
        resolve_secrets(load_config(cfg), tmp_path)
    assert "line 1: the key must be 64 hex digits" in str(e.value)
    assert "abcd" not in str(e.value)


def test_without_a_master_key_file_one_is_made_in_the_state_folder(tmp_path: Path) -> None:
    cfg = sample_config(tmp_path, server=f'envelope_keys = true\nstate_dir = "{tmp_path / "st"}"')
    config = resolve_secrets(load_config(cfg), tmp_path / "st")
    assert config.server.kms is not None and config.server.kms.current == "m1"
    made = tmp_path / "st" / "master.keys"
    assert made.stat().st_mode & 0o777 == 0o600
    again = resolve_secrets(load_config(cfg), tmp_path / "st")
    assert again.server.kms == config.server.kms
