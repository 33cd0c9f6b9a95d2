"""The real server's connection limits: request-head and keep-alive timeouts, the open-files
limit, and a SIGTERM drain that ends. Small timeouts in each test's config keep them short."""

from __future__ import annotations

import contextlib
import resource
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import m3u8

from tests.support.server import Server, fetch, run_server, sample_config

MASTER = "/bbb.ism/manifest(format=m3u8-aapl)"


def _address(server: Server) -> tuple[str, int]:
    u = urlsplit(server.base)
    return u.hostname or "127.0.0.1", u.port or 80


def _closed_after(sock: socket.socket, opened: float, wait: float) -> float | None:
    """Seconds from ``opened`` until the server closed ``sock``; None if still open at ``wait``."""
    sock.settimeout(max(opened + wait - time.monotonic(), 0.01))
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - opened


def _get(sock: socket.socket, path: str) -> int:
    """One keep-alive GET on a raw socket; the status, with the body read off the wire."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        assert chunk, "closed by the server"
        head += chunk
    head, _, body = head.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ", 2)[1])


@contextmanager
def _sockets(n: int, address: tuple[str, int]) -> Iterator[list[socket.socket]]:
    socks = [socket.create_connection(address) for _ in range(n)]
    try:
        yield socks
    finally:
        for s in socks:
            s.close()


def test_unfinished_request_heads_are_closed_after_header_timeout(tmp_path: Path) -> None:
    cfg = sample_config(tmp_path, "header_timeout = 1\nkeepalive_timeout = 30")
    with run_server("--config", str(cfg)) as server:
        address = _address(server)
        opened = time.monotonic()
        with _sockets(30, address) as socks:
            for s in socks[:20]:
                s.sendall(b"GET /bbb.ism/manif")  # half a request line, then nothing
            # socks[20:]: connected, silent
            trickler = socket.create_connection(address)
            # A client that keeps working on one connection is not cut by the head deadline.
            with socket.create_connection(address) as busy:
                for i in range(4):
                    assert _get(busy, MASTER) == 200
                    with contextlib.suppress(OSError):  # closed under it at 1 s
                        trickler.sendall(b"GET /bbb.ism/manifest"[i : i + 1])
                    time.sleep(0.4)  # 1.6 s in all, past the 1 s deadline
                after = [_closed_after(s, opened, 6) for s in socks]
                assert _get(busy, MASTER) == 200
            assert _closed_after(trickler, opened, 6) is not None
            trickler.close()
        assert fetch(server.base + MASTER).status == 200
    assert all(t is not None and 0.9 <= t < 3.5 for t in after), after


def test_idle_keepalive_connection_is_closed_after_keepalive_timeout(tmp_path: Path) -> None:
    cfg = sample_config(tmp_path, "header_timeout = 10\nkeepalive_timeout = 1")
    with (
        run_server("--config", str(cfg)) as server,
        socket.create_connection(_address(server)) as s,
    ):
        assert _get(s, MASTER) == 200
        done = time.monotonic()
        idle = _closed_after(s, done, 6)
    assert idle is not None and 0.9 <= idle < 3.5, idle


def _first_segment(server: Server) -> str:
    master = m3u8.loads(fetch(server.base + MASTER).body.decode())
    biggest = max(master.playlists, key=lambda p: p.stream_info.bandwidth)  # the 480p video
    playlist_url = urljoin(server.base + MASTER, biggest.uri)
    playlist = m3u8.loads(fetch(playlist_url).body.decode())
    return urlsplit(urljoin(playlist_url, playlist.segments[0].uri)).path


def _slow_reader(server: Server) -> socket.socket:
    """A connection to ``server`` whose receive buffer holds 4 KiB: a reader that lags."""
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(_address(server))
    return slow


def test_sigterm_drain_ends_after_drain_timeout_with_a_client_that_does_not_read(
    tmp_path: Path,
) -> None:
    cfg = sample_config(tmp_path, "drain_timeout = 1")
    with run_server("--config", str(cfg)) as server:
        segment = _first_segment(server)
        slow = _slow_reader(server)
        try:
            # 40 pipelined 300 KB segments, never read: far more than the socket buffers hold.
            slow.sendall(f"GET {segment} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 40)
            time.sleep(1.0)
            start = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            server.proc.wait(timeout=30)
            took = time.monotonic() - start
        finally:
            slow.close()
        time.sleep(0.2)  # the output reader thread catches up
        log = "".join(server.output)
    assert took < 1 + 3, f"exit took {took:.1f}s"
    assert "drain timeout: closed 1 connection(s) still open after 1s" in log, log


def _low_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (100, 128))


def test_nofile_raised_to_hard_limit_and_a_warning_near_it(tmp_path: Path) -> None:
    cfg = sample_config(tmp_path, "")
    env = {"ORIGIN_LOG_LEVEL": "INFO"}
    with run_server("--config", str(cfg), env=env, preexec_fn=_low_nofile) as server:
        with _sockets(105, _address(server)):
            time.sleep(0.5)
            assert fetch(server.base + MASTER).status == 200
        time.sleep(0.2)
        log = "".join(server.output)
    assert "open-files limit 128 (raised from 100)" in log, log
    assert "near the open-files limit (128)" in log, log
    assert log.count("near the open-files limit") == 1, log  # rate-limited


def test_sigterm_turns_readyz_unready_serves_through_drain_delay_and_exits_0(
    tmp_path: Path,
) -> None:
    cfg = sample_config(tmp_path, "drain_delay = 1.5")
    with run_server("--config", str(cfg)) as server:
        ready = fetch(server.base + "/readyz")
        assert ready.status == 200 and b'"ready": true' in ready.body
        segment = _first_segment(server)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # New connections still come in and are served; only readiness has changed.
        unready = fetch(server.base + "/readyz")
        assert unready.status == 503 and b'"ready": false' in unready.body
        assert fetch(server.base + "/healthz").status == 200
        assert fetch(server.base + segment).status == 200
        assert server.proc.poll() is None  # still there within the delay
        assert server.proc.wait(timeout=10) == 0


def test_sigterm_during_a_large_segment_download_lets_it_finish_byte_exact(
    tmp_path: Path,
) -> None:
    cfg = sample_config(tmp_path, "drain_timeout = 20")
    with run_server("--config", str(cfg)) as server:
        segment = _first_segment(server)
        whole = fetch(server.base + segment).body
        assert len(whole) > 100_000
        slow = _slow_reader(server)
        try:
            slow.sendall(f"GET {segment} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            got = slow.recv(8192)
            server.proc.send_signal(signal.SIGTERM)  # the response is under way, far from done
            while chunk := slow.recv(4096):
                got += chunk
                time.sleep(0.002)  # a slow reader: ~2 MB/s
        finally:
            slow.close()
        assert server.proc.wait(timeout=30) == 0
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == whole
