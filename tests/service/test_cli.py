"""The command line as a new user meets it: help, pipes, config checks, the shipped configs."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from origin.service.cli import main
from tests.support.server import ROOT

COMMANDS = ("serve", "check-config", "inspect", "token")


def test_help_lists_every_command_without_markup(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        # each command on its own line of the command list, with its help
        assert any(
            line.split()[:1] == [command] and len(line.split()) > 1 for line in out.splitlines()
        ), command
    assert "``" not in out and ":func:" not in out


def test_inspect_into_a_pipe_closed_by_its_reader_ends_quietly() -> None:
    # `origin inspect FILE | head -1`, with the reader gone before the first write (as head is
    # once it has its line): no BrokenPipeError traceback, no "Exception ignored" at exit.
    proc = subprocess.Popen(
        [sys.executable, "-m", "origin", "inspect", "origin/sample/sample_240p.mp4"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    with proc.stderr:
        err = proc.stderr.read()
    assert proc.wait(timeout=60) in (0, 141)
    assert err == b""


def test_check_config_lists_missing_files_and_directories_with_the_other_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dir.mp4").mkdir()
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[[assets]]\nname = "a"\nfiles = ["gone.mp4"]\n'
        '[[assets]]\nname = "b"\nfiles = ["dir.mp4"]\n'
    )
    assert main(["check-config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "config has 2 error(s)" in err
    assert f"{cfg}: assets[0].files[0]: no such file" in err
    assert f"{cfg}: assets[1].files[0]: is a directory, not a file" in err
    cfg.write_text(cfg.read_text() + "[server]\nport = -1\n")
    assert main(["check-config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "config has 3 error(s)" in err and "server.port" in err


def test_the_shipped_example_configs_listen_on_ports_of_their_own() -> None:
    ports = {}
    for path in sorted((ROOT / "config").glob("*.toml")):
        ports[path.name] = tomllib.loads(path.read_text()).get("server", {}).get("port", 8080)
    assert len(set(ports.values())) == len(ports), ports
    assert ports["default.toml"] == 8080  # the README's first command and player table
