"""The origin command: serve, check-config, inspect, token."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import itertools
import logging
import multiprocessing
import os
import queue
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from origin.core import pipeline
from origin.core.errors import MediaError
from origin.core.urls import Protocol
from origin.service import logs
from origin.service.app import STATE, AccessLogger, build_app
from origin.service.config import Config, ConfigError, load_config
from origin.service.connections import Limits, SafeAppRunner, raise_nofile_limit
from origin.service.proxy.route import PROXY
from origin.service.reload import Reloader
from origin.service.state import State, build_state
from origin.service.storage import load_movie, open_source
from origin.service.tokens.sign import sign_token

log = logging.getLogger("origin")
MAX_HEADER_BYTES = 16 * 1024


def sample_config_path() -> Path:
    """The built-in sample asset's config, shipped inside the package."""
    return Path(str(resources.files("origin") / "sample" / "sample.toml"))


def _load(path: str | None) -> Config:
    return load_config(Path(path) if path else sample_config_path())


def _print_config_errors(e: ConfigError) -> None:
    print(f"config has {len(e.problems)} error(s):", file=sys.stderr)
    for p in e.problems:
        print(f"  {p}", file=sys.stderr)


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(Path(args.path))
    except ConfigError as e:
        _print_config_errors(e)
        return 1
    if cfg.file_problems:  # `serve` would refuse those assets only; still errors to fix
        _print_config_errors(ConfigError(list(cfg.file_problems)))
        return 1
    print(f"{args.path}: OK ({len(cfg.assets)} asset(s))")
    return 0


def _fmt_time(seconds: Fraction | float) -> str:
    return f"{float(seconds):.3f}s"


def cmd_inspect(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        src = open_source(path)
    except OSError as e:
        print(f"{path}: cannot open: {e.strerror or e}", file=sys.stderr)
        return 1
    try:
        movie = load_movie(src)
        target = Fraction(args.segment_duration).limit_denominator(1000)
        pres = pipeline.prepare(path.stem, [movie], target)
    except MediaError as e:
        print(str(e), file=sys.stderr)
        return 1
    print(f"{path}  ({src.size} bytes{', fragmented' if movie.fragmented else ''})")
    for t in movie.tracks:
        line = (
            f"  track {t.track_id} {t.kind.value}: {t.codec_string}, timescale {t.timescale}, "
            f"duration {_fmt_time(t.seconds)}, {len(t.samples)} samples, "
            f"{t.bitrate() / 1000:.0f} kbit/s, language {t.language}"
        )
        if t.kind.value == "video":
            fps = pipeline.frame_rate(t)
            keys = len(t.samples.keyframes)
            line += f", {t.width}x{t.height}, {float(fps):.3f} fps, {keys} keyframes"
        else:
            line += f", {t.sample_rate} Hz, {t.channels} ch"
        if t.pts_shift:
            line += f", edit list shift {t.pts_shift}"
        print(line)
    print(f"segment plan (target {float(target)}s):")
    renditions = [*pres.video, *([pres.audio] if pres.audio else [])]
    for r in renditions:
        durs = ", ".join(f"{float(d):.3f}" for d in r.seg.durations())
        print(f"  {r.kind.value} {r.id}: {len(r.seg)} segments [{durs}]")
    for r in pres.video:
        bw = pres.ts_bandwidth["video", r.id]
        print(f"  HLS TS variant {r.id}: peak {bw.peak} bit/s, average {bw.average} bit/s")
    print("DASH SegmentTimeline / Smooth chunks (100 ns units; also the fragment URL times):")
    for r in renditions:
        chunks = ", ".join(f"t={a} d={b - a}" for a, b in itertools.pairwise(r.times))
        print(f"  DASH/Smooth {r.kind.value} {r.id}: {chunks}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Print a test token for an asset's key policy, like AMS's GenerateTestToken."""
    try:
        config = _load(args.config)
    except ConfigError as e:
        _print_config_errors(e)
        return 1
    asset = next((a for a in config.assets if a.name == args.asset), None)
    if asset is None:
        print(f"no asset {args.asset!r} in the config", file=sys.stderr)
        return 1
    policy = config.policies.get(asset.policy or "")
    options = [o.token for o in policy.options if o.token is not None] if policy else []
    if args.type:
        options = [t for t in options if t.token_type == args.type]
    if not options:
        kind = f"{args.type.upper()} " if args.type else ""
        print(f"asset {args.asset!r}'s policy has no {kind}token option", file=sys.stderr)
        return 1
    claims = {}
    for pair in args.claim:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            print(f"--claim wants NAME=VALUE, got {pair!r}", file=sys.stderr)
            return 1
        claims[name] = value
    signing_key = Path(args.signing_key).read_bytes() if args.signing_key else None
    try:
        token = sign_token(
            options[0],
            kid=asset.key_id,
            ttl=args.ttl,
            claims=claims,
            now=time.time(),
            signing_key=signing_key,
        )
    except ValueError as e:
        print(f"cannot sign: {e}", file=sys.stderr)
        return 1
    server = config.server
    root = server.base_url or f"http://{server.host}:{server.port}"
    query = urlencode({"token": token})
    print(token)
    print(f"{root.rstrip('/')}/{asset.name}.ism/manifest(format=m3u8-aapl)?{query}")
    return 0


def _listen_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _follow_config(app: web.Application, state: State) -> None:
    """After a reload: settings read outside the state follow the new config."""
    if PROXY in app:  # the route exists from start-up; its settings follow the config
        app[PROXY].config = state.config.proxy


async def _serve(
    state: State, sock: socket.socket, ready_message: str | None, ready: Any = None
) -> None:
    app = build_app(state)
    srv = state.config.server
    runner = SafeAppRunner(
        app,
        limits=Limits(header_timeout=srv.header_timeout, nofile=raise_nofile_limit()),
        access_log_class=AccessLogger,
        access_log=logging.getLogger("origin.access") if srv.access_log else None,
        handle_signals=False,
        # Above the 8 KiB token limit, so an oversized token gets the policy's 401 answer.
        max_field_size=MAX_HEADER_BYTES,
        max_line_size=MAX_HEADER_BYTES,
        keepalive_timeout=srv.keepalive_timeout,
        shutdown_timeout=srv.drain_timeout,
    )
    await runner.setup()
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
    if config_path is not None:
        reloader = Reloader(app[STATE], config_path, on_swap=lambda s: _follow_config(app, s))
        loop.add_signal_handler(signal.SIGHUP, reloader.request)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        app[STATE].current.close()
        logs.flush_counts()


def _run_loop(coro_factory: object) -> None:
    try:
        import uvloop  # noqa: PLC0415 - optional on platforms without it

        uvloop.run(coro_factory)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(coro_factory)  # type: ignore[arg-type]


def _worker(config: Config, host: str, port: int, ready: Any) -> None:
    _setup_logging()
    _tune_malloc()
    state = build_state(config)
    sock = _listen_socket(host, port, reuse_port=True)
    _run_loop(_serve(state, sock, None, ready))


def _summary(state: State, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    root = f"http://{shown}:{port}"
    lines = [f"origin serving on {root}/"]
    for name, a in state.assets.items():
        p = a.presentation
        kinds = f"{len(p.video)} video rendition(s)" + (" + audio" if p.audio else "")
        segs = len(p.video[0].seg) if p.video else (len(p.audio.seg) if p.audio else 0)
        prot = a.config.protection
        lines.append(f"  {name}: {kinds}, {_fmt_time(p.duration)}, {segs} segments, {prot}")
        lines.append(f"    HLS (TS):   {root}/{name}.ism/manifest(format=m3u8-aapl)")
        lines.append(f"    HLS (fMP4): {root}/{name}.ism/manifest(format=m3u8-cmaf)")
        blocked = " (blocked by its delivery policy)"
        dash = blocked if a.refusal(Protocol.DASH) else ""
        smooth = blocked if a.refusal(Protocol.SMOOTH) else ""
        lines.append(f"    DASH:       {root}/{name}.ism/manifest(format=mpd-time-csf){dash}")
        lines.append(f"    Smooth:     {root}/{name}.ism/manifest{smooth}")
    for name, reason in state.refused.items():
        lines.append(f"  {name}: REFUSED: {reason}")
    return "\n".join(lines)


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _tune_malloc() -> None:
    """Keep per-request segment buffers (100 kB - 5 MB) on the heap.

    glibc maps blocks above its mmap threshold fresh from the kernel and unmaps them on free, so
    every encrypted segment paid its page faults again (126,000 faults in 8 s of load; 12,000
    after this, +8% requests/s on 120 kB segments). Freed memory stays in the process up to the
    trim threshold instead. Other C libraries: nothing to do.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
    mallopt(_M_TRIM_THRESHOLD, 128 * 1024 * 1024)


def _setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("ORIGIN_LOG_LEVEL", "INFO"), handlers=[logs.handler(sys.stderr)]
    )


def cmd_serve(args: argparse.Namespace) -> int:
    _setup_logging()
    _tune_malloc()
    try:
        config = _load(args.config)
    except ConfigError as e:
        _print_config_errors(e)
        return 1
    server = config.server
    if args.host or args.port is not None or args.workers:
        server = replace(
            server,
            host=args.host or server.host,
            port=server.port if args.port is None else args.port,
            workers=args.workers or server.workers,
        )
        config = replace(config, server=server)
    if args.no_access_log:
        config = replace(config, server=replace(server, access_log=False))
        server = config.server
    if server.workers == 1:
        state = build_state(config)
        try:
            sock = _listen_socket(server.host, server.port, reuse_port=False)
        except OSError as e:
            print(f"cannot listen on {server.host}:{server.port}: {e.strerror}", file=sys.stderr)
            return 1
        port = sock.getsockname()[1]
        _run_loop(_serve(state, sock, _summary(state, server.host, port)))
        return 0
    return _serve_workers(config)


def _serve_workers(config: Config) -> int:
    """N processes, each with its own SO_REUSEPORT socket on one port; nothing shared but files."""
    server = config.server
    if server.port == 0:
        print("--workers needs a fixed --port", file=sys.stderr)
        return 1
    try:  # fail early and clearly if the port is taken
        _listen_socket(server.host, server.port, reuse_port=True).close()
    except OSError as e:
        print(f"cannot listen on {server.host}:{server.port}: {e.strerror}", file=sys.stderr)
        return 1
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(config, server.host, server.port, ready), daemon=True)
        for _ in range(server.workers)
    ]
    for p in procs:
        p.start()
    state = build_state(config)  # only for the summary; the workers load their own
    for _ in procs:  # announce the address only once every worker listens
        try:
            ready.get(timeout=120)
        except queue.Empty:
            print("a worker did not start", file=sys.stderr)
            forward_all(procs)
            return 1
    print(_summary(state, server.host, server.port), flush=True)
    print(f"  {server.workers} worker processes", flush=True)
    state.close()

    def forward(signum: int, _frame: object) -> None:
        forward_all(procs)

    def hup(signum: int, _frame: object) -> None:
        for p in procs:
            if p.is_alive() and p.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGHUP)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, hup)
    for p in procs:
        p.join()
    return 0


def forward_all(procs: Sequence[multiprocessing.process.BaseProcess]) -> None:
    for p in procs:
        if p.is_alive() and p.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)


DESCRIPTION = (
    "A streaming origin: packages MP4 sources into HLS, DASH and Smooth Streaming per request, "
    "encrypts HLS with AES-128 and delivers the keys."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="origin", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the configured assets (default: built-in sample)")
    serve.add_argument("--config", help="TOML config (default: the built-in sample asset)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="processes sharing the port (SO_REUSEPORT)")
    serve.add_argument("--no-access-log", action="store_true", help="do not log each request")
    serve.set_defaults(func=cmd_serve)
    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("path")
    check.set_defaults(func=cmd_check_config)
    inspect = sub.add_parser("inspect", help="print an MP4's tracks and segment plan")
    inspect.add_argument("file")
    inspect.add_argument("--segment-duration", type=float, default=6.0)
    inspect.set_defaults(func=cmd_inspect)
    token = sub.add_parser(
        "token", help="print a test token for an asset's key policy, and a tokenized master URL"
    )
    token.add_argument("--config", help="TOML config (default: the built-in sample)")
    token.add_argument("--asset", required=True)
    token.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid")
    token.add_argument("--type", choices=("jwt", "swt"), help="token option to sign for")
    token.add_argument("--claim", action="append", default=[], metavar="NAME=VALUE")
    token.add_argument(
        "--signing-key", help="PEM private key, for policies with RSA/EC verification keys"
    )
    token.set_defaults(func=cmd_token)
    return parser


SIGPIPE_EXIT = 128 + signal.SIGPIPE  # what a shell reports for a writer killed by SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except BrokenPipeError:
        # `origin inspect FILE | head`: the reader left; end quietly. Python flushes stdout
        # again at exit, so point it at /dev/null first (the recipe in Python's signal docs).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return SIGPIPE_EXIT
    return code


if __name__ == "__main__":
    sys.exit(main())
