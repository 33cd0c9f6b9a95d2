"""Rows of scripts/bench.py that each need a server of their own, freshly started: cold segments,
start-up, and two workers on the two cores.

Cold: on a fresh server a player's path is followed (master, media playlists: not timed), then
every segment of the ladder is fetched once, in order, by COLD_CONCURRENCY keep-alive clients
sharing the list (1: sequential); then the same list again on the same server, now warm, with the
same clients: the ratio of the two passes is the cold path's cost with everything else equal.
"""

from __future__ import annotations

import http.client
import importlib
import re
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import bench_nginx
from bench_http import Origin, fetch, free_port, get, urls_of, wrk

COLD_CONCURRENCY = (1, 4)
COLD_REPEATS = 3
BOTH_CORES = "0,1"


def optional(module: str) -> ModuleType | None:
    """Another helper's bench module, when this branch has it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        return None


# ---- cold segments ------------------------------------------------------------------------


def fetch_all(urls: list[str], clients: int) -> tuple[float, int]:
    """Seconds to GET every URL once with ``clients`` keep-alive connections; bytes received."""
    lock = threading.Lock()
    todo: Iterator[str] = iter(urls)
    got = [0] * clients
    failed: list[str] = []

    def client(n: int) -> None:
        conn: http.client.HTTPConnection | None = None
        while True:
            with lock:
                url = next(todo, None)
            if url is None:
                break
            u = urlsplit(url)
            conn = conn or http.client.HTTPConnection(u.netloc, timeout=60)
            conn.request("GET", u.path + (f"?{u.query}" if u.query else ""))
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                failed.append(f"{r.status} {url}")
            got[n] += len(body)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if failed:
        raise SystemExit(f"cold fetch failed: {failed[:3]}")
    return seconds, sum(got)


def cold_pass(config: Path, asset: str, fmt: str, clients: int) -> tuple[float, float, int, int]:
    """One fresh server's first pass over every segment of ``asset`` in ``fmt``, then a second:
    (cold seconds, warm seconds, segments, bytes)."""
    srv = Origin(config)
    try:
        srv.wait_ready()
        _, segments = urls_of(srv.base, asset, fmt)
        cold_s, size = fetch_all(segments, clients)
        warm_s, _ = fetch_all(segments, clients)
    finally:
        srv.stop()
    return cold_s, warm_s, len(segments), size


def cold(
    config: Path, asset: str, fmt: str, clients: int, repeats: int = COLD_REPEATS
) -> dict[str, float]:
    """The median of ``repeats`` fresh servers' :func:`cold_pass` (one pass takes a tenth of a
    second or so)."""
    return _summary([cold_pass(config, asset, fmt, clients) for _ in range(repeats)])


def _summary(passes: list[tuple[float, float, int, int]]) -> dict[str, float]:
    return {
        "segments": passes[0][2],
        "bytes": passes[0][3],
        "cold_s": statistics.median(p[0] for p in passes),
        "warm_s": statistics.median(p[1] for p in passes),
    }


def cold_pairs(
    first: Path, second: Path, asset: str, fmt: str, clients: int, *, repeats: int
) -> tuple[dict[str, float], dict[str, float], float]:
    """:func:`cold` of two configs serving the same media, their servers alternating so that a
    machine getting slower or faster during the run weighs on both alike; and the median of the
    pairs' ratios (second's MB/s over first's)."""
    a, b = [], []
    for _ in range(repeats):
        a.append(cold_pass(first, asset, fmt, clients))
        b.append(cold_pass(second, asset, fmt, clients))
    ratio = statistics.median((y[3] / y[0]) / (x[3] / x[0]) for x, y in zip(a, b, strict=True))
    return _summary(a), _summary(b), ratio


def report_cold(
    results: list[tuple[str, dict[str, float], float | None]], helper: dict[str, float] | None
) -> None:
    """(what, figures, the main table's warm wrk MB/s of the same segments when measured);
    ``helper``: scripts/bench_cold.py's measure_cold(), if on this branch."""
    print()
    print(
        "cold segments: each segment of the 60 s ladder once on a fresh server, "
        f"median of {COLD_REPEATS} servers"
    )
    print(
        f"{'what':44} {'segments':>8} {'seconds':>8} {'MB/s':>8} {'2nd pass':>9} "
        f"{'x 2nd':>6} {'x wrk warm':>10}"
    )
    for what, r, wrk_mbs in results:
        mbs = r["bytes"] / r["cold_s"] / 1e6
        vs_wrk = f"{mbs / wrk_mbs:.2f}" if wrk_mbs else "n/a"
        print(
            f"{what:44} {r['segments']:8.0f} {r['cold_s']:8.3f} {mbs:8.1f} "
            f"{r['warm_s']:8.3f}s {r['warm_s'] / r['cold_s']:6.2f} {vs_wrk:>10}"
        )
    print("(x 2nd: the warm second pass's time over the cold one, same clients; target >= 0.8)")
    if helper is None:
        print("scripts/bench_cold.py (the cold path without HTTP) is not on this branch")
    else:
        for key, value in helper.items():
            shown = f"{value:12,.3f}" if isinstance(value, int | float) else str(value)
            print(f"{'bench_cold ' + key:44} {shown}")


# ---- start-up -----------------------------------------------------------------------------


def startup(cfg: Path, n_assets: int, locator: str = "") -> dict[str, float]:
    """Seconds from process start to /healthz, the first master playlist's ms afterwards, of
    ``cfg``'s assets a0 … a{n_assets - 1} (``locator``: under it), and the RSS before that
    request (kB)."""
    srv = Origin(cfg)
    try:
        ready = srv.wait_ready(timeout=600)
        rss = srv.status()["VmRSS"]
        t0 = time.perf_counter()
        if n_assets:
            get(f"{srv.base}{locator}/a{n_assets - 1}.ism/manifest(format=m3u8-aapl)")
        first = time.perf_counter() - t0
    finally:
        srv.stop()
    return {"ready_s": ready, "first_ms": 1000 * first, "rss_kb": rss}


def helper_rows(module: str, function: str, **kwargs: int) -> dict[str, float] | None:
    """``module.function(**kwargs)`` of another helper's bench module, None if it is missing."""
    found = optional(module)
    if found is None:
        return None
    figures: dict[str, float] = getattr(found, function)(**kwargs)
    return figures


def report_startup(
    results: dict[tuple[int, str], dict[str, float]], helper: dict[str, float] | None
) -> None:
    """``results`` by (assets, server.index); ``helper``: scripts/bench_startup.py's
    measure_startup(n_assets=100), if on this branch."""
    print()
    print("start-up: process start until /healthz answers (imports included), then the last")
    print("asset's master playlist; every asset is the ladder's 3 renditions (60 s, 4 s segments)")
    catalog = {n: r for (n, index), r in results.items() if index == "catalog"}
    for (n, index), r in results.items():
        if index == "catalog":
            continue
        if index == "lazy":
            target = "  (target: not minutes; first request < 50 ms)"
        else:
            target = "  (target < 1 s)" if n >= 100 else ""
        print(
            f"{f'{n} asset(s) x 3 renditions, index = {index}':44} ready {r['ready_s']:6.2f} s, "
            f"first master {r['first_ms']:7.1f} ms{target}"
        )
    if catalog:
        empty = catalog.get(0)
        for n, r in catalog.items():
            if n == 0 or empty is None:
                continue
            per = (r["rss_kb"] - empty["rss_kb"]) / n
            print(
                f"{f'{n:,} catalog assets (SQLite), lazy':44} ready {r['ready_s']:6.2f} s, "
                f"first master {r['first_ms']:7.1f} ms, RSS +{per:.1f} kB/asset over an empty "
                "catalog  (target: ready <= 5 s, <= 50 kB/asset)"
            )
    if helper is None:
        print("scripts/bench_startup.py (indexing alone, and a 2-hour title) is not on this branch")
        return
    targets = {
        "ladder_100x3_s": "  (target < 1 s)",
        "two_hour_s": "  (target < 0.5 s)",
        "ladder_first_master_ms": "  (BANDWIDTH computed on first use)",
    }
    for key, value in helper.items():
        unit = "ms" if key.endswith("_ms") else "s"
        shown = f"{value:6.2f} {unit}" if isinstance(value, int | float) else str(value)
        print(f"{'bench_startup ' + key:44} {shown}{targets.get(key, '')}")


# ---- two workers --------------------------------------------------------------------------


def two_workers(
    config: Path, rows: dict[str, list[str]], seconds: int, connections: int
) -> dict[str, dict[str, float]]:
    """``rows`` (name -> URLs) on ``workers = 2`` over both cores, wrk -t2 over both too; and
    the same on nginx with two workers serving the same bytes (``{name} nginx``): with wrk on
    the same two cores, what a C server gets there is the ceiling of this measurement."""
    srv = Origin(config, port=free_port(), cpus=BOTH_CORES, workers=2)
    out = {}
    bodies: dict[str, list[tuple[bytes, str]]] = {}
    try:
        srv.wait_ready()
        for _ in range(600):  # the parent says so once every worker listens
            if b"worker processes" in Path(srv.log.name).read_bytes():
                break
            time.sleep(0.1)
        for name, urls in rows.items():
            here = [re.sub(r"^http://[^/]+", srv.base, u) for u in urls]
            for _ in range(4):  # each worker has its caches: warm them through several connections
                for u in here:
                    get(u)
            bodies[name] = [fetch(u) for u in here]
            out[name] = wrk(here, seconds, connections, threads=2, cpus=BOTH_CORES)
    finally:
        srv.stop()
    nginx = bench_nginx.Nginx(workers=2, cpus=BOTH_CORES)
    try:
        for name, served in bodies.items():
            urls = nginx.serve(served)
            out[f"{name} nginx"] = wrk(urls, seconds, connections, threads=2, cpus=BOTH_CORES)
    finally:
        nginx.stop()
    return out


def report_workers(
    results: dict[str, dict[str, float]],
    one: dict[str, dict[str, float]],
    connections: int,
    nginx_one: dict[str, dict[str, float]] | None = None,
) -> None:
    """``one``: the one-worker rows; ``nginx_one``: nginx's one-worker figures of those rows."""
    print()
    print(
        f"two workers (workers = 2, SO_REUSEPORT) on both cores, wrk -t2 -c{connections} unpinned:"
    )
    print("wrk competes with the workers for the 2 cores; 1 worker: the table above (own core);")
    print("nginx: two workers serving the same bytes the same way, against its one-worker figure")
    head = f"{'what':44} {'req/s':>9} {'MB/s':>8} {'1 worker':>9} {'x 1':>6}  target"
    print(f"{head}  {'nginx 2w':>9} {'x 1':>6}")
    for name, r in results.items():
        if name.endswith(" nginx"):
            continue
        base = one.get(name)
        one_rps = f"{base['rps']:9,.0f}" if base else f"{'n/a':>9}"
        ratio = f"{r['rps'] / base['rps']:6.2f}" if base else f"{'n/a':>6}"
        ref = results.get(f"{name} nginx")
        ref_one = (nginx_one or {}).get(name)
        shown = f"{ref['rps']:9,.0f}" if ref else f"{'n/a':>9}"
        ref_ratio = f"{ref['rps'] / ref_one['rps']:6.2f}" if ref and ref_one else f"{'n/a':>6}"
        line = f"{name:44} {r['rps']:9,.0f} {r['mbs']:8,.1f} {one_rps} {ratio}  >= 1.6"
        print(f"{line}  {shown} {ref_ratio}")
