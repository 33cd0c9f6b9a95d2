#!/usr/bin/env python3
"""One origin worker on every row of issue 10, beside Debian's nginx serving the same bytes as
static files and the single-core AES-128-CBC ceiling, all measured in the same run.

    python scripts/bench.py [--seconds 10] [--quick] [--connections 16] [--rows a,b,...]

Starts ``origin serve`` with ONE worker pinned to CPU 0, with the default settings but the access
log, and drives it with wrk (Debian package) pinned to CPU 1 (the bench's own clients run there
too), warm caches (every URL is fetched once before measuring). Assets (scripts/bench_assets.py):
the built-in sample (10 s, 150-600 kbit/s), a 3-rendition 60 s ladder (400k-1200k, 4 s segments:
45 segments) and a 720p 4 Mbit/s asset with 6 s segments (~1.6 MB segments). Each wrk row is
followed by the same wrk run on nginx (scripts/bench_nginx.py: one worker on CPU 0) serving the
exact bytes the origin answered as files; encrypted segment rows also show the share of
``openssl speed -evp aes-128-cbc`` (16 KiB blocks, one core) they reach.

Rows (``--rows``, comma-separated; all by default):
  segments   encrypted HLS TS and fMP4 segments (AES-128) of each asset; clear DASH, Common
             Encryption DASH (cenc, cbcs) and clear Smooth of the sample and big ones
  manifests  the ladder's media and master playlists, MPDs (mpd-time-csf, -cmaf), Smooth
  keys       key requests, open policy and an HS256 JWT policy, by key id and by envelope
  live       a looped channel's playlists and manifests, fragment-to-playlist latency and
             ingest CPU while three renditions are pushed (scripts/bench_live.py)
  tail       64 connections on big segments, and a playlist and a key timed during that load
  memory     the server's RSS after the load above, and its cache figures if it reports them
  cold       every segment of the ladder once on a fresh server (scripts/bench_fresh.py)
  atrest     the same cold pass over the ladder encrypted at rest (origin encrypt) against
             its clear files (target: >= 0.90 of clear's MB/s)
  startup    process start until /healthz answers, 1 and 100 assets x 3 renditions, 10,000
             lazily indexed from the config and from a SQLite catalog (with the RSS per asset)
  workers    workers = 2 on both cores against the one-worker rows
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urljoin

import bench_assets
import bench_fresh
import bench_live
import bench_nginx
import bench_tail
from bench_http import (
    CACHE,
    CLIENT_CPU,
    SERVER_CPU,
    TWO_CORES,
    Origin,
    dash_urls,
    fetch,
    get,
    pinned,
    smooth_urls,
    urls_of,
    wrk,
)

from origin.service.memory import TRIM_EVERY

GROUPS = (
    "segments", "manifests", "keys", "live", "tail", "memory", "cold", "atrest", "startup",
    "workers",
)  # fmt: skip
NGINX_GROUPS = {"segments", "manifests", "keys", "live"}
# The rows two workers are compared on, and the one-worker row of the same name.
WORKER_ROWS = ("big: encrypted HLS TS segments", "ladder: HLS media playlists (TS+fMP4)")
# Which rows each asset gets: every segment kind, or the encrypted HLS ones.
SEGMENT_ROWS = {"sample": True, "ladder": False, "big": True}

Row = tuple[str, dict[str, float], float]  # name, wrk figures, average body size


def openssl_ceiling() -> float:
    """MB/s of AES-128-CBC on one core, 16 KiB blocks (decimal MB, as wrk reports)."""
    cmd = ["openssl", "speed", "-evp", "aes-128-cbc", "-seconds", "3"]
    out = subprocess.run(pinned(cmd, SERVER_CPU), capture_output=True, text=True, check=True)
    line = next(ln for ln in out.stdout.splitlines() if ln.upper().startswith("AES-128-CBC"))
    last = line.split()[-1]  # e.g. 1131839.49k (1000-byte units per second)
    return float(last.rstrip("k")) * 1000 / 1e6


class Bench:
    """The rows of the main table, each with nginx's figures for the same bodies."""

    def __init__(self, args: argparse.Namespace, nginx: bench_nginx.Nginx | None) -> None:
        self.args = args
        self.nginx = nginx
        self.rows: list[Row] = []
        self.ref: dict[str, dict[str, float]] = {}  # row name -> nginx's wrk figures
        self._by_bodies: dict[bytes, dict[str, float]] = {}

    def wrk(self, urls: list[str], headers: dict[str, str] | None = None) -> dict[str, float]:
        return wrk(urls, self.args.seconds, self.args.connections, headers)

    def reference(self, name: str, bodies: list[tuple[bytes, str]]) -> None:
        """nginx on the same bodies, once per distinct list (both key rows share a file)."""
        if self.nginx is None:
            return
        digest = hashlib.sha256(b"".join(hashlib.sha256(b).digest() for b, _ in bodies)).digest()
        if digest not in self._by_bodies:
            self._by_bodies[digest] = self.wrk(self.nginx.serve(bodies))
        self.ref[name] = self._by_bodies[digest]

    def measure(self, name: str, urls: list[str], headers: dict[str, str] | None = None) -> Row:
        """Fetch every URL once (warms the caches, gives the bytes), wrk the origin, then nginx."""
        bodies = [fetch(u, headers) for u in urls]
        row = (name, self.wrk(urls, headers), sum(len(b) for b, _ in bodies) / len(bodies))
        self.reference(name, bodies)
        return row

    def line(self, row: Row, ceiling: float) -> str:
        name, r, size = row
        avg = f"{size / 1000:,.0f} kB" if size >= 1000 else f"{size:,.0f} B"
        ref = self.ref.get(name)
        ng = f"{ref['rps']:11,.0f} {r['rps'] / ref['rps']:8.2f}" if ref else f"{'':11} {'':8}"
        pct = f"{100 * r['mbs'] / ceiling:.0f}%" if "encrypted" in name and ceiling else ""
        return (
            f"{name:44} {avg:>10} {r['rps']:9,.0f} {r['mbs']:8,.1f} {r['p99']:7.1f} {ng} {pct:>6}"
        )


def vod_rows(b: Bench, base: str, groups: set[str]) -> None:
    for asset, every_kind in SEGMENT_ROWS.items():
        if "segments" in groups:
            for fmt, label in (("m3u8-aapl", "HLS TS"), ("m3u8-cmaf", "HLS fMP4")):
                segments = urls_of(base, asset, fmt)[1]
                b.rows.append(b.measure(f"{asset}: encrypted {label} segments", segments))
            if not every_kind:
                continue
            b.rows.append(b.measure(f"{asset}: clear DASH segments", dash_urls(base, asset)))
            for enc, label in ((",encryption=cenc", "cenc"), (",encryption=cbcs-aapl", "cbcs")):
                urls = dash_urls(base, asset, enc)
                b.rows.append(b.measure(f"{asset}: encrypted DASH segments ({label})", urls))
            b.rows.append(b.measure(f"{asset}: clear Smooth fragments", smooth_urls(base, asset)))
    if "manifests" in groups:
        b.rows += manifests(b, base, "ladder", ".ism", "ladder:")
    if "keys" in groups:
        b.rows.append(b.measure("keys (open policy)", [f"{base}/key?kid={bench_assets.KID}"]))
        bearer = {"Authorization": f"Bearer {bench_assets.jwt_token()}"}
        b.rows.append(
            b.measure("keys (JWT HS256 policy)", [f"{base}/key?kid={bench_assets.JWT_KID}"], bearer)
        )
        for asset, label, headers in (("sample", "open", None), ("tokened", "JWT HS256", bearer)):
            uri = envelope_key_uri(base, asset)
            b.rows.append(b.measure(f"keys (envelope in the URI, {label} policy)", [uri], headers))


def envelope_key_uri(base: str, asset: str) -> str:
    """The key URI (kid and envelope) an asset's first TS media playlist names."""
    media = urls_of(base, asset, "m3u8-aapl")[0][0]
    text = get(media).decode()
    uri = text.split('#EXT-X-KEY:METHOD=AES-128,URI="', 1)[1].split('"', 1)[0]
    assert "edk=" in uri, uri
    return urljoin(media, uri)


def manifests(
    b: Bench, base: str, name: str, ext: str, label: str, *, media: bool = True
) -> list[Row]:
    """Media and master playlists, both MPDs and the Smooth manifest of an asset or channel."""
    at = f"{base}/{name}{ext}/manifest"
    rows = []
    if media:
        urls = urls_of(base, name, "m3u8-aapl", ext)[0] + urls_of(base, name, "m3u8-cmaf", ext)[0]
        rows.append(b.measure(f"{label} HLS media playlists (TS+fMP4)", urls))
    masters = [f"{at}(format=m3u8-aapl)", f"{at}(format=m3u8-cmaf)"]
    rows.append(b.measure(f"{label} HLS master playlists (TS+fMP4)", masters))
    for fmt in ("mpd-time-csf", "mpd-time-cmaf"):
        rows.append(b.measure(f"{label} MPD {fmt}", [f"{at}(format={fmt})"]))
    rows.append(b.measure(f"{label} Smooth manifest", [at]))
    return rows


def live_rows(b: Bench, srv: Origin) -> bench_live.Results:
    """bench_live's rows, each with nginx on the bodies fetched right after its wrk run, then a
    looped channel's manifests."""
    bodies: list[list[tuple[bytes, str]]] = []

    def live_wrk(urls: list[str]) -> dict[str, float]:
        r = b.wrk(urls)
        bodies.append([fetch(u) for u in urls])  # the bytes of that moment: live ones change
        return r

    live = bench_live.run(
        srv.base, srv.proc.pid, CACHE, get=get, wrk=live_wrk, wrk_seconds=b.args.seconds
    )
    for (name, _, _), got in zip(live.rows, bodies, strict=True):
        b.reference(name, got)
    # bench_live has the media playlists' rows
    live.rows.extend(
        manifests(b, srv.base, bench_live.LOOP_CHANNEL, ".isml", "looped channel", media=False)
    )
    return live


def memory(srv: Origin) -> list[str]:
    """RSS after the load, once settled, and whatever /healthz tells of the caches."""
    # The server gives freed heap pages back every memory.TRIM_EVERY seconds: the steady RSS,
    # not the instant after the last response.
    time.sleep(TRIM_EVERY + 1)
    st = srv.status()
    lines = [
        f"{'RSS after the load (VmRSS)':44} {st['VmRSS'] / 1024:8.1f} MB  (target < 120 MB)",
        f"{'peak RSS (VmHWM)':44} {st['VmHWM'] / 1024:8.1f} MB",
    ]
    health = json.loads(get(srv.base + "/healthz"))
    for name, c in health.get("caches", {}).items():
        ratio = "-" if c["hit_ratio"] is None else f"{c['hit_ratio']:.2f}"
        lines.append(
            f"{'cache: ' + name:44} {c['used_bytes'] / 1e6:8.1f} MB of "
            f"{c['capacity_bytes'] / 1e6:.0f}, {c['entries']:,} entries, "
            f"{c['hits']:,} hits / {c['misses']:,} misses (hit ratio {ratio})"
        )
    if "fast_path" in health:
        lines.append(f"{'fast-path answers':44} {health['fast_path']['hits']:,}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10, help="per wrk row (default 10)")
    ap.add_argument("--quick", action="store_true", help="3 s per wrk row")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument(
        "--rows", default=",".join(GROUPS), help="comma-separated, of: " + ", ".join(GROUPS)
    )
    ap.add_argument("--live-only", action="store_true", help="as --rows live")
    args = ap.parse_args()
    if args.quick:
        args.seconds = 3
    groups = {"live"} if args.live_only else {g.strip() for g in args.rows.split(",") if g.strip()}
    if unknown := groups - set(GROUPS):
        ap.error(f"unknown rows {', '.join(sorted(unknown))}; known: {', '.join(GROUPS)}")
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            print(f"{tool} is needed: apt-get install {tool}", file=sys.stderr)
            return 1
    CACHE.mkdir(exist_ok=True)
    if TWO_CORES:  # this process's clients (probes, cold fetches, pushers) on wrk's core
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
    ceiling = openssl_ceiling() if groups & {"segments", "tail"} else 0.0
    ladder = bench_assets.make_ladder()
    cfg = bench_assets.write_config(ladder, bench_assets.make_big())
    nginx = bench_nginx.Nginx() if groups & NGINX_GROUPS else None
    b = Bench(args, nginx)
    live: bench_live.Results | None = None
    tail: bench_tail.Tail | None = None
    mem: list[str] = []
    cold: list[tuple[str, dict[str, float], float | None]] = []
    at_rest: list[tuple[str, dict[str, float], float | None]] = []
    starts: dict[tuple[int, str], dict[str, float]] = {}
    helpers: dict[str, dict[str, float] | None] = {}
    targets: dict[str, list[str]] = {}
    two: dict[str, dict[str, float]] = {}
    try:
        srv = Origin(cfg)
        try:
            srv.wait_ready()
            vod_rows(b, srv.base, groups)
            if "tail" in groups:
                tail = tail_rows(b, srv.base)
            if "memory" in groups:
                for asset in SEGMENT_ROWS:  # the load, if no row above gave it
                    for fmt in ("m3u8-aapl", "m3u8-cmaf"):
                        for u in urls_of(srv.base, asset, fmt)[1]:
                            get(u)
                mem = memory(srv)
            if "live" in groups:  # after the VOD memory row: the channels' windows hold media
                live = live_rows(b, srv)
                if mem:
                    time.sleep(TRIM_EVERY + 1)
                    rss = srv.status()["VmRSS"] / 1024
                    mem.append(f"{'RSS after the live rows too (windows filled)':44} {rss:8.1f} MB")
            if "workers" in groups:
                targets = worker_targets(b, srv.base)
        finally:
            srv.stop()
        if "cold" in groups:
            cold = cold_rows(b, ladder)
            helpers["cold"] = bench_fresh.helper_rows("bench_cold", "measure_cold")
        if "atrest" in groups:
            at_rest = at_rest_rows(ladder)
        if "startup" in groups:
            starts = {
                (n, "startup"): bench_fresh.startup(
                    bench_assets.write_many(f"startup_{n}", ladder, n), n
                )
                for n in (1, 100)
            }
            # A catalog: indexed on first requests (server.index = "lazy").
            lazy = bench_assets.write_many("startup_lazy", ladder, 10_000, 'index = "lazy"\n')
            starts[10_000, "lazy"] = bench_fresh.startup(lazy, 10_000)
            # The same 10,000 in a SQLite catalog; an empty catalog for the RSS baseline. A
            # catalog asset streams through a locator only: the first request is refused (404)
            # without one, so it is timed under one made for it.
            for n in (0, 10_000):
                cat = bench_assets.write_catalog(f"startup_catalog_{n}", ladder, n)
                loc = bench_assets.add_locator(cat, f"a{n - 1}") if n else ""
                starts[n, "catalog"] = bench_fresh.startup(cat, n, loc)
            helpers["startup"] = bench_fresh.helper_rows(
                "bench_startup", "measure_startup", n_assets=100
            )
        if targets:
            two = bench_fresh.two_workers(cfg, targets, args.seconds, args.connections)
    finally:
        if nginx is not None:
            nginx.stop()
    report(b, ceiling, live, tail, mem)
    if cold:
        bench_fresh.report_cold(cold, helpers.get("cold"))
    if at_rest:
        report_at_rest(at_rest)
    if starts:
        bench_fresh.report_startup(starts, helpers.get("startup"))
    if two:
        one = {r[0]: r[1] for r in b.rows}
        bench_fresh.report_workers(two, one, args.connections, b.ref)
    return 0


def tail_rows(b: Bench, base: str) -> bench_tail.Tail:
    playlists, every = urls_of(base, "big", "m3u8-aapl")
    # The video rendition's segments (video + audio, ~3.2 MB): with the 108 kB audio-only ones
    # mixed in, the latency distribution has two humps and its p50 falls between them.
    segments = [u for u in every if "video=" in u]
    for u in segments:
        get(u)
    probes = {
        "big: HLS TS media playlist": playlists[0],
        "key (open policy)": f"{base}/key?kid={bench_assets.KID}",
    }
    return bench_tail.run(segments, probes, wrk=lambda urls, c: wrk(urls, b.args.seconds, c))


def cold_rows(b: Bench, ladder: list[Path]) -> list[tuple[str, dict[str, float], float | None]]:
    """The ladder's segments on fresh servers, next to the warm wrk row of the same segments."""
    cfg = bench_assets.write_many("cold", ladder, 1)
    warm = {r[0]: r[1]["mbs"] for r in b.rows}
    out = []
    for fmt, label in (("m3u8-aapl", "HLS TS"), ("m3u8-cmaf", "HLS fMP4")):
        for clients in bench_fresh.COLD_CONCURRENCY:
            how = "sequential" if clients == 1 else f"{clients} concurrent"
            r = bench_fresh.cold(cfg, "a0", fmt, clients)
            wrk_mbs = warm.get(f"ladder: encrypted {label} segments")
            out.append((f"ladder: cold {label} segments, {how}", r, wrk_mbs))
    return out


AT_REST_REPEATS = 9


def at_rest_rows(ladder: list[Path]) -> list[tuple[str, dict[str, float], float | None]]:
    """Cold passes (the only ones that read sources: warm segments come from the cache) over the
    ladder's clear files and over the same files encrypted at rest, a server of each in turn;
    the encrypted rows carry the median of the pairs' ratios."""
    encrypted, state = bench_assets.encrypt_at_rest(ladder)
    server = f'state_dir = "{state}"\n'
    clear_cfg = bench_assets.write_many("atrest_clear", ladder, 1, server)
    enc_cfg = bench_assets.write_many("atrest_enc", encrypted, 1, server)
    out = []
    for fmt, label in (("m3u8-aapl", "HLS TS"), ("m3u8-cmaf", "HLS fMP4")):
        for clients in bench_fresh.COLD_CONCURRENCY:
            how = "sequential" if clients == 1 else f"{clients} concurrent"
            # A pass is a tenth of a second: more servers than the cold rows, for a steadier ratio.
            clear, enc, ratio = bench_fresh.cold_pairs(
                clear_cfg, enc_cfg, "a0", fmt, clients, repeats=AT_REST_REPEATS
            )
            out.append((f"ladder clear at rest: cold {label}, {how}", clear, None))
            out.append((f"ladder encrypted at rest: cold {label}, {how}", enc, ratio))
    return out


def report_at_rest(rows: list[tuple[str, dict[str, float], float | None]]) -> None:
    print()
    print(
        "storage encryption at rest: the cold pass over clear and encrypted-at-rest sources, "
        f"median of {AT_REST_REPEATS} servers each"
    )
    print(f"{'what':52} {'segments':>8} {'seconds':>8} {'MB/s':>8} {'x clear':>8}")
    for what, r, ratio in rows:
        mbs = r["bytes"] / r["cold_s"] / 1e6
        shown = f"{ratio:.2f}" if ratio else ""
        print(f"{what:52} {r['segments']:8.0f} {r['cold_s']:8.3f} {mbs:8.1f} {shown:>8}")
    print(
        "(x clear: the median over pairs of servers, one clear then one encrypted, of the "
        "encrypted MB/s over the clear; target >= 0.90)"
    )


def worker_targets(b: Bench, base: str) -> dict[str, list[str]]:
    """The URLs two workers are compared on; the one-worker figure measured now if no row of
    the table gave it."""
    seg = urls_of(base, "big", "m3u8-aapl")[1]
    media = urls_of(base, "ladder", "m3u8-aapl")[0] + urls_of(base, "ladder", "m3u8-cmaf")[0]
    targets = dict(zip(WORKER_ROWS, (seg, media), strict=True))
    done = {r[0] for r in b.rows}
    for name, urls in targets.items():
        if name not in done:
            b.rows.append(b.measure(name, urls))
    return targets


def report(
    b: Bench,
    ceiling: float,
    live: bench_live.Results | None,
    tail: bench_tail.Tail | None,
    mem: list[str],
) -> None:
    print()
    if ceiling:
        print(f"AES-128-CBC, one core (openssl speed -evp, 16 KiB blocks): {ceiling:,.0f} MB/s")
    pin = "CPU 0" if TWO_CORES else "any CPU (no taskset or one core)"
    print(f"one origin worker and one nginx worker on {pin}, wrk -c{b.args.connections} on CPU 1,")
    print(f"{b.args.seconds} s each, warm caches; nginx: {nginx_version()} serving the same bytes")
    print(
        f"{'what':44} {'avg size':>10} {'req/s':>9} {'MB/s':>8} {'p99 ms':>7} "
        f"{'nginx req/s':>11} {'x nginx':>8} {'% AES':>6}"
    )
    for row in b.rows:
        print(b.line(row, ceiling))
    common_encryption(b.rows)
    if live is not None:
        bench_live.report(live, lambda row: b.line(row, ceiling))
    if tail is not None:
        bench_tail.report(tail, "big asset's encrypted HLS TS video segments")
    if mem:
        print()
        print("memory: the one-worker server above, default settings but the access log")
        for ln in mem:
            print(ln)


def common_encryption(rows: list[Row]) -> None:
    """Issue 12's bar: cenc segment MB/s at least 80% of AES-128's (HLS fMP4, same asset)."""
    by_name = {name: r for name, r, _ in rows}
    for asset in SEGMENT_ROWS:
        aes = by_name.get(f"{asset}: encrypted HLS fMP4 segments")
        for label in ("cenc", "cbcs"):
            cenc = by_name.get(f"{asset}: encrypted DASH segments ({label})")
            if aes and cenc:
                share = cenc["mbs"] / aes["mbs"]
                bar = "  (target >= 0.80)" if label == "cenc" else ""
                print(f"{asset}: {label} MB/s / AES-128 fMP4 MB/s {share:33.2f}{bar}")


def nginx_version() -> str:
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
    return out.stderr.strip().removeprefix("nginx version: ")


if __name__ == "__main__":
    sys.exit(main())
