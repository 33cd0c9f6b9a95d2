"""What every part of scripts/bench.py uses: fetching, wrk, the origin's process, percentiles."""

from __future__ import annotations

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

import m3u8

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(tempfile.gettempdir()) / "origin-bench"
SERVER_CPU = "0"  # the origin and nginx, one worker each
CLIENT_CPU = "1"  # wrk and the bench's own clients
TWO_CORES = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[bytes, str]:
    """The body and the media type (no parameters) of a 200 answer."""
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as r:
        data: bytes = r.read()
        return data, r.headers.get_content_type()


def get(url: str, headers: dict[str, str] | None = None) -> bytes:
    return fetch(url, headers)[0]


def pinned(cmd: list[str], cpus: str | None) -> list[str]:
    """``cmd`` under ``taskset -c cpus`` when the machine has the cores for it."""
    return ["taskset", "-c", cpus, *cmd] if cpus is not None and TWO_CORES else cmd


def percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else float("nan")


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    urls: list[str],
    seconds: int,
    connections: int,
    headers: dict[str, str] | None = None,
    *,
    threads: int = 1,
    cpus: str | None = CLIENT_CPU,
    script: str = "paths.lua",
) -> dict[str, float]:
    """Run wrk over ``urls`` round-robin; req/s, MB/s and latency p50 / p99 (ms)."""
    paths = [re.sub(r"^http://[^/]+", "", u) for u in urls]
    lua = CACHE / script
    quoted = ",\n".join('  "' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in paths)
    set_headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (headers or {}).items())
    lua.write_text(
        set_headers + "local paths = {\n" + quoted + "\n}\nlocal i = 0\n"
        "request = function()\n  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\nend\n'
    )
    host = re.match(r"^(http://[^/]+)", urls[0])
    assert host is not None
    cmd = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(lua),
        host[1],
    ]  # fmt: skip
    out = subprocess.run(pinned(cmd, cpus), capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors[1]} error responses:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    tr = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(\w+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(\w+)", out)
    if rps is None or tr is None or p50 is None or p99 is None:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    scale = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[tr[2]]
    return {
        "rps": float(rps[1]),
        "mbs": float(tr[1]) * scale / 1e6,
        "p50": _ms(p50[1], p50[2]),
        "p99": _ms(p99[1], p99[2]),
    }


class Origin:
    """``origin serve`` in a child process: started, waited for, measured, stopped."""

    def __init__(
        self,
        config: Path,
        *,
        port: int | None = None,
        cpus: str | None = SERVER_CPU,
        workers: int = 1,
    ) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # This checkout's code, not whatever an installed package points at.
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = dict(os.environ, ORIGIN_LOG_LEVEL="WARNING", PYTHONPATH=path)
        cmd = [sys.executable, "-m", "origin", "serve", "--config", str(config)]
        cmd += ["--port", str(self.port)]
        if workers != 1:
            cmd += ["--workers", str(workers)]
        self.started = time.perf_counter()
        # stdout to a file, not a pipe nobody reads: a full pipe would stall the server.
        self.log = (CACHE / f"origin-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(
            pinned(cmd, cpus), stdout=self.log, stderr=subprocess.STDOUT, env=env
        )

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds from the process's start to the first answer of /healthz."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"origin exited with {self.proc.returncode}: {self.log.name}")
            try:
                get(self.base + "/healthz")
                return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.01)
        raise SystemExit(f"origin did not answer /healthz in {timeout:.0f} s")

    def status(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak) of the server process, in kB."""
        out = {}
        for ln in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = ln.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
        return out

    def stop(self) -> None:
        """Stop it; its log is kept only if it had exited on its own."""
        self.log.close()
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        Path(self.log.name).unlink(missing_ok=True)


# ---- the URLs of an asset, found as a player finds them ----


def urls_of(base: str, asset: str, fmt: str, ext: str = ".ism") -> tuple[list[str], list[str]]:
    """(media playlist URLs, segment URLs) of every rendition, init segments excluded."""
    master_url = f"{base}/{asset}{ext}/manifest(format={fmt})"
    master = m3u8.loads(get(master_url).decode(), uri=master_url)
    playlists = sorted({urljoin(master_url, p.uri) for p in master.playlists})
    segments: list[str] = []
    for url in playlists:
        pl = m3u8.loads(get(url).decode(), uri=url)
        segments += [urljoin(url, s.uri) for s in pl.segments]
    return playlists, segments


def dash_urls(base: str, asset: str, options: str = "") -> list[str]:
    """Every media segment of every Representation, expanded from the SegmentTimelines;
    ``options``: more manifest options (``,encryption=cenc``)."""
    url = f"{base}/{asset}.ism/manifest(format=mpd-time-cmaf{options})"
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
