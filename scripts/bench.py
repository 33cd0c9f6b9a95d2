#!/usr/bin/env python3
"""Throughput of one origin worker, next to the single-core AES-128-CBC ceiling.

    python scripts/bench.py [--seconds 10] [--connections 16] [--live-only]

Starts ``origin serve`` with ONE worker pinned to CPU 0 and drives it with wrk (Debian package)
pinned to CPU 1, with warm caches (every URL is fetched once before measuring). Measures:
encrypted HLS TS segments, encrypted fMP4 segments, media playlists and key requests, on two
assets: the built-in sample (small 150-600 kbit/s segments) and a 720p 4 Mbit/s asset with 6 s
segments (~3 MB segments, made here with ffmpeg once and cached in /tmp). The ceiling is
``openssl speed -evp aes-128-cbc`` (16 KiB blocks, one core) on the same machine.

Live rows (scripts/bench_live.py; ``--live-only`` runs just those): media playlists of the sample
looped as a live channel, the time from a pushed fragment's last byte to its segment in the
playlist, and the server's CPU while three renditions are pushed at real time.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urljoin

import bench_live
import jwt
import m3u8

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(tempfile.gettempdir()) / "origin-bench"
KID = "da3813af-55e6-48e7-aa9f-a4d6031f7b4d"
KEY = "3c9f2bd4a1e0475e8a7f6b2c1d0e9f8a"
JWT_KID = "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
JWT_SECRET = bytes(range(64))


def jwt_token() -> str:
    now = int(time.time())
    claims = {
        "iss": "https://sts.example",
        "aud": "urn:origin",
        "nbf": now - 60,
        "exp": now + 3600,
        "urn:microsoft:azure:mediaservices:contentkeyidentifier": JWT_KID,
    }
    token: str = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    return token


def openssl_ceiling() -> float:
    """MB/s of AES-128-CBC on one core, 16 KiB blocks (decimal MB, as wrk reports)."""
    out = subprocess.run(
        ["openssl", "speed", "-evp", "aes-128-cbc", "-seconds", "3"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    line = next(ln for ln in out.splitlines() if ln.upper().startswith("AES-128-CBC"))
    last = line.split()[-1]  # e.g. 1131839.49k (1000-byte units per second)
    return float(last.rstrip("k")) * 1000 / 1e6


def make_big_asset() -> Path:
    CACHE.mkdir(exist_ok=True)
    out = CACHE / "bench_720p.mp4"
    if not out.exists():
        print("making a 60 s 720p 4 Mbit/s bench asset with ffmpeg…", flush=True)
        subprocess.run(
            [
                "ffmpeg", "-nostdin", "-v", "error", "-y",
                "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=60",
                "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=60",
                "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "4M", "-maxrate", "4M",
                "-bufsize", "8M", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
                "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(out),
            ],
            check=True,
        )  # fmt: skip
    return out


def write_config(big: Path | None) -> Path:
    sample = ROOT / "origin" / "sample"
    files = ", ".join(f'"{sample / f"sample_{n}.mp4"}"' for n in ("240p", "360p", "480p"))
    cfg = CACHE / "bench.toml"
    cfg.write_text(
        f"""
[server]
access_log = false
cache_mb = 1024

[[assets]]
name = "sample"
files = [{files}]
segment_duration = 4.0
protection = "aes-128"
key_id = "{KID}"
key = "{KEY}"
dash = "clear"
smooth = "clear"

[[assets]]
name = "tokened"
files = [{files}]
segment_duration = 4.0
protection = "aes-128"
key_id = "{JWT_KID}"
key = "{KEY}"
policy = "jwt"

[[policies.jwt.options]]
type = "token"
token_type = "jwt"
issuer = "https://sts.example"
audience = "urn:origin"
primary_key = "{base64.b64encode(JWT_SECRET).decode()}"
required_claims = [{{ type = "urn:microsoft:azure:mediaservices:contentkeyidentifier" }}]
"""
        + ("" if big is None else f"""
[[assets]]
name = "big"
files = ["{big}"]
segment_duration = 6.0
protection = "aes-128"
key_id = "{KID}"
key = "{KEY}"
dash = "clear"
smooth = "clear"
""")
        + bench_live.config("sample")
    )  # fmt: skip
    return cfg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str, headers: dict[str, str] | None = None) -> bytes:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as r:
        data: bytes = r.read()
        return data


def urls_of(base: str, asset: str, fmt: str) -> tuple[list[str], list[str]]:
    """(media playlist URLs, segment URLs) of every rendition, init segments excluded."""
    master_url = f"{base}/{asset}.ism/manifest(format={fmt})"
    master = m3u8.loads(get(master_url).decode(), uri=master_url)
    playlists = sorted({urljoin(master_url, p.uri) for p in master.playlists})
    segments: list[str] = []
    for url in playlists:
        pl = m3u8.loads(get(url).decode(), uri=url)
        segments += [urljoin(url, s.uri) for s in pl.segments]
    return playlists, segments


def dash_urls(base: str, asset: str) -> list[str]:
    """Every media segment of every Representation, expanded from the SegmentTimelines."""
    url = f"{base}/{asset}.ism/manifest(format=mpd-time-cmaf)"
    root = ET.fromstring(get(url))
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    out = []
    for aset in root.iterfind(".//d:AdaptationSet", ns):
        tmpl = aset.find("d:SegmentTemplate", ns)
        assert tmpl is not None
        times, t = [], 0
        for seg in tmpl.iterfind(".//d:S", ns):
            t = int(seg.get("t", t))
            for _ in range(int(seg.get("r", "0")) + 1):
                times.append(t)
                t += int(seg.get("d", "0"))
        media = tmpl.get("media", "")
        for rep in aset.iterfind("d:Representation", ns):
            m = media.replace("$RepresentationID$", rep.get("id", ""))
            out += [urljoin(url, m.replace("$Time$", str(t))) for t in times]
    return out


def smooth_urls(base: str, asset: str) -> list[str]:
    """Every fragment of every QualityLevel of the Smooth manifest."""
    url = f"{base}/{asset}.ism/manifest"
    root = ET.fromstring(get(url))
    out = []
    for stream in root.iter("StreamIndex"):
        starts, t = [], 0
        for c in stream.iter("c"):
            t = int(c.get("t", t))
            starts.append(t)
            t += int(c.get("d", "0"))
        for q in stream.iter("QualityLevel"):
            tmpl = stream.get("Url", "").replace("{bitrate}", q.get("Bitrate", ""))
            out += [f"{base}/{asset}.ism/" + tmpl.replace("{start time}", str(t)) for t in starts]
    return out


def wrk(
    urls: list[str], seconds: int, connections: int, headers: dict[str, str] | None = None
) -> dict[str, float]:
    """Run wrk on CPU 1 over ``urls`` round-robin; return req/s, MB/s and latency p99 (ms)."""
    paths = [re.sub(r"^http://[^/]+", "", u) for u in urls]
    lua = CACHE / "paths.lua"
    quoted = ",\n".join('  "' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in paths)
    set_headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (headers or {}).items())
    lua.write_text(
        set_headers + "local paths = {\n" + quoted + "\n}\nlocal i = 0\n"
        "request = function()\n  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\nend\n'
    )
    host = re.match(r"^(http://[^/]+)", urls[0])
    assert host is not None
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(lua), host[1]]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "1", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    tr = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    assert tr is not None
    scale = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[tr[2]]
    p99 = re.search(r"99%\s+([\d.]+)(\w+)", out)
    assert p99 is not None
    p99_ms = float(p99[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99[2]]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors[1]} error responses:\n{out}")
    return {"rps": rps, "mbs": float(tr[1]) * scale / 1e6, "p99": p99_ms}


def measure(
    name: str, urls: list[str], args: argparse.Namespace, headers: dict[str, str] | None = None
) -> tuple[str, dict[str, float], float]:
    """Fetch every URL once (warms the clear-segment LRU), then drive them with wrk."""
    size = sum(len(get(u, headers)) for u in urls) / len(urls)
    return name, wrk(urls, args.seconds, args.connections, headers), size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--live-only", action="store_true", help="only the live rows")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 1
    ceiling = 0.0 if args.live_only else openssl_ceiling()
    cfg = write_config(None if args.live_only else make_big_asset())
    port = free_port()
    env = dict(os.environ, ORIGIN_LOG_LEVEL="WARNING")
    cmd = [sys.executable, "-m", "origin", "serve", "--config", str(cfg), "--port", str(port)]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                get(base + "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        rows: list[tuple[str, dict[str, float], float]] = []
        for asset in () if args.live_only else ("sample", "big"):
            for fmt, label in (("m3u8-aapl", "HLS TS"), ("m3u8-cmaf", "HLS fMP4")):
                playlists, segments = urls_of(base, asset, fmt)
                rows.append(measure(f"{asset}: encrypted {label} segments", segments, args))
            rows.append(measure(f"{asset}: clear DASH segments", dash_urls(base, asset), args))
            rows.append(measure(f"{asset}: clear Smooth fragments", smooth_urls(base, asset), args))
            rows.append(measure(f"{asset}: HLS media playlists", playlists, args))
        if not args.live_only:
            rows.append(measure("keys (open policy)", [f"{base}/key?kid={KID}"], args))
            bearer = {"Authorization": f"Bearer {jwt_token()}"}
            key_url = f"{base}/key?kid={JWT_KID}"
            rows.append(measure("keys (JWT HS256 policy)", [key_url], args, bearer))
        live = bench_live.run(
            base,
            server.pid,
            CACHE,
            get=get,
            wrk=lambda urls: wrk(urls, args.seconds, args.connections),
            wrk_seconds=args.seconds,
        )
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=10)
    print()
    if not args.live_only:
        print(f"AES-128-CBC ceiling, one core (openssl speed, 16 KiB): {ceiling:,.0f} MB/s")
    print(f"one origin worker on CPU 0, wrk -c{args.connections} on CPU 1, ", end="")
    print(f"{args.seconds}s each, warm caches")
    print(f"{'what':42} {'avg size':>10} {'req/s':>9} {'MB/s':>8} {'% ceiling':>9} {'p99 ms':>7}")

    def line(row: tuple[str, dict[str, float], float]) -> str:
        name, r, size = row
        pct = f"{100 * r['mbs'] / ceiling:.0f}%" if "encrypted" in name else ""
        avg = f"{size / 1000:,.0f} kB" if size > 16 else ""
        return f"{name:42} {avg:>10} {r['rps']:9,.0f} {r['mbs']:8,.1f} {pct:>9} {r['p99']:7.1f}"

    for row in rows:
        print(line(row))
    bench_live.report(live, line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
