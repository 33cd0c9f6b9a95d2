"""Real players on sources encrypted at rest (``origin encrypt``): hls.js (HLS TS, AES-128 on
top) and dash.js (DASH, clear) in headless Chromium play the sample ladder from its encrypted
files as they play the clear ones, with a picture that is not black."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from origin.service.keys import commands, protection
from tests.browser.harness import Browser, Playback, browser, missing_prerequisites, require
from tests.support.hlsjs_checks import TS, check_clean
from tests.support.server import SAMPLE_DIR, SAMPLE_KEY, SAMPLE_KID, Server, run_server

_skip, _ = missing_prerequisites("hlsjs")
pytestmark = pytest.mark.skipif(_skip is not None, reason=_skip or "")
UNTIL = 8.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("at-rest-browser")
    cert = protection.load_or_create(root / "state").cert
    files = []
    for n in ("240p", "360p", "480p"):
        out = root / f"enc_{n}.mp4"
        commands.encrypt_file(SAMPLE_DIR / f"sample_{n}.mp4", out, cert)
        files.append(f'"{out}"')
    cfg = root / "origin.toml"
    cfg.write_text(
        f'[server]\nstate_dir = "{root / "state"}"\n'
        f'[[assets]]\nname = "rest"\nfiles = [{", ".join(files)}]\nsegment_duration = 4.0\n'
        f'protection = "aes-128"\nkey_id = "{SAMPLE_KID}"\nkey = "{SAMPLE_KEY.hex()}"\n'
        'dash = "clear"\n'
    )
    with run_server("--config", str(cfg)) as s:
        yield s


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    require("hlsjs")
    require("dashjs")
    with browser() as b:
        yield b


def check_played(p: Playback, server: Server, fmt: str) -> None:
    why = p.summary()
    assert not p.timed_out and p.reached and p.current_time >= UNTIL, why
    if fmt == TS:  # as the clear sample: hls.js's start-gap seek on TS is tolerated
        check_clean(p, server, fmt)
    else:
        assert not p.fatal_errors and not p.nonfatal_errors and not p.page_errors, why
    assert p.video["decodedFrames"] >= 150, why
    to_origin = [r for r in p.requests if r.is_from(server.base)]
    assert to_origin and all(r.status is not None and r.status < 400 for r in to_origin), why
    mean, spread = p.picture()
    assert mean > 20 and spread > 8, f"black or flat picture: {mean:.1f}, {spread:.1f}\n{why}"


@pytest.mark.parametrize(("player", "fmt"), [("hlsjs", "m3u8-aapl"), ("dashjs", "mpd-time-csf")])
def test_a_ladder_encrypted_at_rest_plays_in_the_browser(
    chromium: Browser, server: Server, player: str, fmt: str
) -> None:
    p = chromium.play(f"{server.base}/rest.ism/manifest(format={fmt})", player=player, until=UNTIL)
    print(p.summary())
    check_played(p, server, fmt)
    if player == "hlsjs":
        assert any("/key?kid=" in r.url for r in p.requests), p.summary()  # AES-128 on top
