"""The caches' figures (size, fill, hit ratio), as /healthz reports them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from origin.service.app import build_app
from origin.service.cache import ByteLRU
from origin.service.cli import sample_config_path
from origin.service.config import load_config
from origin.service.connections import Limits
from origin.service.state import build_state
from tests.support.safe_server import SafeTestServer

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


def test_stats_count_hits_and_misses_of_get_and_report_the_fill() -> None:
    lru: ByteLRU[bytes] = ByteLRU(10)
    assert lru.stats()["hit_ratio"] is None  # no lookup yet: no ratio, not 0
    lru.put("a", b"xxxx")
    lru.put("b", b"yyyy")
    assert lru.get("a") == b"xxxx"
    assert lru.get("zz") is None
    assert lru.get("b") == b"yyyy"
    lru.put("c", b"zzzz")  # evicts "a", the least recently used
    assert lru.find("a") is None  # find() is not counted
    assert lru.stats() == {
        "capacity_bytes": 10,
        "used_bytes": 8,
        "entries": 2,
        "hits": 2,
        "misses": 1,
        "hit_ratio": 0.6667,
    }


async def test_healthz_reports_every_cache_and_the_fast_path(aiohttp_client: MakeClient) -> None:
    config = load_config(sample_config_path())
    client = await aiohttp_client(SafeTestServer(build_app(build_state(config)), Limits()))
    master = "/sample.ism/manifest(format=m3u8-aapl)"
    media = "/sample.ism/QualityLevels(152122)/Manifest(video,format=m3u8-aapl)"
    segment = "/sample.ism/QualityLevels(152122)/Fragments(video=0,format=m3u8-aapl)"
    for path in (master, master, media, segment, segment):
        assert (await client.get(path)).status == 200
    r = await client.get("/healthz")
    assert r.status == 200
    assert r.headers["Cache-Control"] == "no-store"
    body = await r.json()
    caches = body["caches"]
    assert set(caches) == {"segments", "manifests", "routes", "answers"}
    segments = caches["segments"]
    assert segments["capacity_bytes"] == config.server.cache_mb * 1024 * 1024
    assert segments["entries"] == 1
    assert (segments["hits"], segments["misses"]) == (1, 1)
    assert segments["hit_ratio"] == 0.5
    assert 0 < segments["used_bytes"] <= segments["capacity_bytes"]
    # The client keeps its connection: the second master came from the fast path, not the LRU.
    assert body["fast_path"]["hits"] >= 1
    assert caches["answers"]["entries"] >= 2  # master and media playlists
    assert caches["manifests"]["misses"] >= 2
