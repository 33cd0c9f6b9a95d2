"""Content key rotation of a live channel: a new key every N segments, signalled by a new
EXT-X-KEY at the boundary, each served by the key service while its segments are in the window,
kept sealed on disk so a restart serves the same keys; ffmpeg plays across the rotations."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import m3u8
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from origin.core.crypto.aes128 import decrypt
from origin.service.app import build_app
from origin.service.config import ConfigError, load_config, resolve_secrets
from origin.service.live.rotation import keys_path
from origin.service.state import build_state
from tests.service.test_live_app import BASIC, INGEST, KEY, KID, _channels, _pieces, ismv
from tests.support.media import FFMPEG
from tests.support.server import sample_config

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
__all__ = ["ismv"]  # the module fixture, shared


def _config(tmp_path: Path, rotation: str) -> Path:
    channel = _channels().replace("window = 12", f"window = 12\n{rotation}")
    return sample_config(tmp_path, server=f'state_dir = "{tmp_path}"', more=channel)


async def _client(aiohttp_client: MakeClient, cfg: Path, state_dir: Path) -> Client:
    config = resolve_secrets(load_config(cfg), state_dir)
    return await aiohttp_client(build_app(build_state(config)))


async def _media(client: Client) -> tuple[str, str]:
    master_url = str(client.make_url("/tv.isml/manifest(format=m3u8-aapl)"))
    master = m3u8.loads(await (await client.get(urlsplit(master_url).path)).text())
    media_url = urljoin(master_url, master.playlists[0].uri)
    return media_url, await (await client.get(urlsplit(media_url).path)).text()


async def test_each_period_has_its_own_key_signalled_at_its_boundary_and_ffmpeg_plays(
    ismv: bytes, tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    cfg = _config(tmp_path, "key_rotation_segments = 1")
    client = await _client(aiohttp_client, cfg, tmp_path)
    r = await client.post(INGEST, data=_pieces(ismv), headers=BASIC)
    assert r.status == 200
    media_url, text = await _media(client)
    playlist = m3u8.loads(text)
    assert len(playlist.segments) == 3
    key_lines = [ln for ln in text.splitlines() if ln.startswith("#EXT-X-KEY")]
    assert len(key_lines) == 3  # one before each segment: a key per segment
    lines = text.splitlines()
    for line in key_lines:  # each right before its segment's tags, after the one before
        assert not lines[lines.index(line) + 1].startswith("#EXT-X-KEY")
    kids = [re.search(r"kid=([0-9a-f-]+)", ln).group(1) for ln in key_lines]  # type: ignore[union-attr]
    assert len(set(kids)) == 3 and KID not in kids
    out = tmp_path / "all.ts"
    seen_keys = []
    with out.open("wb") as f:
        for k, seg in enumerate(playlist.segments):
            key_uri = urljoin(media_url, seg.key.uri)
            kr = await client.get(urlsplit(key_uri).path + "?" + urlsplit(key_uri).query)
            assert kr.status == 200
            key = await kr.read()
            assert key != KEY
            seen_keys.append(key)
            body = await (await client.get(urlsplit(urljoin(media_url, seg.uri)).path)).read()
            f.write(decrypt(key, (playlist.media_sequence + k).to_bytes(16, "big"), body))
    assert len(set(seen_keys)) == 3
    run = subprocess.run(
        [FFMPEG, "-v", "warning", "-i", str(out), "-f", "null", "-"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0 and not run.stderr.strip(), run.stderr
    # Kept sealed on disk: no key in the clear there.
    stored = keys_path(tmp_path, "tv").read_text()
    assert len(stored.splitlines()) == 3
    assert not any(k.hex() in stored for k in seen_keys)
    assert keys_path(tmp_path, "tv").stat().st_mode & 0o777 == 0o600


async def test_a_restart_serves_the_same_keys_for_the_segments_in_the_window(
    ismv: bytes, tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    cfg = _config(tmp_path, "key_rotation_segments = 2")
    first = await _client(aiohttp_client, cfg, tmp_path)
    assert (await first.post(INGEST, data=_pieces(ismv), headers=BASIC)).status == 200
    _, text = await _media(first)
    kids = re.findall(r"kid=([0-9a-f-]+)", text)
    assert len(set(kids)) == 2  # segments 0-1 and 2: two periods
    await first.close()
    second = await _client(aiohttp_client, cfg, tmp_path)
    for kid in set(kids):
        assert (await second.get(f"/key?kid={kid}")).status == 200


@pytest.mark.parametrize(
    ("lines", "said"),
    [
        ("key_rotation_segments = 0", "key_rotation_segments: must be >= 1"),
        ("key_rotation_minutes = -1", "key_rotation_minutes: must be > 0"),
        ("key_rotation_segments = 2\nkey_rotation_minutes = 1", "not both"),
    ],
)
def test_a_bad_rotation_is_a_config_error_naming_the_field(
    tmp_path: Path, lines: str, said: str
) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(_config(tmp_path, lines))
    assert said in str(e.value)


def test_minutes_become_whole_segments(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "key_rotation_minutes = 1"))
    assert config.channels[0].key_rotation == 15  # 60 s of 4 s segments
