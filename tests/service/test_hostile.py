"""Hostile traffic against the in-process app: long and unique URLs, forged log lines, floods of
malformed requests, clients that go away mid-body. The real server's timeouts and drain are in
test_connections.py."""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from origin.core import urls
from origin.service import logs
from origin.service.app import build_app
from origin.service.cache import ByteLRU
from origin.service.cli import sample_config_path
from origin.service.config import load_config
from origin.service.connections import Limits
from origin.service.served import ROUTES
from origin.service.state import State, build_state
from tests.support.safe_server import SafeTestServer

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
MASTER = "/sample.ism/manifest(format=m3u8-aapl)"


@pytest.fixture
def state() -> State:
    """The app built on it closes it on cleanup."""
    config = load_config(sample_config_path())
    # Without the built-in live channels: a looped channel fills its window while the memory
    # tests below measure what requests leave behind.
    config = replace(config, server=replace(config.server, header_timeout=0.5), channels=())
    return build_state(config)


@pytest.fixture
async def client(state: State, aiohttp_client: MakeClient) -> AsyncIterator[Client]:
    app = build_app(state)
    yield await aiohttp_client(SafeTestServer(app, Limits(header_timeout=0.5)))


async def raw_exchange(client: Client, data: bytes, *, half_close: bool = False) -> bytes:
    """Send raw bytes on a new connection; everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(data)
    if half_close:
        writer.write_eof()
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


# --- URL length and caches ----------------------------------------------------------------------


async def test_path_over_max_url_bytes_is_414_and_the_query_does_not_count(client: Client) -> None:
    limit = 4096  # the default
    head = "/not-an-asset/"
    r = await client.get(head + "a" * (limit - len(head) + 1))
    assert r.status == 414
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "4096" in await r.text()
    r = await client.get(head + "a" * (limit - len(head)))
    assert r.status == 404
    # A long token in the query is not a long URL: tokens go up to 8 KiB.
    r = await client.get(MASTER + "?token=" + "t" * 9000)
    assert r.status == 200


async def traced_growth(client: Client, paths: Iterable[str], status: int) -> int:
    """Bytes still allocated after GETting every path (tracemalloc), each answered ``status``.

    A plain session, not the test client: that one keeps every response until it closes. What
    stays besides our caches is yarl's and aiohttp's URL caches, 128 entries each."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        async with aiohttp.ClientSession() as session:
            for path in paths:
                async with session.get(client.make_url(path)) as r:
                    assert r.status == status, path
                    await r.read()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


async def test_unique_unknown_and_malformed_paths_are_not_kept(client: Client) -> None:
    # 404 paths used to stay in the parse cache (it kept None results): 16,384 of them.
    unknown = (f"/not-an-asset/{i}/" + "a" * 4000 for i in range(1500))
    grown = await traced_growth(client, unknown, 404)
    malformed = (f"/bad{i}.ism/" + "b" * 4000 for i in range(1500))
    grown += await traced_growth(client, malformed, 400)
    assert grown < 3_000_000, f"{grown} bytes kept after 3,000 unique 4 KB paths"


async def test_unique_manifest_urls_stay_within_the_caches_bytes(
    state: State, aiohttp_client: MakeClient
) -> None:
    app = build_app(state)
    routes: ByteLRU[urls.Path] = ByteLRU(64 * 1024)
    manifests: ByteLRU[bytes] = ByteLRU(64 * 1024)
    app[ROUTES] = routes
    state.manifests = manifests
    client = await aiohttp_client(SafeTestServer(app, Limits()))

    # Each a distinct, valid, cacheable master playlist: a new locator, padded options.
    pad = "%20" * 1300
    masters = (f"/{uuid.uuid4()}/sample.ism/manifest(format=m3u8-aapl{pad})" for _ in range(600))
    grown = await traced_growth(client, masters, 200)
    assert 0 < routes.used <= routes.capacity
    assert 0 < manifests.used <= manifests.capacity
    # The accounting covers the keys: 600 paths of ~1,350 bytes would not fit in 64 KiB.
    assert len(routes) < 64 * 1024 // 1350
    assert len(manifests) < 64 * 1024 // 1350
    assert grown < 3_000_000, f"{grown} bytes kept after 600 unique manifest URLs"


# --- Logs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a\r\nb", "a\\x0d\\x0ab"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
        ("c1\x85\x9b", "c1\\x85\\x9b"),
        ("sep\u2028par\u2029", "sep\\u2028par\\u2029"),
        ("back\\x0a", "back\\\\x0a"),  # a literal backslash cannot pass for an escape
        ("plain é ü", "plain é ü"),
    ],
)
def test_clean_escapes_control_characters(raw: str, escaped: str) -> None:
    assert logs.clean(raw) == escaped


def test_clean_cuts_long_values() -> None:
    out = logs.clean("x" * 10_000)
    assert len(out) < 600
    assert out.endswith("[10000 chars]")


async def test_a_request_path_cannot_forge_a_log_line(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "/x%0D%0A2026-12-02 00:00:00,000 1 origin ERROR forged%1B[2J%7F%C2%85"
    with caplog.at_level(logging.INFO):
        r = await client.get(forged)
        assert r.status == 404
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "origin.access"]
    assert len(lines) == 1
    assert "\\x0d\\x0a2026-12-02" in lines[0]
    assert not any(c in lines[0] for c in "\r\n\x1b\x7f\x85")


async def test_twenty_thousand_malformed_requests_make_a_bounded_log(client: Client) -> None:
    buf = io.StringIO()
    handler = logs.handler(buf)
    root = logging.getLogger()
    access = logging.getLogger("origin.access")
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    access.disabled = True  # the access log is one line per request by design: access_log = false
    try:
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with sem:
                reply = await raw_exchange(client, b"GET /\x01%d HTTP/1.1\r\n\r\n" % i)
                assert reply.split(b" ", 2)[1] == b"400"

        await asyncio.gather(*(one(i) for i in range(20_000)))
        logs.flush_counts()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        access.disabled = False
    text = buf.getvalue()
    assert len(text) < 4096, text[:2000]
    assert "unparsable request" in text
    assert "19990 more lines like 'unparsable request from %s (%d)'" in text


def test_repeat_filter_lets_a_burst_through_per_interval_then_counts() -> None:
    now = [0.0]
    emitted: list[logging.LogRecord] = []
    f = logs.RepeatFilter(emitted.append, burst=3, interval=60, clock=lambda: now[0])

    def record(msg: str, *args: object, name: str = "origin.requests") -> logging.LogRecord:
        return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)

    passed = [f.filter(record("bad request from %s", i)) for i in range(100)]
    assert passed == [True] * 3 + [False] * 97
    assert f.filter(record("another template"))  # counted per template
    assert all(f.filter(record("%s", i, name="origin.access")) for i in range(100))
    assert emitted == []
    # Other loggers' lines are counted only when identical: fifty refused assets are fifty lines.
    assert all(f.filter(record("asset %r refused", n, name="origin")) for n in range(50))
    same = [f.filter(record("asset %r refused", "a", name="origin")) for _ in range(5)]
    assert same == [True] * 3 + [False] * 2
    emitted.clear()
    now[0] = 61.0
    assert f.filter(record("bad request from %s", 100))  # a new window
    assert [r.getMessage() for r in emitted] == [
        "97 more lines like 'bad request from %s' in the last 61s were counted, not logged"
    ]


async def test_log_level_turns_per_request_error_lines_down(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        await raw_exchange(client, b"GARBAGE\r\n\r\n")
    assert [r.levelno for r in caplog.records if r.name == "origin.requests"] == [logging.INFO]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        await raw_exchange(client, b"GARBAGE\r\n\r\n")
    assert caplog.records == []


# --- A client going away ------------------------------------------------------------------------

KEY_POST = b"POST /key?kid=da3813af-55e6-48e7-aa9f-a4d6031f7b4d HTTP/1.1\r\nHost: x\r\n"


async def test_half_closed_short_post_to_key_is_not_an_internal_error(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await raw_exchange(client, KEY_POST + b"Content-Length: 100\r\n\r\nshort", half_close=True)
        r = await client.get(MASTER)  # and the server keeps serving
        assert r.status == 200
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [], [r.getMessage() for r in errors]
    assert not any(r.exc_info for r in caplog.records)


async def test_a_post_body_that_never_arrives_is_answered_408(client: Client) -> None:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(KEY_POST + b"Content-Length: 100\r\n\r\nshort")
    try:
        reply = await asyncio.wait_for(reader.readline(), 5)  # header_timeout is 0.5 s here
    finally:
        writer.close()
    assert reply.startswith(b"HTTP/1.1 408")


# --- The request-head deadline on a kept-alive connection --------------------------------------


async def test_a_later_request_head_left_unfinished_is_closed_after_header_timeout(
    client: Client,
) -> None:
    """After a response, the next head's first bytes start its deadline (0.5 s here); aiohttp's
    own keep-alive timeout (an hour by default) would leave the connection open."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    loop = asyncio.get_running_loop()
    try:
        for _ in range(2):  # kept alive: two requests, the second within the deadline
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            await asyncio.sleep(0.3)
        writer.write(b"GET /heal")
        sent = loop.time()
        rest = await asyncio.wait_for(reader.read(), 5)
        took = loop.time() - sent
    finally:
        writer.close()
    assert rest == b""
    assert 0.4 <= took < 2.5, took
