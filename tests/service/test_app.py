"""The app's HTTP behaviour through pytest-aiohttp's in-process client, no subprocess: routing,
exact error statuses, delivery policies, CORS, validators, ranges, HEAD, and the app's cleanup.
The real server's own concerns (sockets, signals, workers, timeouts) are in test_server.py and
test_connections.py."""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import m3u8
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from origin.service.app import build_app
from origin.service.config import load_config
from origin.service.state import State, build_state
from tests.support.media import make_mp4
from tests.support.server import SAMPLE_KEY, SAMPLE_KID, sample_config

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]

MASTER = "/bbb.ism/manifest(format=m3u8-aapl)"
KEY = f"/key?kid={SAMPLE_KID}"
ORIGIN = {"Origin": "https://player.example"}


async def _client(aiohttp_client: MakeClient, cfg: Path) -> Client:
    return await aiohttp_client(build_app(build_state(load_config(cfg))))


@pytest.fixture
async def client(tmp_path: Path, aiohttp_client: MakeClient) -> Client:
    """The sample ladder as ``bbb``, AES-128 for HLS, DASH and Smooth outside its policy."""
    return await _client(aiohttp_client, sample_config(tmp_path))


async def _first_segment(client: Client) -> str:
    """The first segment of the master playlist's first variant, found as a player finds it."""
    master_url = str(client.make_url(MASTER))
    master = m3u8.loads(await (await client.get(MASTER)).text())
    media_url = urljoin(master_url, master.playlists[0].uri)
    media = m3u8.loads(await (await client.get(urlsplit(media_url).path)).text())
    return urlsplit(urljoin(media_url, media.segments[0].uri)).path


# --- Routing and errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/bbb.ism/manifest(format=m3u8-bogus)", "m3u8-bogus"),
        ("/bbb.ism/manifest(format=m3u8-aapl,colour=red)", "colour"),
        ("/bbb.ism/manifest(format=m3u8-aapl,format=m3u8-aapl)", "twice"),
        ("/not-a-uuid/bbb.ism/manifest(format=m3u8-aapl)", "not-a-uuid"),
        ("/bbb.ism/manifest(format=mpd-time-csf,encryption=cbc)", "not a scheme for format=mpd"),
        ("/bbb.ism/QualityLevels(1)/Fragments(video=0,format=m3u8-aapl).m4s", ".m4s"),
        ("/bbb.ism/QualityLevels(1)/Manifest(video)", "format=m3u8"),
        ("/bbb.ism/something-else", "malformed"),
        ("/key", "kid"),
        ("/key?kid=not-a-uuid", "UUID"),
    ],
)
async def test_malformed_urls_are_400_and_name_what_is_wrong(
    client: Client, path: str, named: str
) -> None:
    r = await client.get(path)
    assert r.status == 400
    body = await r.text()
    assert body.startswith("bad request: ") and named in body, body
    assert r.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/favicon.ico", "no such resource"),
        ("/nope.ism/manifest(format=m3u8-aapl)", "no asset 'nope'"),
        ("/bbb.ism/QualityLevels(1)/Manifest(video,format=m3u8-aapl)", ""),
        ("/bbb.ism/QualityLevels(1)/Fragments(video=0,format=m3u8-aapl).ts", ""),
        ("/key?kid=00000000-0000-4000-8000-000000000000", "no key"),
    ],
)
async def test_unknown_assets_renditions_and_keys_are_404(
    client: Client, path: str, named: str
) -> None:
    r = await client.get(path)
    assert r.status == 404
    body = await r.text()
    assert body.startswith("not found") and named in body, body


async def test_a_fragment_time_that_is_no_segment_start_is_404(client: Client) -> None:
    segment = await _first_segment(client)
    assert (await client.get(segment)).status == 200
    assert "=0," in segment  # the first segment starts at time 0
    r = await client.get(segment.replace("=0,", "=1,", 1))
    assert r.status == 404


async def test_a_method_the_route_does_not_take_is_405(client: Client) -> None:
    r = await client.post(MASTER)
    assert r.status == 405
    assert "GET" in r.headers["Allow"]
    assert r.headers["Access-Control-Allow-Origin"] == "*"


async def test_protocols_outside_the_delivery_policy_are_403_naming_the_setting(
    client: Client,
) -> None:
    for path in (
        "/bbb.ism/manifest(format=mpd-time-csf)",
        "/bbb.ism/manifest",
        "/bbb.ism/QualityLevels(64664)/Fragments(audio=0)",
    ):
        r = await client.get(path)
        assert r.status == 403, path
        body = await r.text()
        assert "delivery policy" in body and '= "cenc"' in body, body
    assert (await client.get(MASTER)).status == 200


async def test_smooth_of_renditions_cut_at_different_times_is_409_with_the_reason(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    # Keyframes every 2 s in one rendition and every 1.4 s in the other: no shared chunk times.
    a = make_mp4(tmp_path / "a.mp4", seconds=4, gop=50)
    b = make_mp4(tmp_path / "b.mp4", seconds=4, gop=35, size="480x270", audio=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[[assets]]\nname = "u"\nfiles = ["{a}", "{b}"]\nsegment_duration = 2.0\n')
    client = await _client(aiohttp_client, cfg)
    r = await client.get("/u.ism/manifest")
    assert r.status == 409
    assert "not aligned across renditions" in await r.text()
    assert r.headers["Cache-Control"] == "no-store"
    assert (await client.get("/u.ism/manifest(format=m3u8-aapl)")).status == 200


# --- CORS ---------------------------------------------------------------------------------------


async def test_cors_headers_on_successes_errors_and_preflight(client: Client) -> None:
    for path, status in ((MASTER, 200), (KEY, 200), ("/nope", 404), ("/bbb.ism/x", 400)):
        r = await client.get(path, headers=ORIGIN)
        assert r.status == status, path
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        exposed = {h.strip() for h in r.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"Content-Length", "Content-Range", "ETag", "WWW-Authenticate"} <= exposed
    pre = await client.options(
        KEY,
        headers={**ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,range"},
    )  # fmt: skip
    assert pre.status == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    allowed = pre.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "range" in allowed
    assert int(pre.headers["Access-Control-Max-Age"]) > 0


async def test_cors_allow_list_reflects_a_listed_origin_only(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    cfg = sample_config(tmp_path, 'cors_origins = ["https://player.example"]')
    client = await _client(aiohttp_client, cfg)
    for path in (MASTER, "/nope"):
        ok = await client.get(path, headers=ORIGIN)
        assert ok.headers["Access-Control-Allow-Origin"] == "https://player.example"
        assert ok.headers["Access-Control-Allow-Credentials"] == "true"
        assert "Origin" in ok.headers["Vary"]
        other = await client.get(path, headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers
        assert "Origin" in other.headers["Vary"]


# --- Validators, ranges, HEAD -------------------------------------------------------------------


async def test_manifests_and_segments_revalidate_with_304(client: Client) -> None:
    for path in (MASTER, await _first_segment(client)):
        r = await client.get(path)
        etag = r.headers["ETag"]
        assert etag.startswith('"') and "Last-Modified" in r.headers
        again = await client.get(path, headers={"If-None-Match": etag})
        assert again.status == 304 and await again.read() == b""
        assert again.headers["ETag"] == etag
        assert (await client.get(path, headers={"If-None-Match": '"other"'})).status == 200


async def test_ranges_give_206_slices_and_416_past_the_end(client: Client) -> None:
    path = await _first_segment(client)
    whole = await (await client.get(path)).read()
    r = await client.get(path, headers={"Range": "bytes=100-299"})
    assert r.status == 206
    assert await r.read() == whole[100:300]
    assert r.headers["Content-Range"] == f"bytes 100-299/{len(whole)}"
    suffix = await client.get(path, headers={"Range": "bytes=-16"})
    assert suffix.status == 206 and await suffix.read() == whole[-16:]
    past = await client.get(path, headers={"Range": f"bytes={len(whole)}-"})
    assert past.status == 416
    assert past.headers["Content-Range"] == f"bytes */{len(whole)}"
    # If-Range with another validator: the whole entity.
    other = await client.get(path, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert other.status == 200 and await other.read() == whole


async def test_head_gives_get_headers_without_a_body(client: Client) -> None:
    for path in (MASTER, await _first_segment(client)):
        get = await client.get(path)
        body = await get.read()
        head = await client.head(path)
        assert head.status == 200 and await head.read() == b""
        assert head.headers["Content-Length"] == str(len(body))
        assert head.headers["ETag"] == get.headers["ETag"]
        assert head.headers["Content-Type"] == get.headers["Content-Type"]


async def test_the_key_is_served_raw_and_never_cached(client: Client) -> None:
    for r in (await client.get(KEY), await client.post(KEY)):
        assert r.status == 200
        assert await r.read() == SAMPLE_KEY
        assert r.headers["Cache-Control"] == "no-store"


# --- The app owns its state ---------------------------------------------------------------------


async def test_the_apps_cleanup_closes_the_state_it_serves(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    state: State = build_state(load_config(sample_config(tmp_path)))
    client = await aiohttp_client(build_app(state))
    assert (await client.get(MASTER)).status == 200
    fds = [f.fd for a in state.assets.values() for f in a.files]
    assert fds
    for fd in fds:
        os.fstat(fd)  # open while the app runs
    await client.close()
    for fd in fds:
        with pytest.raises(OSError) as e:
            os.fstat(fd)
        assert e.value.errno == errno.EBADF
