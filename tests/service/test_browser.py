"""Real players: hls.js in headless Debian Chromium plays the real server's HLS, cross-origin.

The player's page comes from another origin (tests/browser/harness.py), so manifests, segments
and the key all need the origin's CORS. Skipped only where Chromium is not installed and this is
not CI; in CI (``CI=true``) a missing browser fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.harness import Browser, browser, missing_prerequisites, require
from tests.support.hlsjs_checks import (
    CMAF,
    TS,
    check_clean,
    check_key_cross_origin,
)
from tests.support.server import Server, run_server

HEIGHTS = [240, 360, 480]  # the sample's ladder, in master order

_skip, _ = missing_prerequisites("hlsjs")
pytestmark = pytest.mark.skipif(_skip is not None, reason=_skip or "")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with run_server() as s:
        yield s


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    require("hlsjs")
    with browser() as b:
        yield b


def master_url(server: Server, fmt: str) -> str:
    return f"{server.base}/sample.ism/manifest(format={fmt})"


@pytest.mark.parametrize("fmt", [TS, CMAF])
def test_hlsjs_plays_master(chromium: Browser, server: Server, fmt: str) -> None:
    p = chromium.play(master_url(server, fmt), until=8.0)
    print(p.summary())
    check_clean(p, server, fmt)
    check_key_cross_origin(p, server, chromium.pages_base)
    # hls.js drops the TS master's audio-only variant when video variants exist.
    assert [lv["height"] for lv in p.levels] == HEIGHTS, p.summary()
    assert all("avc1." in lv["codecs"] and "mp4a.40.2" in lv["codecs"] for lv in p.levels)
    assert p.start_level is not None, p.summary()
    assert p.video["height"] in HEIGHTS, p.summary()
    if fmt == CMAF:
        audio = [f for f in p.fragments if f["type"] == "audio" and f["sn"] != "initSegment"]
        assert audio, p.summary()  # the separate audio rendition was played


@pytest.mark.parametrize("level", range(len(HEIGHTS)))
@pytest.mark.parametrize("fmt", [TS, CMAF])
def test_hlsjs_plays_every_rendition(
    chromium: Browser, server: Server, fmt: str, level: int
) -> None:
    """startLevel=N and no switching: each rendition plays on its own to its end.

    At 4x to keep CI short: every frame is still decoded (the headless compositor drops some of
    the 96 frames a second it is handed, which is rendering, not decoding).
    """
    until = 9.5
    p = chromium.play(
        master_url(server, fmt), until=until, start_level=level, lock_level=True, rate=4.0
    )
    print(p.summary())
    check_clean(p, server, fmt)
    assert p.start_level == level, p.summary()
    main = [f for f in p.fragments if f["type"] == "main"]
    assert {f["level"] for f in main} == {level}, p.summary()
    assert {f["sn"] for f in main} >= {0, 1, 2}, p.summary()  # every segment of it
    assert p.level_switches == [level], p.summary()
    assert p.video["height"] == HEIGHTS[level], p.summary()
    assert p.video["decodedFrames"] >= 0.9 * 24 * until, p.summary()  # 24 fps
