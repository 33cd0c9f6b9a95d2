"""Config reloads: the real server and real SIGHUPs, and the reloader in process.

Segments are checked against the source files themselves: the first video sample of a Smooth
fragment (a keyframe, several kB) must occur in the asset's own source and in no other, so a
descriptor closed and reused under an asset (another file's bytes at 200) cannot pass.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from origin.service import reload as reload_module
from origin.service.config import load_config
from origin.service.reload import Reloader
from origin.service.state import State, build_state
from tests.support.server import ROOT, Server, run_server
from tests.support.smooth_client import read_chunks, read_levels

SAMPLE_DIR = ROOT / "origin" / "sample"
SOURCES = {n: SAMPLE_DIR / f"sample_{n}.mp4" for n in ("240p", "360p", "480p")}
SOURCE_BYTES = {n: p.read_bytes() for n, p in SOURCES.items()}
INFO = {"ORIGIN_LOG_LEVEL": "INFO"}


def _asset(name: str, path: Path, seg: float = 4.0) -> str:
    return f'[[assets]]\nname = "{name}"\nfiles = ["{path}"]\nsegment_duration = {seg}\n'


def _write(cfg: Path, text: str) -> None:
    """Replace the config atomically: a reload never reads half a file."""
    tmp = cfg.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, cfg)


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[str, int, int]]:
    """(type, payload start, box end) of the boxes in data[start:end]."""
    end = len(data) if end is None else end
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        assert size >= 8
        yield kind.decode("latin-1"), start + 8, start + size
        start += size


def first_sample(fragment: bytes) -> bytes:
    """The first sample's bytes in a moof+mdat fragment (trun sizes, mdat payload)."""
    top = {k: (a, b) for k, a, b in _boxes(fragment)}
    moof_start, moof_end = top["moof"]
    traf = next((a, b) for k, a, b in _boxes(fragment, moof_start, moof_end) if k == "traf")
    trun = next(a for k, a, _ in _boxes(fragment, *traf) if k == "trun")
    flags = int.from_bytes(fragment[trun + 1 : trun + 4], "big")
    pos = trun + 8 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
    pos += 4 if flags & 0x100 else 0
    assert flags & 0x200, "trun carries sample sizes"
    size = int.from_bytes(fragment[pos : pos + 4], "big")
    mdat = top["mdat"][0]
    return fragment[mdat : mdat + size]


def video_sources_of(s: Server, name: str) -> set[str]:
    """Which sample files the first video sample of ``name``'s fragments comes from."""
    manifest = s.request(f"/{name}.ism/manifest")
    assert manifest.status == 200, (name, manifest.status, manifest.body)
    text = manifest.body.decode()
    level = next(lv for lv in read_levels(text) if lv.stream_type == "video")
    found: set[str] = set()
    for t, _ in read_chunks(text, "video"):
        r = s.request(f"/{name}.ism/" + level.fragment_url(t))
        assert r.status == 200, (name, t, r.status, r.body)
        sample = first_sample(r.body)
        assert len(sample) > 1000  # a keyframe: long enough to be unique to one file
        found |= {n for n, data in SOURCE_BYTES.items() if sample in data}
    return found


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def health(s: Server) -> dict[str, list[str]]:
    import json  # noqa: PLC0415

    r = s.request("/healthz")
    assert r.status == 200
    data = json.loads(r.body)
    return {"assets": data["assets"], "refused": data["refused"]}  # not the cache figures


# --- real server, real signals -------------------------------------------------------------------

BULK = 600  # new assets in the slow config: about 2 s of loading, several times the SIGHUP gap


def test_two_sighups_during_a_slow_reload_end_on_the_newest_config_with_every_asset_its_own_bytes(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "origin.toml"
    base = _asset("a", SOURCES["240p"]) + _asset("b", SOURCES["360p"])
    _write(cfg, base + _asset("c", SOURCES["480p"]))
    with run_server("--config", str(cfg), env=INFO) as s:
        for name, source in (("a", "240p"), ("b", "360p"), ("c", "480p")):
            assert video_sources_of(s, name) == {source}
        c_chunks = len(read_chunks(s.request("/c.ism/manifest").body.decode(), "video"))
        # The slow config: a thousand-title origin's worth of new assets (realistic loading,
        # no test hook), and c removed.
        bulk = "".join(_asset(f"bulk{i}", SOURCES["240p"]) for i in range(BULK))
        _write(cfg, base + bulk)
        s.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        # The newest config, written while the slow one loads: c is back with 2 s segments.
        _write(cfg, base + _asset("c", SOURCES["480p"], 2.0) + _asset("newest", SOURCES["360p"]))
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "".join(s.output).count("config reloaded") >= 2), "".join(s.output)
        out = "".join(s.output)
        assert health(s) == {"assets": ["a", "b", "c", "newest"], "refused": []}, out
        assert "reload requested during a reload" in out  # the second SIGHUP hit the first load
        assert s.request("/bulk0.ism/manifest").status == 404
        c_manifest = s.request("/c.ism/manifest").body.decode()
        assert len(read_chunks(c_manifest, "video")) > c_chunks  # c's config is the newest one
        for name, source in (("a", "240p"), ("b", "360p"), ("c", "480p"), ("newest", "360p")):
            assert video_sources_of(s, name) == {source}, name
        assert "Traceback" not in out


def test_a_parser_exception_during_a_reload_is_refused_and_the_old_config_serves(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "origin.toml"
    _write(cfg, _asset("a", SOURCES["240p"]))
    with run_server("--config", str(cfg)) as s:
        assert video_sources_of(s, "a") == {"240p"}
        # tomllib recurses once per nesting level: this raised RecursionError out of the parser.
        deep = "x = " + "[" * 5000 + "]" * 5000 + "\n"
        _write(cfg, deep + _asset("b", SOURCES["360p"]))
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reload refused" in "".join(s.output)), "".join(s.output)
        out = "".join(s.output)
        assert "nested too deeply" in out
        assert "Task exception was never retrieved" not in out and "Traceback" not in out
        assert health(s) == {"assets": ["a"], "refused": []}
        assert video_sources_of(s, "a") == {"240p"}


def test_a_source_deleted_or_replaced_by_a_directory_keeps_serving_its_loaded_copy_on_reload(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    shutil.copyfile(SOURCES["240p"], a)
    shutil.copyfile(SOURCES["360p"], b)
    cfg = tmp_path / "origin.toml"
    base = _asset("a", a) + _asset("b", b)
    _write(cfg, base)
    with run_server("--config", str(cfg)) as s:
        assert video_sources_of(s, "a") == {"240p"}
        a.unlink()
        b.unlink()
        b.mkdir()
        _write(cfg, base + _asset("more", SOURCES["480p"]))
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: s.request("/more.ism/manifest").status == 200), "".join(s.output)
        out = "".join(s.output)
        assert health(s) == {"assets": ["a", "b", "more"], "refused": []}, out
        # Every segment of both, fetched after the reload (b's never before), from the old copy.
        assert video_sources_of(s, "a") == {"240p"}
        assert video_sources_of(s, "b") == {"360p"}
        warnings = [line for line in out.splitlines() if "WARNING" in line]
        assert any("'a'" in w and "no such file" in w for w in warnings), out
        assert any("'b'" in w and "directory" in w for w in warnings), out


def test_a_source_rewritten_in_place_answers_503_until_sighup_reloads_it(tmp_path: Path) -> None:
    a = tmp_path / "a.mp4"
    shutil.copyfile(SOURCES["240p"], a)
    cfg = tmp_path / "origin.toml"
    _write(cfg, "[server]\ncache_mb = 0\n" + _asset("a", a))  # every request reads the file
    with run_server("--config", str(cfg)) as s:
        manifest = s.request("/a.ism/manifest").body.decode()
        level = next(lv for lv in read_levels(manifest) if lv.stream_type == "video")
        url = "/a.ism/" + level.fragment_url(read_chunks(manifest, "video")[1][0])
        assert s.request(url).status == 200
        time.sleep(0.01)  # a distinct mtime even on coarse clocks
        with a.open("r+b") as f:  # same inode, other bytes (larger): its index no longer fits
            f.write(SOURCE_BYTES["360p"])
        r = s.request(url)
        assert r.status == 503, r.body
        assert b"changed on disk" in r.body and str(tmp_path).encode() not in r.body
        assert wait_for(lambda: "changed on disk" in "".join(s.output))
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: s.request("/a.ism/manifest").body.decode() != manifest)
        assert video_sources_of(s, "a") == {"360p"}
        with a.open("r+b") as f:  # shrunk in place: its last fragments are gone
            f.truncate(len(SOURCE_BYTES["360p"]) // 2)
        manifest = s.request("/a.ism/manifest").body.decode()
        level = next(lv for lv in read_levels(manifest) if lv.stream_type == "video")
        last = read_chunks(manifest, "video")[-1][0]
        r = s.request("/a.ism/" + level.fragment_url(last))
        assert r.status == 503 and b"changed on disk" in r.body, r.body


# --- the reloader in process ---------------------------------------------------------------------


class Holder:
    def __init__(self, state: State) -> None:
        self.current = state


def _start(cfg: Path, text: str) -> Holder:
    _write(cfg, text)
    return Holder(build_state(load_config(cfg)))


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


async def test_reloads_asked_for_during_a_reload_run_once_after_it_and_the_last_config_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "origin.toml"
    live = _start(cfg, _asset("a", SOURCES["240p"]))
    gate = threading.Event()
    built: list[list[str]] = []

    def slow_build(config: Any, previous: State | None = None) -> State:
        if not built:
            gate.wait(10)  # the first reload is still loading while more SIGHUPs arrive
        built.append([a.name for a in config.assets])
        return build_state(config, previous)

    monkeypatch.setattr(reload_module, "build_state", slow_build)
    reloader = Reloader(live, cfg, close_delay=0)
    _write(cfg, _asset("a", SOURCES["240p"]) + _asset("b", SOURCES["360p"]))
    first = reloader.request()
    await asyncio.sleep(0.1)
    _write(cfg, _asset("a", SOURCES["240p"]) + _asset("newest", SOURCES["480p"]))
    more = [reloader.request() for _ in range(3)]
    gate.set()
    await asyncio.gather(first, *more)
    assert built == [["a", "b"], ["a", "newest"]]  # exactly one more reload, from the newest file
    assert sorted(live.current.assets) == ["a", "newest"]
    live.current.close()


async def test_files_are_closed_only_when_the_running_state_no_longer_serves_from_them(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "origin.toml"
    live = _start(cfg, _asset("a", SOURCES["240p"]) + _asset("b", SOURCES["360p"]))
    first = live.current
    a_fd, b_fd = first.assets["a"].files[0].fd, first.assets["b"].files[0].fd
    reloader = Reloader(live, cfg, close_delay=0)
    _write(cfg, _asset("b", SOURCES["360p"]) + _asset("c", SOURCES["480p"]))
    await reloader.reload()
    await asyncio.sleep(0.05)
    assert live.current.assets["b"] is first.assets["b"]  # unchanged: reused, not reloaded
    assert not _is_open(a_fd)
    assert _is_open(b_fd)
    live.current.close()


async def test_an_unexpected_exception_during_a_reload_is_refused_and_the_old_state_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tmp_path / "origin.toml"
    live = _start(cfg, _asset("a", SOURCES["240p"]))
    before = live.current

    def broken(path: Path) -> Any:
        raise KeyError("a parser bug")

    monkeypatch.setattr(reload_module, "load_config", broken)
    with caplog.at_level(logging.ERROR, logger="origin"):
        await Reloader(live, cfg).reload()
    assert live.current is before
    assert "reload refused" in caplog.text and "KeyError" in caplog.text
    before.close()
