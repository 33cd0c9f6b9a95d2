"""The catalog with real servers: managed from the command line, played by ffmpeg through a
locator; two nodes on one PostgreSQL (Debian's, started here) seeing each other's changes
within their poll interval; the database gone at run time (unready, still serving) and back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.media import FFMPEG, decode_errors
from tests.support.postgres import Postgres, postgres
from tests.support.server import ROOT, SAMPLE_DIR, Server, run_server

FILES = [str(SAMPLE_DIR / f"sample_{n}.mp4") for n in ("240p", "360p")]
POLL = 0.5


def _config(where: Path, url: str) -> Path:
    cfg = where / "origin.toml"
    cfg.write_text(
        f'[server]\nstate_dir = "{where / "state"}"\n'
        f'[catalog]\ndatabase_url = "{url}"\npoll_interval = {POLL}\n'
    )
    return cfg


def cli(cfg: Path, base: str, *args: str) -> Any:
    run = subprocess.run(
        [sys.executable, "-m", "origin", *args, "--config", str(cfg), "--url", base],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout) if run.stdout.strip() else None


def _until(check: Callable[[], bool], timeout: float = 15.0) -> float:
    """Seconds until ``check()`` held (fails after ``timeout``)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.02)
    return time.monotonic() - start


def _publish(cfg: Path, s: Server) -> tuple[dict[str, Any], dict[str, Any]]:
    key = cli(cfg, s.base, "key", "create")
    cli(
        cfg,
        s.base,
        "asset",
        "add",
        "movie",
        *FILES,
        "--key-id",
        key["key_id"],
        "--segment-duration",
        "4",
    )
    loc = cli(cfg, s.base, "locator", "create", "movie")
    return key, loc


def test_an_asset_added_from_the_command_line_plays_in_ffmpeg_through_its_locator(
    tmp_path: Path,
) -> None:
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'catalog.db'}")
    with run_server("--config", str(cfg)) as s:
        key, loc = _publish(cfg, s)
        listed = cli(cfg, s.base, "key", "list")["keys"]
        assert [set(k) for k in listed] == [{"key_id", "master_key", "created_at"}]
        master = loc["urls"]["hls"]
        assert master.startswith(f"{s.base}/{loc['id']}/movie.ism/")
        assert decode_errors(master, "-allowed_extensions", "ALL") == ""
        out = subprocess.run(
            [FFMPEG, "-nostdin", "-v", "error", "-i", master, "-map", "0:v:0", "-f", "null", "-",
             "-progress", "pipe:1"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        frames = [ln for ln in out.stdout.splitlines() if ln.startswith("frame=")]
        assert frames and int(frames[-1].split("=")[1]) >= 200, out.stdout[-500:]
        assert s.request("/movie.ism/manifest(format=m3u8-aapl)").status == 404
        cli(cfg, s.base, "locator", "rm", loc["id"])
        assert s.request(f"/{loc['id']}/movie.ism/manifest(format=m3u8-aapl)").status == 404
        assert s.request(f"/{loc['id']}/key?kid={key['key_id']}").status == 404
    with run_server("--config", str(cfg)) as again:  # a restart keeps the catalog
        assets = cli(cfg, again.base, "asset", "list")["assets"]
        assert [a["name"] for a in assets] == ["movie"] and assets[0]["state"] == "loaded"


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres() as server:
        yield server


def test_two_nodes_on_one_postgresql_see_each_others_changes_within_the_poll_interval(
    tmp_path: Path, pg: Postgres
) -> None:
    cfg = _config(tmp_path, pg.database("two_nodes"))
    with run_server("--config", str(cfg)) as a, run_server("--config", str(cfg)) as b:
        _, loc = _publish(cfg, a)
        path = f"/{loc['id']}/movie.ism/manifest(format=m3u8-aapl)"
        assert a.request(path).status == 200  # at once on the node that made it
        seen = _until(lambda: b.request(path).status == 200)
        cli(cfg, b.base, "locator", "rm", loc["id"])
        assert b.request(path).status == 404
        gone = _until(lambda: a.request(path).status == 404)
        print(f"\nchange seen by the other node after {seen:.2f}s, deletion after {gone:.2f}s")
        assert seen < POLL + 2 and gone < POLL + 2


def test_the_database_gone_leaves_nodes_serving_unready_and_they_recover(
    tmp_path: Path, pg: Postgres
) -> None:
    cfg = _config(tmp_path, pg.database("gone"))
    with run_server("--config", str(cfg)) as s:
        _, loc = _publish(cfg, s)
        path = f"/{loc['id']}/movie.ism/manifest(format=m3u8-aapl)"
        assert s.request("/readyz").status == 200
        pg.stop()
        try:
            _until(lambda: s.request("/readyz").status == 503)
            assert b"catalog database cannot be read" in s.request("/readyz").body
            assert s.request(path).status == 200  # still serving what it had
        finally:
            pg.start()
        _until(lambda: s.request("/readyz").status == 200)
        cli(cfg, s.base, "locator", "rm", loc["id"])
        assert s.request(path).status == 404


def test_two_workers_follow_the_catalog_and_a_replaced_worker_reads_it_too(
    tmp_path: Path,
) -> None:
    import os  # noqa: PLC0415
    import re  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'catalog.db'}")
    with run_server("--config", str(cfg), "--workers", "2", "--port", str(port)) as s:
        _, loc = _publish(cfg, s)
        path = f"/{loc['id']}/movie.ism/manifest(format=m3u8-aapl)"
        # New connections spread over both workers: every one answers within the poll interval.
        _until(lambda: all(s.request(path).status == 200 for _ in range(20)))
        _until(lambda: any("worker processes (pids" in ln for ln in s.output))
        line = next(ln for ln in s.output if "worker processes (pids" in ln)
        pids = [int(p) for p in re.findall(r"\d+", line.split("pids", 1)[1])]
        os.kill(pids[0], signal.SIGKILL)
        _until(lambda: any("started in its place" in ln for ln in s.output))
        time.sleep(1.0)  # the new worker listens
        assert all(s.request(path).status == 200 for _ in range(20))


def test_a_channel_put_from_the_command_line_takes_ingest(tmp_path: Path) -> None:
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'catalog.db'}")
    table = tmp_path / "news.toml"
    table.write_text(
        'window = 12\nsegment_duration = 4\ningest_user = "enc"\n'
        'ingest_secret = "cli-ingest-secret-0123456789"\n'
    )
    with run_server("--config", str(cfg)) as s:
        made = cli(cfg, s.base, "channel", "put", "news", str(table))
        assert made["name"] == "news" and "0123456789" not in json.dumps(made)
        assert [c["name"] for c in cli(cfg, s.base, "channel", "list")["channels"]] == ["news"]
        # Known now: a channel with no encoder yet (404 "no stream yet"), not an unknown one.
        r = s.request("/news.isml/manifest(format=m3u8-aapl)")
        assert b"no stream yet" in r.body, r.body
        cli(cfg, s.base, "channel", "rm", "news")
        assert b"no channel" in s.request("/news.isml/manifest(format=m3u8-aapl)").body
