"""Running the server: process set-up (logging, malloc), the listening socket, the event loop and
its signals (stop and drain, reload), worker processes, and the start-up summary."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import socket
import sys
import time
from collections.abc import Coroutine, Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import Any

from aiohttp import web

from origin.core import pipeline, urls
from origin.core.urls import Format
from origin.service import delivery, logs, memory, metrics
from origin.service.app import AccessLogger, build_app, follow_config
from origin.service.catalog.errors import CatalogError
from origin.service.config import AssetConfig, Config, ConfigError, load_config, resolve_secrets
from origin.service.connections import Limits, SafeAppRunner, raise_nofile_limit
from origin.service.reload import Reloader, keep_overrides
from origin.service.served import STATE
from origin.service.state import State, build_state

log = logging.getLogger("origin")
# Above the 8 KiB token limit, so an oversized token gets the policy's 401 answer.
MAX_HEADER_BYTES = 16 * 1024
PENDING_LISTED = 20  # not-yet-indexed assets listed one by one at start (a catalog: thousands)
WORKER_START_TIMEOUT = 120.0  # seconds for every worker to load its assets and listen


class ListenError(Exception):
    """The address cannot be listened on; the message says which and why."""


def setup_process() -> None:
    """What every server process does first: log to stderr, keep segment buffers on the heap."""
    logging.basicConfig(
        level=os.environ.get("ORIGIN_LOG_LEVEL", "INFO"), handlers=[logs.handler(sys.stderr)]
    )
    memory.tune_malloc()


def listen_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A bound, listening, non-blocking socket; :class:`ListenError` when the address is taken
    or not ours."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as e:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.setblocking(False)
    return sock


def summary(state: State, host: str, port: int) -> str:
    """What `origin serve` prints once it listens: each asset and its manifest URLs."""
    root = urls.root_url(host, port)
    lines = [f"origin serving on {root}/"]
    if state.config.server.player:
        lines.append(f"  open {root}/ in a browser to play every title ({root}/status: status)")
    for name, a in state.assets.items():
        p = a.presentation
        kinds = f"{len(p.video)} video rendition(s)" + (" + audio" if p.audio else "")
        segs = len(p.video[0].seg) if p.video else (len(p.audio.seg) if p.audio else 0)
        prot = a.config.protection
        lines.append(f"  {name}: {kinds}, {float(p.duration):.3f}s, {segs} segments, {prot}")
        lines.extend(_asset_urls(a.config, root))
    listed = list(state.pending.values())[:PENDING_LISTED]
    for pending in listed:
        cfg = pending.config
        lines.append(f"  {cfg.name}: indexed on its first request, {cfg.protection}")
        lines.extend(_asset_urls(cfg, root))
    if len(state.pending) > len(listed):
        more = len(state.pending) - len(listed)
        lines.append(f"  … and {more} more asset(s), each indexed on its first request")
    for name, reason in state.refused.items():
        lines.append(f"  {name}: REFUSED: {reason}")
    lines.extend(_channel_lines(state, root))
    return "\n".join(lines)


def _asset_urls(cfg: AssetConfig, root: str) -> list[str]:
    blocked = " (blocked by its delivery policy)"
    lines = []
    for label, fmt in (
        ("HLS (TS):  ", Format.HLS_TS),
        ("HLS (fMP4):", Format.HLS_CMAF),
        ("DASH:      ", Format.DASH_CSF),
        ("Smooth:    ", None),
    ):
        refused = blocked if delivery.refusal(cfg, urls.protocol_of(fmt)) else ""
        lines.append(f"    {label} {root}/{urls.master_uri(cfg.name, fmt)}{refused}")
    # Common Encryption the policy allows on DASH without being its default: the URL to ask.
    listed = delivery.allowed(cfg, urls.Protocol.DASH)
    for scheme in (pipeline.Scheme.CENC, pipeline.Scheme.CBCS):
        if scheme.value in listed[1:] and cfg.key_id is not None:
            uri = urls.master_uri(cfg.name, Format.DASH_CSF).removesuffix(")")
            option = pipeline.option_of(scheme)
            lines.append(f"    DASH {scheme.value}:  {root}/{uri},encryption={option})")
    return lines


def _channel_lines(state: State, root: str) -> list[str]:
    """Each channel's player URLs and, for an ingest channel, where an encoder pushes to (with
    the credential: the operator reads this on the console, it is never logged)."""
    lines = []
    for ch in state.config.channels:
        if ch.loop:
            what = f"live, looping asset {ch.asset!r}" + (
                "" if ch.asset in state.assets else " (NOT LOADED: the loop does not run)"
            )
        else:
            what = "live, ingest"
        lines.append(f"  {ch.name}: {what}, {float(ch.window):g}s window, {ch.protection}")
        for label, fmt in (
            ("HLS (TS):  ", Format.HLS_TS),
            ("HLS (fMP4):", Format.HLS_CMAF),
            ("DASH:      ", Format.DASH_CSF),
            ("Smooth:    ", None),
        ):
            lines.append(f"    {label} {root}/{urls.channel_uri(ch.name, fmt)}")
        if ch.ingest:
            host = root.split("://", 1)[1]
            cred = f"{ch.ingest_user}:{ch.ingest_secret}@" if ch.ingest_secret else ""
            auth = "-auth_type basic " if cred else ""
            url = f"http://{cred}{host}/{urls.ingest_uri(ch.name, 'stream1')}"
            lines.append(f"    ingest:     POST {url}")
            lines.append(
                "    e.g. ffmpeg -re -i INPUT.mp4 -c:v libx264 -g 50 -c:a aac -f ismv "
                f'-movflags isml+frag_keyframe {auth}"{url}"'
            )
    return lines


async def serve(
    state: State,
    sock: socket.socket,
    ready_message: str | None = None,
    ready: Queue[int] | None = None,
) -> None:
    """Serve ``state`` on ``sock`` until SIGINT or SIGTERM, then drain; SIGHUP reloads the config.

    ``ready_message`` is printed, and this process's id put on ``ready``, once it listens.
    """
    app = build_app(state)  # its cleanup closes the state that is current then
    app.cleanup_ctx.append(memory.trimming)
    srv = state.config.server
    if srv.access_log_format == "json":
        logs.AccessFormat.json = True
        access = logging.getLogger(logs.ACCESS_LOGGER)
        access.handlers[:] = [logs.json_access_handler(sys.stderr)]
        access.propagate = False  # the object alone on its line, not in the text format
    runner = SafeAppRunner(
        app,
        limits=Limits(header_timeout=srv.header_timeout, nofile=raise_nofile_limit()),
        access_log_class=AccessLogger,
        access_log=logging.getLogger("origin.access") if srv.access_log else None,
        handle_signals=False,
        max_field_size=MAX_HEADER_BYTES,
        max_line_size=MAX_HEADER_BYTES,
        keepalive_timeout=srv.keepalive_timeout,
        shutdown_timeout=srv.drain_timeout,
    )
    await runner.setup()
    try:
        site = web.SockSite(runner, sock)
        await site.start()
        if ready_message:
            print(ready_message, flush=True)
        if ready is not None:
            ready.put(os.getpid())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        config_path = state.config.path
        catalog_cfg = state.config.catalog
        watching: asyncio.Task[None] | None = None
        if config_path is not None:
            link = None
            if catalog_cfg is not None:
                from origin.service.catalog.sync import Link  # noqa: PLC0415

                link = Link(catalog_cfg, app[STATE])
            reloader = Reloader(
                app[STATE],
                config_path,
                on_swap=lambda s: follow_config(app, s),
                snapshot=link.snapshot if link else None,
            )
            app[STATE].reloader = reloader
            loop.add_signal_handler(signal.SIGHUP, reloader.request)
            if link is not None:
                app[STATE].catalog = link
                watching = loop.create_task(link.watch(reloader.reload))
        await stop.wait()
        if watching is not None:
            watching.cancel()
        app[STATE].draining = True  # /readyz: 503 from now on
        delay = app[STATE].current.config.server.drain_delay
        if delay:
            log.info("stopping: /readyz unready, still serving for %gs before the drain", delay)
            stop.clear()  # a second SIGTERM or SIGINT cuts the delay short
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    finally:
        await runner.cleanup()
        logs.flush_counts()


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop  # noqa: PLC0415 - optional on platforms without it
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def run(config: Config) -> int:
    """Serve ``config`` until stopped, in one process or ``server.workers``; the exit status."""
    server = config.server
    try:
        if server.workers > 1:
            return _serve_workers(config)
        state = build_state(config)
        sock = listen_socket(server.host, server.port, reuse_port=False)
    except ListenError as e:
        print(e, file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    _run_loop(serve(state, sock, summary(state, server.host, port)))
    return 0


def _worker(config: Config, ready: Queue[int], restarted: bool = False) -> None:
    setup_process()
    if restarted:
        config = _current_config(config)
    state = build_state(config)
    sock = listen_socket(config.server.host, config.server.port, reuse_port=True)
    _run_loop(serve(state, sock, ready=ready))


def _current_config(started: Config) -> Config:
    """For a worker started in place of one that died: the config file as it is now (the others
    have reloaded it on every SIGHUP since), with the command line's overrides; the config the
    server started with if the file cannot be loaded now."""
    if started.path is None:
        return started
    try:
        if started.catalog is not None:  # the catalog as it is now, as the others follow it
            from origin.service.catalog.merge import compose  # noqa: PLC0415
            from origin.service.catalog.sync import initial_snapshot  # noqa: PLC0415

            current = keep_overrides(
                compose(started.path, initial_snapshot(started.catalog)), started
            )
        else:
            current = keep_overrides(load_config(started.path), started)
            current = resolve_secrets(current, current.server.state_dir)
    except ConfigError as e:
        log.error("worker: the config no longer loads, starting with the first one: %s", e)
        return started
    except CatalogError as e:
        log.error("worker: the catalog cannot be read, starting with the first config: %s", e)
        return started
    return dataclasses.replace(current, channels=())  # as the other workers: no live


def _serve_workers(config: Config) -> int:
    """N processes, each with its own SO_REUSEPORT socket on one port; nothing shared but files."""
    server = config.server
    if server.port == 0:
        print("--workers needs a fixed --port", file=sys.stderr)
        return 1
    listen_socket(server.host, server.port, reuse_port=True).close()  # fail early if taken
    dropped = [c.name for c in config.channels]
    if dropped:
        # A channel's index lives in one process's memory: an encoder's POST reaches one worker
        # and the players' requests all of them. Until the index is shared, live needs one.
        config = dataclasses.replace(config, channels=())
    live_note = (
        f"  live channels {', '.join(dropped)} NOT served: they need workers = 1" if dropped else ""
    )
    made = metrics.multiprocess_dir()  # before any worker starts: they read it at start
    try:
        return _run_workers(config, live_note)
    finally:
        if made is not None:
            metrics.remove_dir(made)


def _run_workers(config: Config, live_note: str) -> int:
    server = config.server
    ctx = multiprocessing.get_context("spawn")
    ready: Queue[int] = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(config, ready), daemon=True)
        for _ in range(server.workers)
    ]
    for p in procs:
        p.start()
    state = build_state(config)  # only for the summary; the workers load their own
    for _ in procs:  # announce the address only once every worker listens
        try:
            ready.get(timeout=WORKER_START_TIMEOUT)
        except queue.Empty:
            print("a worker did not start", file=sys.stderr)
            _signal_all(procs, signal.SIGTERM)
            return 1
    print(summary(state, server.host, server.port), flush=True)
    pids = ", ".join(str(p.pid) for p in procs)
    print(f"  {server.workers} worker processes (pids {pids})", flush=True)
    if live_note:
        print(live_note, flush=True)
    state.close()
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = stopping or signum in (signal.SIGINT, signal.SIGTERM)
        _signal_all(procs, signal.SIGTERM if signum == signal.SIGINT else signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    started = {p.pid: time.monotonic() for p in procs}
    while procs:
        by_sentinel = {p.sentinel: p for p in procs}
        for sentinel in multiprocessing.connection.wait(list(by_sentinel)):
            p = by_sentinel[sentinel]  # type: ignore[index]
            p.join()
            procs.remove(p)
            if p.pid:
                metrics.worker_gone(p.pid)
            if stopping:
                continue
            # A worker that dies at once would die again at once: not faster than once a second.
            lived = time.monotonic() - started.pop(p.pid, 0.0)
            if lived < 1.0:
                time.sleep(1.0 - lived)
            again = ctx.Process(target=_worker, args=(config, ready, True), daemon=True)
            again.start()
            procs.append(again)
            started[again.pid] = time.monotonic()
            log.warning(
                "worker %s exited (status %s); worker %s started in its place",
                p.pid, p.exitcode, again.pid,
            )  # fmt: skip
    return 0


def _signal_all(procs: Sequence[BaseProcess], signum: int) -> None:
    for p in procs:
        if p.is_alive() and p.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signum)
