"""``/metrics``: the Prometheus text format (prometheus-client), one view across ``--workers N``.

Requests are counted where every answer is written (aiohttp's and the fast path's alike, on the
connection) as plain integers in :data:`RECORD`: no client-library call per request. They are
added to prometheus-client's metrics every :data:`FLUSH_EVERY` seconds and before each scrape,
with the gauges read then (caches, connections, live ingest lag). With several workers the
parent sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker starts (:func:`multiprocess_dir`):
each worker writes its values there and a scrape of any worker sums them (gauges over the
workers alive). Labels never carry a token, a path or a client's address.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections import Counter as Tally
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

    from origin.service.fastpath import Answer

FLUSH_EVERY = 1.0  # seconds
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The text format every Prometheus release reads (generate_latest writes it).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATUS_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/channels", "/time"})
PAGE_PATHS = frozenset({"/", "/player", "/status"})
# Seconds: a cold segment is built in 0.1-10 ms; a slow disk makes it longer.
BUILD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


def kind_of(method: str, path: str) -> str:
    """The route kind a request is counted under (a few fixed values, never the path)."""
    if path.startswith(("/key", "/clearkey")):  # raw keys and ClearKey licenses (license.py)
        return "key"
    if path in STATUS_PATHS:
        return "status"
    if path in PAGE_PATHS or path.startswith("/player/"):  # the built-in page (player/)
        return "page"
    if "Fragments(" in path:
        return "segment"
    if method in ("POST", "PUT"):
        return "ingest"
    if ".ism" in path:
        return "manifest"
    return "other"


class Recorder:
    """What the hot paths count, as plain integers until the next flush."""

    __slots__ = ("connections", "fragments", "keys", "requests", "sent")

    def __init__(self) -> None:
        self.connections = 0  # open now
        self.requests: Tally[tuple[str, int]] = Tally()  # (kind, status)
        self.sent: Tally[str] = Tally()  # bytes by kind
        self.keys: Tally[str] = Tally()  # key requests by outcome
        self.fragments: Tally[str] = Tally()  # ingested fragments by channel

    def answered(self, method: str, path: str, status: int, size: int) -> None:
        kind = kind_of(method, path)
        self.requests[kind, status] += 1
        self.sent[kind] += size
        if kind == "key" and status in _KEY_OUTCOMES:  # refusals: key_refused() says why
            self.keys[_KEY_OUTCOMES[status]] += 1

    def replayed(self, answers: Iterable[Answer], date_size: int) -> None:
        """Answers the fast path wrote (their kind and status worked out when stored)."""
        requests, sent = self.requests, self.sent
        for a in answers:
            requests[a.counted] += 1
            sent[a.counted[0]] += len(a.head) + date_size + len(a.tail)
            if a.counted[0] == "key":
                self.keys["delivered"] += 1  # only 200 and 304 answers are replayed

    def key_refused(self, status: int, reason: str) -> None:
        """A key refused by its policy: counted by the kind of refusal (never its text)."""
        if status == 401:
            outcome = "missing_token" if reason == "missing token" else "invalid_token"
        else:
            outcome = "address_not_allowed" if reason == "address not allowed" else "not_allowed"
        self.keys[outcome] += 1


_KEY_OUTCOMES = {200: "delivered", 304: "delivered", 400: "bad_request", 404: "unknown_key"}


RECORD = Recorder()


class Exported:
    """prometheus-client's metrics of this process, made on first use (after the parent has
    chosen the multiprocess mode, which the library reads when it makes them)."""

    def __init__(self) -> None:
        from prometheus_client import (  # noqa: PLC0415 - see the class docstring
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
        )

        multi = MULTIPROC_ENV in os.environ
        reg = None if multi else CollectorRegistry()
        self.registry = reg
        self.requests = Counter(
            "origin_requests", "Requests answered, by route kind and status", ["kind", "status"],
            registry=reg,
        )  # fmt: skip
        self.sent = Counter(
            "origin_response_bytes", "Bytes sent (headers and bodies), by route kind", ["kind"],
            registry=reg,
        )  # fmt: skip
        self.keys = Counter(
            "origin_key_requests", "Key requests, by outcome (delivered or why refused)",
            ["outcome"], registry=reg,
        )  # fmt: skip
        self.fragments = Counter(
            "origin_live_fragments", "Fragments ingested, by channel", ["channel"], registry=reg
        )
        self.build = Histogram(
            "origin_segment_build_seconds", "Building a clear segment on a cache miss",
            ["format"], buckets=BUILD_BUCKETS, registry=reg,
        )  # fmt: skip
        self.encrypt = Histogram(
            "origin_segment_encrypt_seconds",
            "Encrypting a segment for its response (summed over its slices when sliced)",
            buckets=BUILD_BUCKETS, registry=reg,
        )  # fmt: skip
        self.cache_lookups = Counter(
            "origin_cache_lookups", "Cache lookups, by cache and result", ["cache", "result"],
            registry=reg,
        )  # fmt: skip
        self.cache_bytes = Gauge(
            "origin_cache_bytes", "Bytes held, by cache", ["cache"], registry=reg,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.cache_capacity = Gauge(
            "origin_cache_capacity_bytes", "Capacity, by cache", ["cache"], registry=reg,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.connections = Gauge(
            "origin_connections", "Open client connections", registry=reg,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.lag = Gauge(
            "origin_live_ingest_lag_seconds",
            "Wall clock minus the newest media time received, by channel and stream",
            ["channel", "stream"], registry=reg, multiprocess_mode="livemax",
        )  # fmt: skip
        self.not_indexed = Gauge(
            "origin_assets_not_indexed", "Assets waiting for their first request (lazy index)",
            registry=reg, multiprocess_mode="livemax",
        )  # fmt: skip
        self._lookups: dict[tuple[str, str], int] = {}  # the caches' counts at the last flush

    def lookups(self, cache: str, hits: int, misses: int) -> None:
        """Add what a cache counted since the last flush (a reload's new cache starts at 0)."""
        for result, now in (("hit", hits), ("miss", misses)):
            before = self._lookups.get((cache, result), 0)
            delta = now - before if now >= before else now
            if delta:
                self.cache_lookups.labels(cache, result).inc(delta)
            self._lookups[cache, result] = now


_EXPORTED: Exported | None = None


def exported() -> Exported:
    global _EXPORTED  # noqa: PLW0603 - one set per process, made once the mode is known
    if _EXPORTED is None:
        _EXPORTED = Exported()
    return _EXPORTED


def observe_build(fmt: str, seconds: float) -> None:
    exported().build.labels(fmt).observe(seconds)


def observe_encrypt(seconds: float) -> None:
    exported().encrypt.observe(seconds)


Gauges = Callable[[Exported], None]


def flush(gauges: Iterable[Gauges] = ()) -> None:
    """Move :data:`RECORD`'s counts into the exported metrics and read the gauges."""
    ex = exported()
    rec = RECORD
    for (kind, status), n in _drain(rec.requests):
        ex.requests.labels(kind, str(status)).inc(n)
    for kind, n in _drain(rec.sent):
        ex.sent.labels(kind).inc(n)
    for outcome, n in _drain(rec.keys):
        ex.keys.labels(outcome).inc(n)
    for channel, n in _drain(rec.fragments):
        ex.fragments.labels(channel).inc(n)
    ex.connections.set(rec.connections)
    for read in gauges:
        read(ex)


def _drain(tally: Tally[Any]) -> list[tuple[Any, int]]:
    items = list(tally.items())
    tally.clear()
    return items


def render(gauges: Iterable[Gauges] = ()) -> tuple[bytes, str]:
    """The text exposition (body, content type): this process's, or every worker's."""
    from prometheus_client import (  # noqa: PLC0415 - see Exported
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    flush(gauges)
    registry = exported().registry
    if registry is None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE


async def flushing(_app: web.Application, gauges: Callable[[], Iterable[Gauges]]) -> None:
    """Flush every FLUSH_EVERY seconds until cancelled (other workers' scrapes read it)."""
    while True:
        await asyncio.sleep(FLUSH_EVERY)
        flush(gauges())


def multiprocess_dir() -> Path | None:
    """Set up the multiprocess mode for the workers about to start, in ``PROMETHEUS_MULTIPROC_DIR``
    (the folder given, emptied of a previous run's values, which would be summed in) or else in a
    temporary folder: returned, for :func:`remove_dir` once the workers are gone."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for f in folder.glob("*.db"):
            f.unlink()
        return None
    made = Path(tempfile.mkdtemp(prefix="origin-metrics-"))
    os.environ[MULTIPROC_ENV] = str(made)
    return made


def worker_gone(pid: int) -> None:
    """A worker ended: its live gauges stop counting."""
    from prometheus_client import multiprocess  # noqa: PLC0415 - see Exported

    if MULTIPROC_ENV in os.environ:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def remove_dir(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


async def run_flushing(
    app: web.Application, gauges: Callable[[], Iterable[Gauges]]
) -> AsyncIterator[None]:
    """An aiohttp cleanup context: :func:`flushing` while the app serves, a last flush after."""
    task = asyncio.create_task(flushing(app, gauges))
    yield
    task.cancel()
    flush(gauges())
