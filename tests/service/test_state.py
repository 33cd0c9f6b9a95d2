"""Loading a config into a state: any failure refuses one asset only; reloads keep what they can."""

from __future__ import annotations

import logging
import shutil
import struct
from pathlib import Path

import pytest

from origin.service import state as state_module
from origin.service.config import load_config
from origin.service.state import build_state
from origin.service.storage import SourceFile, load_movie
from tests.support.server import ROOT

SAMPLE = ROOT / "origin" / "sample" / "sample_240p.mp4"


def _config(tmp_path: Path, *assets: tuple[str, Path], seg: float = 4.0) -> Path:
    cfg = tmp_path / "origin.toml"
    cfg.write_text(
        "".join(
            f'[[assets]]\nname = "{name}"\nfiles = ["{path}"]\nsegment_duration = {seg}\n'
            for name, path in assets
        )
    )
    return cfg


def test_a_missing_file_or_a_directory_refuses_that_asset_only_with_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "folder.mp4").mkdir()
    cfg = _config(
        tmp_path,
        ("good", SAMPLE),
        ("missing", tmp_path / "gone.mp4"),
        ("folder", tmp_path / "folder.mp4"),
    )
    config = load_config(cfg)
    assert [a.name for a in config.assets] == ["good", "missing", "folder"]
    assert len(config.file_problems) == 2  # still errors for check-config
    with caplog.at_level(logging.ERROR, logger="origin"):
        state = build_state(config)
    assert list(state.assets) == ["good"]
    assert state.refused["missing"] == f"{tmp_path / 'gone.mp4'}: no such file"
    assert "is a directory" in state.refused["folder"]
    assert not [r for r in caplog.records if r.exc_info]  # expected: one line, no traceback
    state.close()


def test_an_unexpected_exception_while_loading_refuses_that_asset_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = tmp_path / "damaged.mp4"
    unreadable = tmp_path / "unreadable.mp4"
    shutil.copyfile(SAMPLE, damaged)
    shutil.copyfile(SAMPLE, unreadable)

    def flaky(src: SourceFile) -> object:
        if src.path == damaged:
            struct.unpack(">I", b"")  # what a parser bug on a damaged box raises
        if src.path == unreadable:
            raise PermissionError(13, "Permission denied", str(src.path))
        return load_movie(src)

    monkeypatch.setattr(state_module, "load_movie", flaky)
    cfg = _config(tmp_path, ("good", SAMPLE), ("damaged", damaged), ("unreadable", unreadable))
    with caplog.at_level(logging.ERROR, logger="origin"):
        state = build_state(load_config(cfg))
    assert list(state.assets) == ["good"]
    assert "unexpected struct.error" in state.refused["damaged"]
    assert state.refused["unreadable"] == f"{unreadable}: cannot read: Permission denied"
    by_asset = {r.getMessage().split("'")[1]: r for r in caplog.records}
    assert by_asset["damaged"].exc_info  # a bug: its traceback is logged, the server goes on
    assert not by_asset["unreadable"].exc_info
    state.close()


def test_a_reload_keeps_the_loaded_copy_of_a_vanished_source_only_while_it_is_intact(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    shutil.copyfile(SAMPLE, a)
    shutil.copyfile(SAMPLE, b)
    cfg = _config(tmp_path, ("a", a), ("b", b))
    first = build_state(load_config(cfg))
    a.unlink()  # the open descriptor still reads the loaded bytes
    with b.open("r+b") as f:
        f.truncate(5000)  # the loaded index no longer matches what the descriptor reads
    with caplog.at_level(logging.WARNING, logger="origin"):
        again = build_state(load_config(cfg), first)
    assert again.assets["a"] is first.assets["a"]
    assert "'a'" in caplog.text and "no such file" in caplog.text
    assert "b" not in again.assets and "b" in again.refused
    # With its config changed, a vanished source is refused as at start-up.
    changed = build_state(load_config(_config(tmp_path, ("a", a), seg=2.0)), first)
    assert "a" not in changed.assets and "no such file" in changed.refused["a"]
    first.close()
