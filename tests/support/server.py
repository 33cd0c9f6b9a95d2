"""Run the real ``origin serve`` in a subprocess on a free port, for end-to-end tests."""

from __future__ import annotations

import functools
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLE_KEY = bytes.fromhex("3c9f2bd4a1e0475e8a7f6b2c1d0e9f8a")
SAMPLE_KID = "da3813af-55e6-48e7-aa9f-a4d6031f7b4d"


SAMPLE_DIR = ROOT / "origin" / "sample"


def sample_config(tmp_path: Path, server: str = "", asset: str = "", more: str = "") -> Path:
    """Write a config serving the sample ladder as asset ``bbb`` (AES-128) to ``tmp_path``;
    ``server`` and ``asset`` are extra lines for those tables, ``more`` further tables."""
    files = ", ".join(f'"{SAMPLE_DIR / f"sample_{n}.mp4"}"' for n in ("240p", "360p", "480p"))
    cfg = tmp_path / "origin.toml"
    cfg.write_text(
        f"""
[server]
{server}
[[assets]]
name = "bbb"
files = [{files}]
segment_duration = 4.0
protection = "aes-128"
key_id = "{SAMPLE_KID}"
key = "{SAMPLE_KEY.hex()}"
{asset}
{more}
"""
    )
    return cfg


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, and SIGKILL if it has not exited 10 s later."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Server:
    base: str  # http://127.0.0.1:PORT
    proc: subprocess.Popen[str]
    output: list[str]

    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Reply:
        return fetch(self.base + path, method=method, headers=headers, body=body)


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> Reply:
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=30)
    try:
        target = u.path + (f"?{u.query}" if u.query else "")
        conn.request(method, target, body=body, headers=dict(headers or {}))
        r = conn.getresponse()
        return Reply(r.status, r.headers, r.read())
    finally:
        conn.close()


@functools.cache
def _test_home() -> str:
    return tempfile.mkdtemp(prefix="origin-test-home-")


@contextmanager
def run_server(
    *args: str,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    preexec_fn: Callable[[], object] | None = None,
) -> Iterator[Server]:
    """Start ``origin serve ARGS --port 0`` and yield once it prints its address.

    ``env`` overrides the server's environment, e.g. ``{"ORIGIN_LOG_LEVEL": "INFO"}`` to see the
    access log in ``Server.output`` (the default, WARNING, hides it). ``preexec_fn`` runs in the
    child before ``origin`` starts (e.g. to lower its resource limits).
    """
    environ = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "ORIGIN_LOG_LEVEL": "WARNING",
        # The built-in config's ingest channel keeps a generated secret in ~/.local/state: not
        # in the home of whoever runs the tests.
        "HOME": _test_home(),
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "origin", "serve", "--host", "127.0.0.1", *args]
    if "--port" not in args:
        cmd += ["--port", "0"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environ,
        cwd=ROOT,
        preexec_fn=preexec_fn,  # noqa: PLW1509 - callers only call setrlimit: no locks
    )
    output: list[str] = []
    deadline = time.monotonic() + timeout
    base = None
    assert proc.stdout is not None
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if m := re.search(r"origin serving on (http://[\d.]+:\d+)/", line):
                base = m.group(1)
                break
        if base is None:
            raise RuntimeError("server did not start:\n" + "".join(output))
        # Keep draining its output so it never blocks on a full pipe.
        import threading  # noqa: PLC0415

        threading.Thread(
            target=lambda: output.extend(iter(proc.stdout.readline, "")),  # type: ignore[union-attr]
            daemon=True,
        ).start()
        yield Server(base, proc, output)
    finally:
        stop(proc)
        proc.stdout.close()
