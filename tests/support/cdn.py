"""Debian's nginx with the shipped ``config/cdn/nginx.conf``, in front of a test origin: the
config's upstream, port and paths pointed at the test's own, nothing else changed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.server import ROOT, stop

SHIPPED = ROOT / "config" / "cdn" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # sbin: not on every user's PATH


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def cdn(origin_port: int) -> Iterator[str]:
    """A running nginx cache in front of ``127.0.0.1:origin_port``; yields its base URL."""
    if not Path(NGINX).exists():
        raise RuntimeError("nginx is needed: apt-get install nginx (the test command does)")
    # Not under pytest's tmp_path: nginx's workers run as an unprivileged user when started as
    # root, and must reach the cache folder.
    prefix = Path(tempfile.mkdtemp(prefix="origin-cdn-"))
    prefix.chmod(0o777)
    (prefix / "cache").mkdir(mode=0o777)
    port = free_port()
    conf = SHIPPED.read_text()
    for old, new in (
        ("worker_processes auto;", "worker_processes 1;"),
        ("pid /run/nginx-origin-cdn.pid;", f"pid {prefix}/nginx.pid;"),
        ("/var/log/nginx/origin-cdn.error.log", f"{prefix}/error.log"),
        ("/var/cache/nginx/origin", f"{prefix}/cache"),
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{origin_port};"),
        ("listen 8090;", f"listen 127.0.0.1:{port};"),
    ):
        if old not in conf:
            raise AssertionError(f"config/cdn/nginx.conf no longer has {old!r}")
        conf = conf.replace(old, new)
    conf = conf.replace("http {", f"http {{\n    proxy_temp_path {prefix}/tmp;", 1)
    path = prefix / "nginx.conf"
    path.write_text(conf)
    cmd = [NGINX, "-p", str(prefix), "-c", str(path), "-e", str(prefix / "error.log")]
    proc = subprocess.Popen([*cmd, "-g", "daemon off;"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {proc.stderr.read() if proc.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(prefix, ignore_errors=True)
