"""Big encrypted segments made and written a slice at a time (origin.service.sliced): the same
bytes and headers as when written whole, many at once on one key; HEAD and 304 never encrypt;
turns go first come first served, a body back from a drain first, and a stalled client does not
keep its turn."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import m3u8
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from origin.core.crypto import Aes128Cbc
from origin.service import sliced
from origin.service.app import build_app
from origin.service.config import load_config
from origin.service.state import build_state
from tests.support.server import sample_config

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]

MASTER = "/bbb.ism/manifest(format=m3u8-aapl)"


@pytest.fixture
async def client(tmp_path: Path, aiohttp_client: MakeClient) -> Client:
    return await aiohttp_client(build_app(build_state(load_config(sample_config(tmp_path)))))


async def _segments(client: Client) -> list[str]:
    """Every media segment of every variant of the sample, TS."""
    master_url = str(client.make_url(MASTER))
    master = m3u8.loads(await (await client.get(MASTER)).text())
    out = []
    for variant in master.playlists:
        media_url = urljoin(master_url, variant.uri)
        media = m3u8.loads(await (await client.get(urlsplit(media_url).path)).text())
        out += [urlsplit(urljoin(media_url, s.uri)).path for s in media.segments]
    return out


async def _biggest(client: Client) -> str:
    sizes = {p: len(await (await client.get(p)).read()) for p in await _segments(client)}
    return max(sizes, key=lambda p: sizes[p])


def _headers(r: object) -> dict[str, str]:
    h = dict(r.headers)  # type: ignore[attr-defined]
    h.pop("Date", None)
    return h


async def test_sliced_segments_are_the_bytes_and_headers_written_whole(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = await _segments(client)
    monkeypatch.setattr(sliced, "SLICE_BYTES", 1 << 30)  # every body one slice: written whole
    monkeypatch.setattr(sliced, "SLICED_FROM", 1 << 30)
    whole = {}
    for p in paths:
        r = await client.get(p)
        whole[p] = (await r.read(), _headers(r))
    monkeypatch.setattr(sliced, "SLICE_BYTES", 1000)  # 992-byte slices, hundreds a segment
    monkeypatch.setattr(sliced, "SLICED_FROM", 1000)
    monkeypatch.setattr(sliced, "WRITERS", 2)
    sliced._turns.clear()

    async def fetch(p: str) -> tuple[bytes, dict[str, str]]:
        r = await client.get(p)
        return await r.read(), _headers(r)

    # All at once: their slices interleave on the asset's one cipher.
    got = await asyncio.gather(*(fetch(p) for p in paths * 2))
    assert got == [whole[p] for p in paths * 2]
    assert max(len(body) for body, _ in got) > 100 * 1000


async def test_head_and_304_of_a_big_segment_never_encrypt(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = await _biggest(client)
    get = await client.get(path)
    body = await get.read()
    assert len(body) > sliced.SLICE_BYTES

    def boom(*args: object) -> None:
        raise AssertionError("encrypted")

    monkeypatch.setattr(Aes128Cbc, "encrypt", boom)
    monkeypatch.setattr(Aes128Cbc, "encrypt_slices", boom)
    head = await client.head(path)
    assert head.status == 200 and await head.read() == b""
    assert _headers(head) == _headers(get)
    assert head.headers["Content-Length"] == str(len(body))
    again = await client.get(path, headers={"If-None-Match": get.headers["ETag"]})
    assert again.status == 304 and await again.read() == b""


async def test_a_range_of_a_big_segment_is_the_slice_of_the_whole(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = await _biggest(client)
    monkeypatch.setattr(sliced, "SLICE_BYTES", 4096)
    monkeypatch.setattr(sliced, "SLICED_FROM", 4096)
    whole = await (await client.get(path)).read()
    r = await client.get(path, headers={"Range": "bytes=5000-20000"})
    assert r.status == 206 and await r.read() == whole[5000:20001]
    assert r.headers["Content-Range"] == f"bytes 5000-20000/{len(whole)}"


async def test_a_client_that_stops_reading_gives_its_turn_away(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One turn only: a client that reads nothing of its big segment must not hold it."""
    paths = await _segments(client)
    big = (await _biggest(client)).encode()
    monkeypatch.setattr(sliced, "SLICE_BYTES", 16 * 1024)
    monkeypatch.setattr(sliced, "SLICED_FROM", 16 * 1024)
    monkeypatch.setattr(sliced, "WRITERS", 1)
    sliced._turns.clear()
    comebacks: list[bool] = []
    take = sliced._Turns.take

    async def spy(self: sliced._Turns, *, resuming: bool) -> None:
        comebacks.append(resuming)
        await take(self, resuming=resuming)

    monkeypatch.setattr(sliced._Turns, "take", spy)
    # Stalled: small buffers on its side, so that the server's transport has to wait for it.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    assert client.port is not None
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", client.port))
    try:
        # Many requests pipelined: far more than the kernel buffers hold.
        head = b"GET " + big + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        await asyncio.get_running_loop().sock_sendall(sock, head * 40)
        await asyncio.sleep(0.2)  # it is writing, then waiting for the socket
        async with asyncio.timeout(10):
            for p in paths[:4]:
                r = await client.get(p)
                assert r.status == 200 and len(await r.read()) > 0
        # It gave its turn away while waiting: reading now, it comes back for one.
        assert not any(comebacks)
        async with asyncio.timeout(10):
            while not any(comebacks):
                assert await asyncio.get_running_loop().sock_recv(sock, 1 << 16)
    finally:
        sock.close()


async def test_turns_go_in_order_a_body_back_from_a_drain_first() -> None:
    turns = sliced._Turns(1)
    order: list[str] = []

    async def body(name: str, *, resuming: bool = False) -> None:
        await turns.take(resuming=resuming)
        order.append(name)
        await asyncio.sleep(0)
        turns.give()

    await turns.take(resuming=False)  # the turn is taken: everyone below waits
    tasks = [asyncio.create_task(body("new1")), asyncio.create_task(body("new2"))]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(body("back", resuming=True)))
    cancelled = asyncio.create_task(body("gone"))
    await asyncio.sleep(0)
    cancelled.cancel()
    turns.give()
    await asyncio.gather(*tasks)
    assert order == ["back", "new1", "new2"]
    assert turns.free == 1 and not turns.new and not turns.resuming


async def test_a_turn_handed_to_a_cancelled_waiter_is_passed_on() -> None:
    turns = sliced._Turns(1)
    await turns.take(resuming=False)
    first = asyncio.create_task(turns.take(resuming=False))
    second = asyncio.create_task(turns.take(resuming=False))
    await asyncio.sleep(0)
    turns.give()  # handed to `first`...
    first.cancel()  # ...which is cancelled before it runs: `second` gets it
    await second
    assert first.cancelled()
    turns.give()
    assert turns.free == 1
