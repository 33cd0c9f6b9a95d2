"""Live channels through the app in process (pytest-aiohttp): ffmpeg's own ismv pushed to the
ingest route, then everything a player fetches: manifests, segments, keys, the clock; and
every refusal with its exact status."""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import m3u8
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from origin.core.crypto.aes128 import decrypt
from origin.service.app import build_app
from origin.service.config import load_config, resolve_secrets
from origin.service.state import build_state
from tests.support.dash_check import assert_valid_mpd
from tests.support.media import FFMPEG, make_mp4
from tests.support.server import sample_config

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]

SECRET = "s3cret-ingest-password-0123"
KID = "6f1c2d3e-4a5b-4c6d-8e7f-901234567890"
KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
BASIC = {"Authorization": "Basic " + base64.b64encode(f"enc:{SECRET}".encode()).decode()}
INGEST = "/tv.isml/Streams(s1)"
MASTER = "/tv.isml/manifest(format=m3u8-aapl)"


@pytest.fixture(scope="module")
def ismv(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """12 s of ffmpeg's live Smooth ingest (2 s GOPs), as it POSTs it: ftyp, moov, fragments,
    mfra."""
    path = tmp_path_factory.mktemp("live") / "live.ismv"
    extra = ("-f", "ismv", "-movflags", "isml+frag_keyframe")
    return make_mp4(path, seconds=12, faststart=False, extra=extra).read_bytes()


def _channels(protection: str = "aes-128", allow: str = "") -> str:
    key = f'key_id = "{KID}"\nkey = "{KEY.hex()}"\ndash = "clear"\nsmooth = "clear"'
    return f"""
[[channels]]
name = "tv"
ingest_user = "enc"
ingest_secret = "{SECRET}"
{allow}
window = 12
segment_duration = 4
protection = "{protection}"
{key if protection == "aes-128" else ""}
"""


async def _client(aiohttp_client: MakeClient, tmp_path: Path, **kw: str) -> Client:
    cfg = sample_config(tmp_path, server=f'state_dir = "{tmp_path}"', more=_channels(**kw))
    config = resolve_secrets(load_config(cfg), tmp_path)
    return await aiohttp_client(build_app(build_state(config)))


@pytest.fixture
async def client(tmp_path: Path, aiohttp_client: MakeClient) -> Client:
    return await _client(aiohttp_client, tmp_path)


async def _pieces(data: bytes, size: int = 16_384) -> AsyncIterator[bytes]:
    for k in range(0, len(data), size):
        yield data[k : k + size]


async def _push(client: Client, data: bytes, headers: dict[str, str] | None = None) -> int:
    r = await client.post(INGEST, data=_pieces(data), headers=BASIC if headers is None else headers)
    await r.read()
    return r.status


async def _text(client: Client, path: str) -> str:
    r = await client.get(path)
    assert r.status == 200, (path, r.status, await r.text())
    return await r.text()


async def _media(client: Client, fmt: str = "m3u8-aapl") -> tuple[str, m3u8.M3U8]:
    master_path = f"/tv.isml/manifest(format={fmt})"
    master_url = str(client.make_url(master_path))
    master = m3u8.loads(await _text(client, master_path))
    media_url = urljoin(master_url, master.playlists[0].uri)
    return media_url, m3u8.loads(await _text(client, urlsplit(media_url).path))


def _path(url: str) -> str:
    return urlsplit(url).path


# --- before any encoder -----------------------------------------------------------------------


async def test_a_channel_without_an_encoder_is_a_404_a_cdn_retries_soon(client: Client) -> None:
    r = await client.get(MASTER)
    assert r.status == 404
    assert r.headers["Cache-Control"] == "public, max-age=1"
    assert "no stream yet" in await r.text()


async def test_an_unknown_channel_is_404(client: Client) -> None:
    assert (await client.get("/nope.isml/manifest(format=m3u8-aapl)")).status == 404
    assert (await client.post("/nope.isml/Streams(s1)", data=b"x", headers=BASIC)).status == 404


# --- ingest authentication -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic " + base64.b64encode(b"enc:wrong").decode()}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
    ],
)
async def test_ingest_without_the_credential_is_refused_and_nothing_is_indexed(
    client: Client, ismv: bytes, headers: dict[str, str], status: int
) -> None:
    r = await client.post(INGEST, data=ismv, headers=headers)
    assert r.status == status
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    assert SECRET not in await r.text()
    assert (await client.get(MASTER)).status == 404


async def test_ingest_from_outside_the_allow_list_is_403(
    tmp_path: Path, aiohttp_client: MakeClient, ismv: bytes
) -> None:
    client = await _client(aiohttp_client, tmp_path, allow='ingest_allow = ["10.9.9.0/24"]')
    assert await _push(client, ismv) == 403
    assert (await client.get(MASTER)).status == 404


async def test_a_bearer_secret_is_accepted(client: Client, ismv: bytes) -> None:
    assert await _push(client, ismv, {"Authorization": f"Bearer {SECRET}"}) == 200
    assert (await client.get(MASTER)).status == 200


# --- ingest to playback -----------------------------------------------------------------------


async def test_fragments_play_while_the_post_is_still_running(client: Client, ismv: bytes) -> None:
    seen = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        half = len(ismv) // 2
        async for piece in _pieces(ismv[:half]):
            yield piece
        await asyncio.wait_for(seen.wait(), 10)
        async for piece in _pieces(ismv[half:]):
            yield piece

    post = asyncio.create_task(client.post(INGEST, data=body(), headers=BASIC))
    for _ in range(200):
        r = await client.get(MASTER)
        if r.status == 200:
            break
        await asyncio.sleep(0.02)
    _, media = await _media(client)
    assert media.segments and not media.is_endlist
    seen.set()
    assert (await post).status == 200


async def test_an_ended_stream_plays_in_ffmpeg_with_aes_128(
    client: Client, ismv: bytes, tmp_path: Path
) -> None:
    assert await _push(client, ismv) == 200
    media_url, media = await _media(client)
    assert media.is_endlist  # ffmpeg's mfra ended the stream
    assert media.keys[0] is not None and media.keys[0].method == "AES-128"
    assert re.search(r"#EXT-X-PROGRAM-DATE-TIME:", media.dumps())
    out = tmp_path / "all.ts"
    with out.open("wb") as f:
        for k, seg in enumerate(media.segments):
            r = await client.get(_path(urljoin(media_url, seg.uri)))
            assert r.status == 200 and r.headers["Content-Type"] == "video/mp2t"
            assert "max-age=31536000" in r.headers["Cache-Control"]
            iv = (media.media_sequence + k).to_bytes(16, "big")
            f.write(decrypt(KEY, iv, await r.read()))
    run = subprocess.run(
        [FFMPEG, "-v", "warning", "-i", str(out), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0 and not run.stderr.strip(), run.stderr
    key = await client.get(f"/key?kid={KID}")
    assert key.status == 200 and await key.read() == KEY


async def test_live_playlists_are_short_lived_and_revalidate_with_304(
    client: Client, ismv: bytes
) -> None:
    half = ismv[: len(ismv) // 2]
    r = await client.post(INGEST, data=_pieces(half), headers=BASIC)
    await r.read()
    media_url, _ = await _media(client)
    r = await client.get(_path(media_url))
    assert r.headers["Cache-Control"] == "public, max-age=2"  # half the 4 s segment
    again = await client.get(_path(media_url), headers={"If-None-Match": r.headers["ETag"]})
    assert again.status == 304


async def test_a_segment_not_yet_there_is_404_for_a_second_and_one_slid_out_is_410(
    client: Client, ismv: bytes
) -> None:
    assert await _push(client, ismv[: len(ismv) - 8]) == 200  # without the mfra: not ended
    media_url, media = await _media(client)
    first = urljoin(media_url, media.segments[0].uri)
    t = int(re.search(r"video=(\d+)", first)[1])  # type: ignore[index]
    r = await client.get(_path(first.replace(f"video={t}", f"video={t + 10**12}")))
    assert r.status == 404 and r.headers["Cache-Control"] == "public, max-age=1"
    # The encoder restarts at 0: its 12 s follow the first 12 s and fill the 12 s window.
    assert await _push(client, ismv[: len(ismv) - 8]) == 200
    _, media = await _media(client)
    assert urljoin(media_url, media.segments[0].uri) != first
    r = await client.get(_path(first))
    assert r.status == 410 and "left the window" in await r.text()


async def test_garbage_ingest_is_400_and_what_was_indexed_keeps_playing(
    client: Client, ismv: bytes
) -> None:
    assert await _push(client, ismv[: len(ismv) - 8]) == 200
    _, before = await _media(client)
    r = await client.post(
        "/tv.isml/Streams(s2)", data=b"\x00\x00\x00\x10junkjunkjunkjunk", headers=BASIC
    )
    assert r.status == 400
    assert "ingest refused" in await r.text()
    _, after = await _media(client)
    assert [s.uri for s in after.segments] == [s.uri for s in before.segments]


async def test_dash_is_a_valid_dynamic_mpd_with_the_origins_clock(
    client: Client, ismv: bytes
) -> None:
    assert await _push(client, ismv[: len(ismv) - 8]) == 200
    mpd = await _text(client, "/tv.isml/manifest(format=mpd-time-csf)")
    assert 'type="dynamic"' in mpd
    assert_valid_mpd(mpd)
    url = re.search(r'<UTCTiming schemeIdUri="[^"]+" value="([^"]+)"', mpd)
    assert url is not None
    r = await client.get(_path(url[1]))
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", await r.text())


async def test_smooth_is_a_live_manifest(client: Client, ismv: bytes) -> None:
    assert await _push(client, ismv[: len(ismv) - 8]) == 200
    text = await _text(client, "/tv.isml/manifest")
    assert 'IsLive="TRUE"' in text and "LookAheadFragmentCount" in text


async def test_the_status_endpoint_shows_the_connected_stream(client: Client, ismv: bytes) -> None:
    assert await _push(client, ismv[: len(ismv) - 8]) == 200
    data = await (await client.get("/channels")).json()
    (tv,) = data["channels"]
    assert tv["name"] == "tv" and tv["state"] == "live"
    (stream,) = tv["streams"]
    assert stream["stream"] == "s1" and stream["connections"] == 0
    assert any(t.startswith("video") for t in stream["tracks"])


async def test_the_archive_is_the_stream_as_sent_and_loads_as_a_vod_asset(
    tmp_path: Path, aiohttp_client: MakeClient, ismv: bytes
) -> None:
    archive = tmp_path / "archive"
    client = await _client(aiohttp_client, tmp_path, allow=f'archive = "{archive}"')
    assert await _push(client, ismv) == 200
    (file,) = (archive / "tv").iterdir()
    assert file.name.startswith("s1-") and file.read_bytes() == ismv
    vod = tmp_path / "vod"
    vod.mkdir()
    cfg = vod / "vod.toml"
    cfg.write_text(f'[[assets]]\nname = "rec"\nfiles = ["{file}"]\nsegment_duration = 4\n')
    state = build_state(load_config(cfg))
    assert "rec" in state.assets, state.refused
    vod_client = await aiohttp_client(build_app(state))
    playlist = await _text(vod_client, "/rec.ism/manifest(format=m3u8-aapl)")
    assert "#EXT-X-STREAM-INF" in playlist


def _boxes(data: bytes) -> list[tuple[str, int, int]]:
    out, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        out.append((data[pos + 4 : pos + 8].decode("latin-1"), pos, size))
        pos += size
    return out


async def test_a_fragment_going_back_in_time_is_400_and_the_stream_keeps_playing(
    client: Client, ismv: bytes
) -> None:
    boxes = _boxes(ismv)
    moof = next(k for k, (kind, _, _) in enumerate(boxes) if kind == "moof")
    _, first_at, _ = boxes[moof]
    _, mdat_at, mdat_size = boxes[moof + 1]
    mfra_at = next(at for kind, at, _ in boxes if kind == "mfra")
    again = ismv[first_at : mdat_at + mdat_size]  # the first fragment, sent again
    r = await client.post(INGEST, data=_pieces(ismv[:mfra_at] + again), headers=BASIC)
    assert r.status == 400 and "backwards" in await r.text()
    _, media = await _media(client)
    assert len(media.segments) == 3 and not media.is_endlist


async def test_what_ffmpegs_hls_muxer_puts_is_indexed_and_its_playlists_dropped(
    client: Client, tmp_path: Path
) -> None:
    # The files `ffmpeg -f hls -hls_segment_type fmp4 -method PUT …/Streams(hls)/x.m3u8` PUTs, in
    # the order it PUTs them: init.mp4, then each x{k}.m4s followed by the playlist.
    out = tmp_path / "hls"
    out.mkdir()
    lavfi = ["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i"]
    subprocess.run(
        [FFMPEG, "-v", "error", *lavfi, "sine=sample_rate=48000", "-t", "8", "-c:v", "libx264",
         "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-c:a", "aac", "-f", "hls",
         "-hls_segment_type", "fmp4", "-hls_time", "2", "-hls_playlist_type", "vod",
         str(out / "x.m3u8")],
        check=True,
    )  # fmt: skip
    base = "/tv.isml/Streams(hls)/"
    assert (
        await client.put(base + "init.mp4", data=(out / "init.mp4").read_bytes(), headers=BASIC)
    ).status == 200
    for k in range(4):
        body = (out / f"x{k}.m4s").read_bytes()
        assert (await client.put(base + f"x{k}.m4s", data=body, headers=BASIC)).status == 200
        playlist = (out / "x.m3u8").read_bytes()
        assert (await client.put(base + "x.m3u8", data=playlist, headers=BASIC)).status == 200
    _, media = await _media(client, "m3u8-cmaf")
    assert len(media.segments) >= 1


async def test_a_reload_keeps_a_channels_window_unless_its_timing_changes(
    tmp_path: Path, aiohttp_client: MakeClient, ismv: bytes
) -> None:
    from origin.service.live.channels import CHANNELS  # noqa: PLC0415

    client = await _client(aiohttp_client, tmp_path)
    assert await _push(client, ismv[: len(ismv) - 8]) == 200
    channels = client.app[CHANNELS]
    before = channels.by_name["tv"].index
    # The same channel under another key: the index (and its window) stays.
    more = _channels().replace(KEY.hex(), "ff" * 16)
    cfg = sample_config(tmp_path, server=f'state_dir = "{tmp_path}"', more=more)
    channels.sync(build_state(resolve_secrets(load_config(cfg), tmp_path)))
    assert channels.by_name["tv"].index is before
    assert channels.by_name["tv"].config.key == bytes.fromhex("ff" * 16)
    # A new window is a new timing: the channel starts afresh.
    longer = more.replace("window = 12", "window = 24")
    cfg = sample_config(tmp_path, server=f'state_dir = "{tmp_path}"', more=longer)
    channels.sync(build_state(resolve_secrets(load_config(cfg), tmp_path)))
    assert channels.by_name["tv"].index is not before
    assert channels.by_name["tv"].index.view is None
    # Removed from the config: gone.
    cfg = sample_config(tmp_path, server=f'state_dir = "{tmp_path}"')
    channels.sync(build_state(resolve_secrets(load_config(cfg), tmp_path)))
    assert "tv" not in channels.by_name
