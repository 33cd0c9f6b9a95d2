"""Send many unique long URLs to a fresh `origin serve` and report its memory (RSS) growth.

    python3 scripts/url_flood.py [--requests 50000] [--length 4000] [--config CONFIG]

Three kinds of path, in turn, each unique: a 404 (not an asset URL), a valid master playlist
under a new locator padded to ``--length`` with spaces inside its options (each one a distinct
cacheable manifest), and a malformed ``.ism`` URL (400). Every cache they touch must stay bounded
by bytes, so RSS growth levels off at a few tens of MB however many requests are sent. Linux only
(reads /proc/PID/status).
"""

from __future__ import annotations

import argparse
import http.client
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(m.group(1)) / 1024 if m else 0.0


def paths(n: int, length: int) -> list[str]:
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            head = f"/not-an-asset/{i}/"
            out.append(head + "a" * max(length - len(head), 0))
        elif kind == 1:
            head = f"/{uuid.uuid4()}/sample.ism/manifest(format=m3u8-aapl"
            pad = max((length - len(head) - 1) // 3, 0)
            out.append(head + "%20" * pad + ")")
        else:
            head = f"/bad{i}.ism/"
            out.append(head + "b" * max(length - len(head), 0))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--length", type=int, default=4000, help="bytes per path")
    parser.add_argument("--config", help="config to serve (default: the built-in sample)")
    args = parser.parse_args()
    cmd = [sys.executable, "-m", "origin", "serve", "--port", "0", "--no-access-log"]
    if args.config:
        cmd += ["--config", args.config]
    env = {"ORIGIN_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    assert proc.stdout is not None
    port = None
    for line in proc.stdout:
        if m := re.search(r"origin serving on http://[\d.]+:(\d+)/", line):
            port = int(m.group(1))
            break
    if port is None:
        print("server did not start", file=sys.stderr)
        return 1
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/sample.ism/manifest(format=m3u8-aapl)")
        conn.getresponse().read()
        before = rss_mb(proc.pid)
        statuses: dict[int, int] = {}
        start = time.monotonic()
        for i, path in enumerate(paths(args.requests, args.length)):
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.will_close:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            if (i + 1) % 10_000 == 0:
                print(f"  {i + 1} requests: RSS {rss_mb(proc.pid):.1f} MB", flush=True)
        elapsed = time.monotonic() - start
        after = rss_mb(proc.pid)
        print(
            f"{args.requests} unique paths of {args.length} bytes in {elapsed:.0f}s, "
            f"statuses {dict(sorted(statuses.items()))}"
        )
        print(f"RSS before {before:.1f} MB, after {after:.1f} MB, growth {after - before:.1f} MB")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
