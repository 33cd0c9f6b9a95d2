"""The reference of scripts/bench.py: Debian's nginx serving, as static files, the exact bytes the
origin answered, with the origin's content types.

One worker process pinned to the origin's core (two on both cores for the two-worker rows),
Debian's stock settings where they matter (``sendfile on``, ``tcp_nopush on``, no
open_file_cache), access log off as the origin's, and ``keepalive_requests`` raised so that it
keeps wrk's connections open as the origin does. Its own prefix, config, pid file and error log
in a temporary folder, removed when it stops.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bench_http import SERVER_CPU, free_port, pinned

# Every media type the origin answers with (origin/service/http.py), as a file extension.
EXTENSIONS = {
    "application/vnd.apple.mpegurl": "m3u8",
    "application/dash+xml": "mpd",
    "application/vnd.ms-sstr+xml": "ismc",
    "application/octet-stream": "bin",
    "video/mp2t": "ts",
    "video/mp4": "mp4",
    "audio/mp4": "m4a",
}

CONF = """\
daemon off;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    types {{
{types}
    }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000000;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/www;
    }}
}}
"""


def available() -> bool:
    return shutil.which("nginx") is not None


class Nginx:
    """A private nginx; ``serve`` puts bodies under its root and gives their URLs."""

    def __init__(self, workers: int = 1, cpus: str | None = SERVER_CPU) -> None:
        self.prefix = Path(tempfile.mkdtemp(prefix="origin-bench-nginx-"))
        # Readable by the worker's unprivileged user when the bench runs as root.
        self.prefix.chmod(0o755)
        (self.prefix / "www").mkdir(mode=0o755)
        (self.prefix / "tmp").mkdir()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        types = "\n".join(f"        {t} {ext};" for t, ext in EXTENSIONS.items())
        conf = self.prefix / "nginx.conf"
        conf.write_text(
            CONF.format(prefix=self.prefix, port=self.port, types=types, workers=workers)
        )
        cmd = ["nginx", "-p", str(self.prefix), "-c", str(conf), "-e", str(self.prefix / "e.log")]
        self.proc = subprocess.Popen(pinned(cmd, cpus), stderr=subprocess.DEVNULL)
        self.count = 0
        self._wait()

    def _wait(self) -> None:
        for _ in range(500):
            if self.proc.poll() is not None:
                log = (self.prefix / "error.log").read_text(errors="replace")
                raise SystemExit(f"nginx exited with {self.proc.returncode}:\n{log}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.01)
        raise SystemExit("nginx did not listen")

    def serve(self, bodies: list[tuple[bytes, str]]) -> list[str]:
        """URLs of files holding ``bodies`` (bytes, media type), in their order."""
        self.count += 1
        folder = self.prefix / "www" / str(self.count)
        folder.mkdir(mode=0o755)
        urls = []
        for i, (body, media_type) in enumerate(bodies):
            ext = EXTENSIONS.get(media_type)
            if ext is None:
                raise SystemExit(f"no nginx type for the origin's {media_type!r}")
            path = folder / f"{i}.{ext}"
            path.write_bytes(body)
            os.chmod(path, 0o644)
            urls.append(f"{self.base}/{self.count}/{i}.{ext}")
        return urls

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)
