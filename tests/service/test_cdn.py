"""The origin behind a real cache: Debian's nginx with the shipped config/cdn/nginx.conf."""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

import pytest

from tests.service.test_locust import MORE, locust
from tests.service.test_metrics import scrape, value
from tests.support import token_server
from tests.support.cdn import cdn
from tests.support.server import SAMPLE_KID, Server, fetch, run_server, sample_config

SITES = ("https://a.example", "https://b.example")
MASTER = "/bbb.ism/manifest(format=m3u8-aapl)"
FLUSH = 1.3  # the origin's metrics reach /metrics within a second


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("cdn")
    cfg = sample_config(tmp, server=f"cors_origins = {list(SITES)!r}".replace("'", '"'), more=MORE)
    cfg.write_text(cfg.read_text() + token_server.config_text().split("\n", 3)[3])
    with run_server("--config", str(cfg)) as server:
        yield server


@pytest.fixture(scope="module")
def edge(origin: Server) -> Iterator[str]:
    port = urlsplit(origin.base).port
    assert port is not None
    with cdn(port) as base:
        yield base


def _title(base: str) -> list[str]:
    """Every URL a viewer of the HLS TS title fetches: master, media playlists, segments."""
    master = base + MASTER
    urls = [master]
    text = fetch(master).body.decode()
    for line in (ln for ln in text.splitlines() if ln and ln[0] != "#"):
        media = urljoin(master, line)
        urls.append(media)
        body = fetch(media).body.decode()
        urls += [urljoin(media, ln) for ln in body.splitlines() if ln and ln[0] != "#"]
    return urls


def _origin_count(origin: Server, kind: str) -> float:
    time.sleep(FLUSH)
    samples, _ = scrape(origin)
    return sum(
        v for (name, labels), v in samples.items()
        if name == "origin_requests_total" and ("kind", kind) in labels
    )  # fmt: skip


def test_after_one_viewer_a_hundred_more_cost_the_origin_no_playlist_or_segment(
    origin: Server, edge: str
) -> None:
    title = _title(edge)
    assert len(title) > 10
    assert all(fetch(url).status == 200 for url in title)  # the first viewer fills the cache
    before = {k: _origin_count(origin, k) for k in ("manifest", "segment", "key")}
    statuses = []
    for _ in range(100):
        for url in title:
            reply = fetch(url)
            statuses.append(reply.header("X-Cache-Status"))
            assert reply.status == 200
        assert fetch(f"{edge}/key?kid={SAMPLE_KID}").status == 200
    after = {k: _origin_count(origin, k) for k in ("manifest", "segment", "key")}
    fetched = after["manifest"] - before["manifest"] + after["segment"] - before["segment"]
    hit_ratio = 1 - fetched / (100 * len(title))
    assert hit_ratio >= 0.99, (fetched, statuses[:20])
    assert after["key"] - before["key"] == 100  # keys are never served from the cache


def test_keys_and_token_bearing_answers_are_never_cached_nor_given_to_another_viewer(
    origin: Server, edge: str
) -> None:
    key = f"{edge}/key?kid={SAMPLE_KID}"
    assert [fetch(key).header("X-Cache-Status") for _ in range(3)] == ["MISS"] * 3
    master = f"{edge}/secure.ism/manifest(format=m3u8-aapl)"
    one, two = token_server.make_jwt(role="premium"), token_server.make_jwt(jti="second")
    a = fetch(f"{master}?token={quote(one, safe='')}")
    b = fetch(f"{master}?token={quote(two, safe='')}")
    assert a.status == b.status == 200
    assert one in a.body.decode() and two not in a.body.decode()
    assert two in b.body.decode() and one not in b.body.decode()
    plain = fetch(master)  # another viewer, no token: never anyone's
    assert one not in plain.body.decode() and two not in plain.body.decode()
    assert fetch(f"{master}?token={quote(one, safe='')}").header("X-Cache-Status") == "MISS"


def test_cors_allow_list_through_the_cache_gives_each_site_its_own_origin(
    origin: Server, edge: str
) -> None:
    url = f"{edge}/bbb.ism/manifest(format=m3u8-aapl,audio-only=false)"
    for site in (*SITES, *SITES):
        reply = fetch(url, headers={"Origin": site})
        assert reply.status == 200
        assert reply.header("Access-Control-Allow-Origin") == site
        assert "Origin" in (reply.header("Vary") or "")


def test_a_burst_of_first_requests_for_one_segment_builds_it_at_the_origin_once(
    origin: Server, edge: str
) -> None:
    # An fMP4 segment: no test before has fetched one, through the cache or not.
    master = f"{origin.base}/bbb.ism/manifest(format=m3u8-cmaf)"
    text = fetch(master).body.decode()
    media = urljoin(master, text.splitlines()[-1])
    last = [ln for ln in fetch(media).body.decode().splitlines() if ln and ln[0] != "#"][-1]
    path = urlsplit(urljoin(media, last)).path
    builds = "origin_segment_build_seconds_count"
    time.sleep(FLUSH)
    before = value(scrape(origin)[0], builds, format="m3u8-cmaf")
    seen = _origin_count(origin, "segment")
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(lambda _: fetch(edge + path), range(20)))
    assert [r.status for r in replies] == [200] * 20
    assert len({r.body for r in replies}) == 1
    assert _origin_count(origin, "segment") - seen == 1  # proxy_cache_lock: one fetch
    assert value(scrape(origin)[0], builds, format="m3u8-cmaf") - before == 1


def test_the_shipped_config_sets_no_cache_validity_of_its_own() -> None:
    conf = (Path(__file__).parents[2] / "config" / "cdn" / "nginx.conf").read_text()
    lines = [ln.split("#")[0] for ln in conf.splitlines()]
    assert not any("proxy_cache_valid" in ln or "proxy_ignore_headers" in ln for ln in lines)
    assert any("proxy_cache_lock on;" in ln for ln in lines)


@pytest.fixture(scope="module")
def live_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("cdn-live")
    channel = '[[channels]]\nname = "tv"\nloop = true\nasset = "bbb"\nwindow = 60\n'
    with run_server("--config", str(sample_config(tmp, more=channel))) as server:
        yield server


def _newest(playlist: str) -> int:
    """The newest listed segment's start time (10 MHz ticks, from its URL)."""
    times = re.findall(r"Fragments\(video=(\d+),", playlist)
    return int(times[-1]) if times else -1


def test_live_through_the_cache_is_never_a_segment_behind_and_future_segments_are_not_cached(
    live_origin: Server,
) -> None:
    port = urlsplit(live_origin.base).port
    assert port is not None
    with cdn(port) as edge:
        master = f"{edge}/tv.isml/manifest(format=m3u8-cmaf)"
        for _ in range(100):  # the loop publishes its first segments
            if fetch(master).status == 200:
                break
            time.sleep(0.1)
        text = fetch(master).body.decode()
        media_path = next(ln for ln in text.splitlines() if ln and ln[0] != "#" and "video" in ln)
        media = urljoin(master, media_path)
        first = fetch(media)
        assert first.status == 200 and "max-age=" in (first.header("Cache-Control") or "")
        duration = 4 * 10_000_000  # the longest segment (target duration), in URL ticks
        # The segment after the newest: asked for before it exists, a 404 nobody keeps.
        newest = _newest(first.body.decode())
        last = float(re.findall(r"#EXTINF:([\d.]+),", first.body.decode())[-1])
        seg_url = (
            media.rsplit("/", 1)[0]
            + "/"
            + re.findall(r"^(Fragments\(video=\d+,[^\n]*)$", first.body.decode(), re.M)[-1]
        )
        future = re.sub(r"video=\d+,", f"video={newest + round(last * 10_000_000)},", seg_url)
        assert fetch(future).status == 404
        lags = []
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            cached = _newest(fetch(media).body.decode())
            current = _newest(fetch(live_origin.base + urlsplit(media).path).body.decode())
            lags.append(current - cached)
            time.sleep(0.3)
        assert max(lags) <= duration, lags  # never more than one segment behind the origin
        assert min(lags) == 0
        # Once it exists, the segment asked for too early is served: the 404 was not kept.
        assert fetch(future).status == 200


@pytest.mark.slow
def test_the_locust_viewers_play_through_the_cache_without_a_failure(
    origin: Server, edge: str, tmp_path: Path
) -> None:
    rows = locust(edge, tmp_path, users=16, seconds=15)  # VOD and live
    assert int(rows[" Aggregated"]["Failure Count"]) == 0
    assert int(rows["GET segment (ts)"]["Request Count"]) > 0
    assert int(rows["GET Smooth manifest"]["Request Count"]) > 0
