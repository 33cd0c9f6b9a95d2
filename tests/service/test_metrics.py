"""``/metrics``: Prometheus text, counted on the connections (aiohttp's and the fast path's
answers), one view across workers."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from origin.service.metrics import kind_of
from tests.support.server import SAMPLE_KID, Server, fetch, run_server, sample_config

MASTER = "/bbb.ism/manifest(format=m3u8-aapl)"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: Server) -> tuple[Samples, str]:
    reply = server.request("/metrics")
    assert reply.status == 200
    assert (reply.header("Content-Type") or "").startswith("text/plain; version=0.0.4")
    text = reply.body.decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out, text


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def keep_alive(server: Server, paths: list[str]) -> list[int]:
    """GET each path over one kept-alive connection (the fast path answers repeats)."""
    u = urlsplit(server.base)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=10)
    statuses = []
    try:
        for p in paths:
            conn.request("GET", p)
            r = conn.getresponse()
            r.read()
            statuses.append(r.status)
    finally:
        conn.close()
    return statuses


def test_route_kinds_are_a_few_fixed_labels_never_the_path() -> None:
    assert kind_of("GET", "/key") == "key"
    assert kind_of("POST", "/clearkey") == "key"
    assert kind_of("GET", "/bbb.ism/QualityLevels(1)/Fragments(video=0,format=m3u8-aapl).ts") == (
        "segment"
    )
    assert kind_of("GET", MASTER) == "manifest"
    assert kind_of("POST", "/tv.isml/Streams(a)") == "ingest"
    assert kind_of("GET", "/readyz") == "status"
    assert kind_of("GET", "/favicon.ico") == "other"


def test_requests_keys_and_caches_are_counted_including_fast_path_answers(
    tmp_path: Path,
) -> None:
    with run_server("--config", str(sample_config(tmp_path))) as server:
        before, _ = scrape(server)
        # 20 masters on one connection: the first through aiohttp, the rest from the fast path.
        assert keep_alive(server, [MASTER] * 20) == [200] * 20
        assert keep_alive(server, [f"/key?kid={SAMPLE_KID}"] * 3) == [200] * 3
        assert keep_alive(server, ["/key?kid=nope", "/nothing.ism/manifest"]) == [400, 404]
        playlist = next(
            ln
            for ln in fetch(server.base + MASTER).body.decode().splitlines()
            if ln and ln[0] != "#"
        )
        media = fetch(f"{server.base}/bbb.ism/{playlist}").body.decode()
        segment = next(ln for ln in media.splitlines() if ln and ln[0] != "#")
        seg_path = f"/bbb.ism/{playlist.rsplit('/', 1)[0]}/{segment}"
        assert keep_alive(server, [seg_path, seg_path]) == [200, 200]

        def counted() -> bool:
            now, _ = scrape(server)
            done = value(now, "origin_requests_total", kind="segment", status="200")
            return done - value(before, "origin_requests_total", kind="segment", status="200") >= 2

        until(counted)
        after, text = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("origin_requests_total", kind="manifest", status="200") >= 22  # + the fetches
    assert delta("origin_requests_total", kind="key", status="200") == 3
    assert delta("origin_requests_total", kind="key", status="400") == 1
    assert delta("origin_requests_total", kind="manifest", status="404") == 1
    assert delta("origin_key_requests_total", outcome="delivered") == 3
    assert delta("origin_key_requests_total", outcome="bad_request") == 1
    assert delta("origin_response_bytes_total", kind="segment") > 2 * 100_000
    assert delta("origin_cache_lookups_total", cache="answers", result="hit") >= 19
    assert delta("origin_cache_lookups_total", cache="segments", result="miss") == 1
    assert delta("origin_cache_lookups_total", cache="segments", result="hit") == 1
    assert value(after, "origin_cache_capacity_bytes", cache="segments") == 32 * 1024 * 1024
    assert value(after, "origin_cache_bytes", cache="segments") > 100_000
    assert value(after, "origin_segment_build_seconds_count", format="m3u8-aapl") >= 1
    assert delta("origin_segment_encrypt_seconds_count") == 2  # each response encrypted
    assert value(after, "origin_connections") >= 1  # the scrape's own
    assert "bbb.ism" not in text and SAMPLE_KID not in text  # labels never carry paths or ids


def test_two_workers_report_one_sum(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = sample_config(tmp_path)
    with run_server("--config", str(cfg), "--workers", "2", "--port", str(port)) as server:
        before, _ = scrape(server)
        for _ in range(40):  # new connections: the kernel spreads them over both workers
            assert fetch(server.base + MASTER).status == 200
        name, labels = "origin_requests_total", {"kind": "manifest", "status": "200"}

        def counted() -> float:
            return value(scrape(server)[0], name, **labels) - value(before, name, **labels)

        until(lambda: counted() >= 40)  # whichever worker answers the scrape: both summed
        assert counted() == 40
        served = {scrape(server)[0].get(("origin_connections", ())) for _ in range(6)}
    assert served and None not in served
