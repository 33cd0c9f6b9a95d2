"""The origin command line: parses the arguments of serve, check-config, inspect, token,
channels, encrypt and protection-cert; `serve` hands the config to :mod:`origin.service.server`."""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from importlib import resources
from pathlib import Path
from urllib.parse import urlencode

from origin.core import pipeline, urls
from origin.core.errors import MediaError
from origin.service import server
from origin.service.catalog import commands as catalog_commands
from origin.service.catalog.errors import CatalogError
from origin.service.catalog.view import CatalogConfig
from origin.service.config import Config, ConfigError, load_config, resolve_secrets
from origin.service.config.channels import secret_path
from origin.service.keys import commands as keys_commands
from origin.service.keys import protection
from origin.service.storage import load_movie, open_source
from origin.service.tokens.sign import sign_token


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
    print(f"{args.path}: OK ({len(cfg.assets)} asset(s), {len(cfg.channels)} channel(s))")
    for ch in cfg.channels:
        if ch.generate_secret:  # check-config writes nothing: serve makes it
            where = secret_path(cfg.server.state_dir, ch.name)
            when = "kept in" if where.exists() else "generated at first start into"
            print(f"  channel {ch.name!r}: ingest secret {when} {where}")
    return 0


def _fmt_time(seconds: Fraction | float) -> str:
    return f"{float(seconds):.3f}s"


def cmd_inspect(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        state_dir = _load(args.config).server.state_dir
        src = open_source(path, functools.partial(protection.cached, state_dir))
    except ConfigError as e:
        _print_config_errors(e)
        return 1
    except MediaError as e:  # encrypted at rest, and it does not open
        print(str(e), file=sys.stderr)
        return 1
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
    srv = config.server
    root = srv.base_url or urls.root_url(srv.host, srv.port)
    query = urlencode({"token": token})
    print(token)
    print(f"{root.rstrip('/')}/{urls.master_uri(asset.name, urls.Format.HLS_TS)}?{query}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    server.setup_process()
    try:
        config = _load(args.config)
        config = resolve_secrets(config, config.server.state_dir)
        if config.catalog is not None and config.path is not None:
            config = _with_catalog(config.path, config.catalog)
    except ConfigError as e:
        _print_config_errors(e)
        return 1
    except CatalogError as e:
        print(str(e), file=sys.stderr)
        return 1
    srv = config.server
    srv = replace(
        srv,
        host=args.host or srv.host,
        port=srv.port if args.port is None else args.port,
        workers=args.workers or srv.workers,
        access_log=srv.access_log and not args.no_access_log,
    )
    return server.run(replace(config, server=srv))


def _with_catalog(path: Path, catalog: CatalogConfig) -> Config:
    """The config file with the catalog's entries, read once before serving."""
    from origin.service.catalog.merge import compose  # noqa: PLC0415 - SQLAlchemy: only here
    from origin.service.catalog.sync import initial_snapshot  # noqa: PLC0415

    return compose(path, initial_snapshot(catalog))


def cmd_channels(args: argparse.Namespace) -> int:
    """Ask a running server for its channels' state and print it."""
    if args.url:
        root = args.url.rstrip("/")
    else:
        try:
            config = _load(args.config)
        except ConfigError as e:
            _print_config_errors(e)
            return 1
        root = urls.root_url(config.server.host, config.server.port)
    try:
        with urllib.request.urlopen(f"{root}/channels", timeout=5) as resp:
            data = json.load(resp)
    except (OSError, ValueError) as e:
        print(f"cannot read {root}/channels: {e}", file=sys.stderr)
        return 1
    if not data["channels"]:
        print("no channels")
    now = time.time()
    for ch in data["channels"]:
        window = ch["window"]
        span = f"{window[0]:.1f}s..{window[1]:.1f}s ({ch['segments']} segments)" if window else "-"
        kind = "looped asset" if ch["loop"] else "ingest"
        print(f"{ch['name']}: {ch['state']}, {kind}, window {span}")
        for st in ch["streams"]:
            last = st["last_fragment"]
            ago = f"{now - last:.1f}s ago" if last else "never"
            lag = f"{st['lag']:.2f}s" if st["lag"] is not None else "-"
            print(
                f"  stream {st['stream']}: {st['connections']} connection(s), last fragment "
                f"{ago}, ingest lag {lag}"
            )
            for track in st["tracks"]:
                print(f"    {track}")
    return 0


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
    inspect.add_argument("--config", help="whose state_dir opens files encrypted at rest")
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
    channels = sub.add_parser("channels", help="show a running server's live channels")
    channels.add_argument("--url", help="the server's root URL (default: from the config)")
    channels.add_argument("--config", help="TOML config (default: the built-in sample)")
    channels.set_defaults(func=cmd_channels)
    keys_commands.add_parsers(sub, _load)
    catalog_commands.add_parsers(sub, _load)
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
