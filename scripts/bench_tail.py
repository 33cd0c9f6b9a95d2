"""Tail latency rows of scripts/bench.py: 64 connections fetching big segments (wrk, which reports
only aggregate latency), and, during that load, a playlist and a key request timed one by one by
a second client: a keep-alive connection per URL from a thread of this process (pinned, as wrk,
to CPU 1), each sending its next request PROBE_GAP_S after the last answer so that the probes add
no load worth the name.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench_http import percentile

CONNECTIONS = 64
PROBE_GAP_S = 0.01
PROBE_TARGET_MS = 20.0


class _Timed:
    """GETs one URL over a keep-alive connection; milliseconds per full answer."""

    def __init__(self, url: str) -> None:
        u = urlsplit(url)
        self.netloc = u.netloc
        self.path = u.path + (f"?{u.query}" if u.query else "")
        self.conn = http.client.HTTPConnection(self.netloc, timeout=30)
        self.samples: list[float] = []
        self.errors = 0

    def once(self) -> None:
        t0 = time.perf_counter()
        try:
            self.conn.request("GET", self.path)
            r = self.conn.getresponse()
            r.read()
        except (OSError, http.client.HTTPException):
            self.errors += 1
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.netloc, timeout=30)
            return
        if r.status != 200:
            self.errors += 1
            return
        self.samples.append(1000 * (time.perf_counter() - t0))


@dataclass(frozen=True, slots=True)
class Tail:
    segments: dict[str, float]  # wrk's figures (rps, mbs, p50, p99)
    probes: dict[str, list[float]]  # what -> milliseconds of each answer during the load
    errors: dict[str, int]


def _probe(timed: _Timed, stop: threading.Event) -> None:
    while not stop.is_set():
        timed.once()
        time.sleep(PROBE_GAP_S)


def run(
    segments: list[str],
    probes: dict[str, str],
    *,
    wrk: Callable[[list[str], int], dict[str, float]],
) -> Tail:
    """wrk with CONNECTIONS on ``segments``; ``probes`` (what -> URL) timed while it runs."""
    timed = {what: _Timed(url) for what, url in probes.items()}
    for t in timed.values():  # a first answer before the load: connected, and warm
        t.once()
        t.samples.clear()
    stop = threading.Event()
    threads = [threading.Thread(target=_probe, args=(t, stop)) for t in timed.values()]
    for th in threads:
        th.start()
    try:
        figures = wrk(segments, CONNECTIONS)
    finally:
        stop.set()
        for th in threads:
            th.join()
    return Tail(
        figures,
        {what: t.samples for what, t in timed.items()},
        {what: t.errors for what, t in timed.items()},
    )


def report(r: Tail, label: str) -> None:
    s = r.segments
    print()
    print(f"tail latency: {label}, wrk -c{CONNECTIONS} on CPU 1, a probe beside it on CPU 1")
    print(f"{'what':44} {'p50 ms':>8} {'p99 ms':>8} {'p99/p50':>8} {'samples':>8}  target")
    print(
        f"{'segments under load (wrk)':44} {s['p50']:8.1f} {s['p99']:8.1f} "
        f"{s['p99'] / s['p50']:8.2f} {'':>8}  p99 <= 2 x p50"
    )
    for what, samples in r.probes.items():
        p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
        errors = f", {r.errors[what]} errors" if r.errors[what] else ""
        print(
            f"{what + ' during that load':44} {p50:8.1f} {p99:8.1f} {p99 / p50:8.2f} "
            f"{len(samples):8}  p99 < {PROBE_TARGET_MS:.0f} ms{errors}"
        )
