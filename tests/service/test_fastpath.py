"""The fast path (origin.service.fastpath): cached manifests and open keys answered by the
connection itself, byte for byte what aiohttp answered, and only where nothing else could change
the answer."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from origin.core.live.model import ChannelView
from origin.service import fastpath
from origin.service.app import build_app
from origin.service.config import load_config, resolve_secrets
from origin.service.connections import FAST_CAPABLE, Limits
from origin.service.fastpath import FAST, Answer, request_key
from origin.service.served import STATE
from origin.service.state import State, build_state
from tests.service.test_live_app import BASIC, INGEST
from tests.service.test_live_app import _channels as live_channels
from tests.service.test_live_app import ismv as _ismv_fixture
from tests.support import token_server
from tests.support.safe_server import SafeTestServer
from tests.support.server import SAMPLE_KEY, sample_config

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]

OPEN_KID = "da3813af-55e6-48e7-aa9f-a4d6031f7b4d"
SITE_A, SITE_B = "https://a.example", "https://b.example"
MASTER = "/plain.ism/manifest(format=m3u8-aapl)"
MEDIA = "/plain.ism/QualityLevels(152122)/Manifest(video,format=m3u8-aapl)"
MPD = "/plain.ism/manifest(format=mpd-time-csf)"
SMOOTH = "/plain.ism/manifest"
OPEN_KEY = f"/key?kid={OPEN_KID}"
CACHEABLE = (MASTER, MEDIA, MPD, SMOOTH, OPEN_KEY)

pytestmark = pytest.mark.skipif(not FAST_CAPABLE, reason="aiohttp lacks what the fast path uses")


def _config_text() -> str:
    text = token_server.config_text().replace(
        "[server]\n", f'[server]\ncors_origins = ["{SITE_A}", "{SITE_B}"]\n', 1
    )
    return (
        text
        + f"""
[[assets]]
name = "plain"
files = [{token_server.FILES}]
segment_duration = 4.0
protection = "aes-128"
key_id = "{OPEN_KID}"
key = "{"33" * 16}"
dash = "clear"
smooth = "clear"
"""
    )


@pytest.fixture
def state(tmp_path: Path) -> State:
    path = tmp_path / "origin.toml"
    path.write_text(_config_text())
    return build_state(load_config(path))


@pytest.fixture
async def app_client(state: State, aiohttp_client: MakeClient) -> AsyncIterator[Client]:
    yield await aiohttp_client(SafeTestServer(build_app(state), Limits()))


ismv = _ismv_fixture  # ffmpeg's live Smooth ingest, shared with test_live_app


class Conn:
    """One kept-alive connection, written and read as raw bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, client: Client) -> Conn:
        return cls(*await asyncio.open_connection(client.host, client.port))

    async def response(self) -> tuple[bytes, bytes]:
        """The next response: its head (status line and headers) and its body."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        m = re.search(rb"\r\nContent-Length: (\d+)\r\n", head)
        length = int(m.group(1)) if m else 0
        body = await asyncio.wait_for(self.reader.readexactly(length), 10) if length else b""
        return head, body

    async def get(self, target: str, *extra: str, version: str = "1.1") -> tuple[bytes, bytes]:
        self.writer.write(request(target, *extra, version=version))
        return await self.response()

    def close(self) -> None:
        self.writer.close()


def request(target: str, *extra: str, version: str = "1.1", method: str = "GET") -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "Host: origin.test", "User-Agent: t", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def without_date(head: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: -", head)


def stored_keys(client: Client) -> list[Answer]:
    """The stored answers of key requests."""
    items: dict[Any, tuple[Answer, int]] = client.app[STATE].current.answers._items
    return [answer for key, (answer, _) in items.items() if key[0].startswith(b"/key")]


def hits(client: Client) -> int:
    return client.app[FAST].hits


@pytest.mark.parametrize("target", CACHEABLE)
async def test_a_repeated_request_is_answered_by_the_fast_path_with_the_bytes_aiohttp_wrote(
    app_client: Client, target: str
) -> None:
    conn = await Conn.open(app_client)
    first = await conn.get(target)
    assert first[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert hits(app_client) == 0
    second = await conn.get(target)
    assert hits(app_client) == 1
    assert without_date(second[0]) == without_date(first[0])
    assert second[1] == first[1]
    assert re.search(rb"\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\r\n", second[0])
    other = await Conn.open(app_client)  # another viewer's connection: the same answer
    assert (await other.get(target))[1] == first[1]
    assert hits(app_client) == 2
    conn.close()
    other.close()


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ("Authorization: Bearer abc", 200),
        ("Cookie: a=b", 200),
        ("X-Forwarded-For: 203.0.113.9", 200),
        ("Range: bytes=0-9", 206),
        ("Connection: close", 200),
    ],
)
async def test_a_request_with_a_header_that_may_change_the_answer_goes_to_aiohttp(
    app_client: Client, extra: str, status: int
) -> None:
    conn = await Conn.open(app_client)
    await conn.get(MASTER)
    head, body = await conn.get(MASTER, extra)
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert hits(app_client) == 0
    if status == 206:
        assert len(body) == 10
    conn.close()


async def test_a_revalidation_gets_the_304_aiohttp_gave_for_the_same_validators(
    app_client: Client,
) -> None:
    conn = await Conn.open(app_client)
    head, body = await conn.get(MASTER)
    etag = re.search(rb"\r\nETag: ([^\r]*)", head)
    assert etag is not None
    inm = f"If-None-Match: {etag.group(1).decode()}"
    first = await conn.get(MASTER, inm)
    assert first[0].startswith(b"HTTP/1.1 304 ")
    assert first[1] == b""
    assert hits(app_client) == 0  # aiohttp's
    again = await conn.get(MASTER, inm)
    assert hits(app_client) == 1
    assert without_date(again[0]) == without_date(first[0])
    assert b"Content-Length" not in again[0]
    # A validator of another version gets the whole answer, as from aiohttp.
    stale = await conn.get(MASTER, 'If-None-Match: "old"')
    assert stale[0].startswith(b"HTTP/1.1 200 ")
    assert stale[1] == body
    assert (await conn.get(MASTER))[1] == body  # the plain request keeps its own answer
    conn.close()


async def test_head_and_http_1_0_requests_are_not_answered_by_the_fast_path(
    app_client: Client,
) -> None:
    conn = await Conn.open(app_client)
    await conn.get(MASTER)
    conn.writer.write(request(MASTER, method="HEAD"))
    head = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200 ")
    head, _ = await conn.get(MASTER, "Connection: keep-alive", version="1.0")
    assert head.startswith(b"HTTP/1.0 200 ")
    assert hits(app_client) == 0
    conn.close()


async def test_each_allowed_origin_gets_its_own_cors_answer(app_client: Client) -> None:
    conn = await Conn.open(app_client)
    for _ in range(2):
        for site in (SITE_A, SITE_B):
            head, _ = await conn.get(MASTER, f"Origin: {site}")
            assert f"\r\nAccess-Control-Allow-Origin: {site}\r\n".encode() in head
        head, _ = await conn.get(MASTER)  # no Origin
        assert b"Access-Control-Allow-Origin" not in head
    assert hits(app_client) == 3
    conn.close()


async def test_pipelined_hits_are_answered_together_and_a_miss_sends_all_to_aiohttp_in_order(
    app_client: Client,
) -> None:
    conn = await Conn.open(app_client)
    expected = {t: (await conn.get(t))[1] for t in (MASTER, MPD)}
    conn.writer.write(request(MASTER) + request(MPD) + request(MASTER))
    bodies = [(await conn.response())[1] for _ in range(3)]
    assert bodies == [expected[MASTER], expected[MPD], expected[MASTER]]
    assert hits(app_client) == 3
    conn.writer.write(request(MPD) + request(SMOOTH) + request(MASTER))  # SMOOTH: not yet kept
    heads = [await conn.response() for _ in range(3)]
    assert [h[1] for h in heads[::2]] == [expected[MPD], expected[MASTER]]
    assert b"<SmoothStreamingMedia" in heads[1][1]
    assert hits(app_client) == 3
    conn.close()


async def test_a_head_split_across_two_reads_is_answered_by_aiohttp(app_client: Client) -> None:
    conn = await Conn.open(app_client)
    _, body = await conn.get(MASTER)
    data = request(MASTER)
    conn.writer.write(data[:20])
    await conn.writer.drain()
    await asyncio.sleep(0.05)
    conn.writer.write(data[20:])
    assert (await conn.response())[1] == body
    assert (await conn.get(MASTER))[1] == body  # still right once the fast path lets go
    assert hits(app_client) == 0
    conn.close()


async def test_a_get_after_a_posted_key_request_on_the_same_connection_is_right(
    app_client: Client,
) -> None:
    conn = await Conn.open(app_client)
    _, key = await conn.get(OPEN_KEY)
    conn.writer.write(
        request(OPEN_KEY, "Content-Length: 5", method="POST") + b"hello" + request(OPEN_KEY)
    )
    assert (await conn.response())[1] == key
    assert (await conn.response())[1] == key
    assert len(key) == 16
    conn.close()


async def test_a_reload_drops_every_answer(app_client: Client, tmp_path: Path) -> None:
    conn = await Conn.open(app_client)
    await conn.get(MASTER)
    await conn.get(MASTER)
    assert hits(app_client) == 1
    path = tmp_path / "reloaded.toml"
    path.write_text(_config_text().replace('name = "plain"', 'name = "plain2"'))
    live = app_client.app[STATE]
    old, live.current = live.current, build_state(load_config(path))
    head, _ = await conn.get(MASTER)
    assert head.startswith(b"HTTP/1.1 404 ")  # the new state's answer, not the stored one
    assert hits(app_client) == 1
    old.close()
    conn.close()


async def test_token_gated_manifests_and_policy_keys_are_never_kept(app_client: Client) -> None:
    token = token_server.make_jwt(kid=token_server.OTHER_KID)
    gated = f"/gated.ism/manifest(format=m3u8-aapl)?token={token}"
    secure_key = f"/key?kid={token_server.KID}"  # its policy wants a token or an address
    conn = await Conn.open(app_client)
    for _ in range(3):
        head, _ = await conn.get(gated)
        assert head.startswith(b"HTTP/1.1 200 ")
        head, _ = await conn.get(secure_key)
        assert head.startswith(b"HTTP/1.1 401 ")
        head, _ = await conn.get(secure_key, "X-Forwarded-For: 203.0.113.9")
        assert head.startswith(b"HTTP/1.1 200 ")
        head, _ = await conn.get("/gated.ism/manifest(format=m3u8-aapl)")
        assert head.startswith(b"HTTP/1.1 401 ")
    assert hits(app_client) == 0
    assert len(app_client.app[STATE].current.answers) == 0
    conn.close()


async def test_a_fast_answer_is_written_to_the_access_log_like_aiohttps(
    app_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="origin.access"):
        conn = await Conn.open(app_client)  # a connection logs if logging was on when it opened
        await conn.get(MASTER + "?x=1")
        await conn.get(MASTER + "?x=1")
    lines = [r.getMessage() for r in caplog.records if r.name == "origin.access"]
    assert hits(app_client) == 1
    assert len(lines) == 2
    shape = [re.sub(r" [\d.]+ms$", "", line) for line in lines]
    assert shape[0] == shape[1]
    assert '"GET /plain.ism/manifest(format=m3u8-aapl)" 200' in shape[0]  # never the query
    conn.close()


async def test_a_connection_kept_alive_by_fast_answers_still_closes_once_idle(
    state: State, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(SafeTestServer(build_app(state), Limits(), keepalive_timeout=0.5))
    conn = await Conn.open(client)
    await conn.get(MASTER)
    for _ in range(4):  # the fast answers push the idle deadline on
        await asyncio.sleep(0.3)
        await conn.get(MASTER)
    assert hits(client) == 4
    assert await asyncio.wait_for(conn.reader.read(), 5) == b""  # closed by the server
    conn.close()


# --- the pieces ---------------------------------------------------------------------------------


def test_request_key_takes_only_requests_with_harmless_headers() -> None:
    base = [(b"Host", b"o.test"), (b"User-Agent", b"x"), (b"Accept", b"*/*")]
    none = b"\x00"
    assert request_key(b"/a", base) == (b"/a", b"o.test", none, none, none, none)
    with_origin = [*base, (b"origin", b"https://a.example")]
    assert request_key(b"/a", with_origin) == (
        b"/a",
        b"o.test",
        b"https://a.example",
        none,
        none,
        none,
    )
    revalidation = [*base, (b"If-None-Match", b'"x"'), (b"if-modified-since", b"d")]
    assert request_key(b"/a", revalidation) == (b"/a", b"o.test", none, b'"x"', b"d", none)
    bearer = [*base, (b"Authorization", b"Bearer t")]
    assert request_key(b"/a", bearer) == (b"/a", b"o.test", none, none, none, b"Bearer t")
    assert request_key(b"/a", [*base, (b"Connection", b"Keep-Alive")]) is not None
    refused: list[tuple[bytes, list[tuple[bytes, bytes]]]] = [
        (b"/a", [*base, (b"Cookie", b"a=b")]),
        (b"/a", [*base, (b"Range", b"bytes=0-1")]),
        (b"/a", [*base, (b"If-None-Match", b'"x"'), (b"If-None-Match", b'"y"')]),
        (b"/a", [*base, (b"Connection", b"close")]),
        (b"/a", [*base, (b"Host", b"other.test")]),  # two hosts
        (b"/a", [*with_origin, (b"Origin", b"https://b.example")]),
        (b"/a", [(b"User-Agent", b"x")]),  # no host
        (b"/a", [*base, (b"Accept", b"x" * (fastpath.MAX_VALUE + 1))]),
        (b"/" + b"a" * fastpath.MAX_TARGET, base),
        (b"*", base),
    ]
    for target, headers in refused:
        assert request_key(target, headers) is None, (target, headers)


def test_an_answer_is_valid_before_its_until_and_while_its_check_holds() -> None:
    state = {"current": True}
    answer = Answer(b"", b"", 200, "/", until=100.0, check=lambda: state["current"])
    assert answer.valid(99.9)
    assert not answer.valid(100.0)
    state["current"] = False
    assert not answer.valid(50.0)
    assert Answer(b"", b"", 200, "/").valid(1e12)


async def test_a_live_manifest_answer_is_dropped_when_the_channel_view_changes(
    app_client: Client,
) -> None:
    """The stored answer of a live playlist carries the view it was built from."""
    app = app_client.app
    answers = app[STATE].current.answers
    seen: list[Any] = []

    class Index:
        view: ChannelView | None = None

    index = Index()
    index.view = object()  # type: ignore[assignment]
    published = index.view
    key = (b"/live.isml/manifest", b"origin.test", *(b"\x00",) * 4)
    answers.put(key, Answer(b"H", b"T", 200, "/", check=lambda: index.view is published), cost=100)
    fast = app[FAST]
    assert fast.lookup(key, 0.0) is not None
    index.view = object()  # type: ignore[assignment]
    seen.append(fast.lookup(key, 0.0))
    assert seen == [None]
    assert answers.find(key) is None  # dropped, not kept to fail again


async def test_a_live_playlist_is_replayed_only_while_the_channel_shows_the_same_window(
    tmp_path: Path, aiohttp_client: MakeClient, ismv: bytes
) -> None:
    cfg = sample_config(tmp_path, server=f'state_dir = "{tmp_path}"', more=live_channels())
    state = build_state(resolve_secrets(load_config(cfg), tmp_path))
    client = await aiohttp_client(SafeTestServer(build_app(state), Limits()))
    assert (await client.post(INGEST, data=ismv, headers=BASIC)).status in (200, 204)
    master = "/tv.isml/manifest(format=m3u8-aapl)"
    conn = await Conn.open(client)
    head, body = await conn.get(master)
    assert head.startswith(b"HTTP/1.1 200 "), head
    media = re.findall(rb"^[^#\s].*$", body, re.M)[0].decode()
    media = "/tv.isml/" + media
    _, first = await conn.get(media)
    again = hits(client)
    assert (await conn.get(media))[1] == first
    assert hits(client) == again + 1
    # A second encoder session: the channel's window changes, and so must the answer.
    assert (await client.post(INGEST, data=ismv, headers=BASIC)).status in (200, 204)
    _, after = await conn.get(media)
    assert after != first
    assert b"#EXT-X-DISCONTINUITY" in after or after.count(b"#EXTINF") != first.count(b"#EXTINF")
    fresh = await Conn.open(client)
    assert (await fresh.get(media, "Cache-Control: no-cache"))[1] == after
    conn.close()
    fresh.close()


async def test_a_key_allowed_by_its_token_alone_is_replayed_only_for_that_token_until_it_ends(
    app_client: Client,
) -> None:
    secure_key = f"/key?kid={token_server.KID}"  # jwt, swt, or an address option ("office")
    token = token_server.make_jwt()
    conn = await Conn.open(app_client)
    first = await conn.get(secure_key, f"Authorization: Bearer {token}")
    assert first[0].startswith(b"HTTP/1.1 200 ")
    again = await conn.get(secure_key, f"Authorization: Bearer {token}")
    assert again[1] == first[1] == SAMPLE_KEY
    assert hits(app_client) == 1
    # Another token, or none, is decided by aiohttp: never the stored answer.
    other = token_server.make_jwt(token_server.ALTERNATE, role="basic")
    head, _ = await conn.get(secure_key, f"Authorization: Bearer {other}")
    assert head.startswith(b"HTTP/1.1 401 ")
    head, _ = await conn.get(secure_key)
    assert head.startswith(b"HTTP/1.1 401 ")
    assert hits(app_client) == 1
    # The same token in the query: its own answer, the same bytes.
    in_query = f"{secure_key}&token={token}"
    await conn.get(in_query)
    assert (await conn.get(in_query))[1] == SAMPLE_KEY
    assert hits(app_client) == 2
    # Each lives no longer than the token's trust: a minute at most, never past its expiry.
    now = time.time()
    lives = [a.until for a in stored_keys(app_client)]
    assert len(lives) == 2
    assert all(u is not None and now < u <= now + 61 for u in lives)
    conn.close()


async def test_a_key_allowed_by_the_clients_address_is_never_kept(app_client: Client) -> None:
    secure_key = f"/key?kid={token_server.KID}"
    conn = await Conn.open(app_client)
    for _ in range(3):
        # trusted_proxies lists 127.0.0.1: the forwarded address is in the office network.
        head, _ = await conn.get(secure_key, "X-Forwarded-For: 203.0.113.7")
        assert head.startswith(b"HTTP/1.1 200 ")
    assert hits(app_client) == 0
    assert not stored_keys(app_client)
    conn.close()
