"""Real players: dash.js and Shaka Player play the server's DASH, dash.js its Smooth Streaming.

Each plays at least 10 s of media in headless Debian Chromium, cross-origin (the page comes from
another port, tests/browser/harness.py), with no error, fatal or not, and every request to the
origin answered 2xx/3xx with CORS. The built-in sample is 10.02 s long, too short to show 10 s of
playback safely, so these tests encode their own 24 s ladder (three renditions, keyframes every
2 s, B-frames, AAC) and serve it clear with a server of their own. Skipped only where Chromium is
not installed and this is not CI; in CI (``CI=true``) a missing browser or player fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.browser.harness import Browser, Playback, Request, browser, missing_prerequisites
from tests.browser.harness import require as require_player
from tests.support.media import make_mp4
from tests.support.server import Server, run_server

ASSET = "long"
SECONDS = 24
FPS = 24
LADDER = [("426x240", "150k"), ("640x360", "300k"), ("854x480", "500k")]
HEIGHTS = [240, 360, 480]  # the ladder, in manifest (ascending bitrate) order

CSF, CMAF, SMOOTH = "mpd-time-csf", "mpd-time-cmaf", "smooth"
UNTIL = 12.0  # media seconds each playback must reach: >= 10 s, with a margin
RATE = 4.0  # playbackRate: 12 s of media in ~3 s; every frame is still decoded
MIN_FRAMES = 10 * FPS  # frames decoded in 10 s of media

_skip = next(
    (s for s in (missing_prerequisites(p)[0] for p in ("dashjs", "shaka")) if s is not None), None
)
pytestmark = pytest.mark.skipif(_skip is not None, reason=_skip or "")


@pytest.fixture(scope="session")
def long_ladder(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three 24 s H.264/AAC renditions with aligned 2 s GOPs (48 frames at 24 fps), B-frames."""
    folder = tmp_path_factory.mktemp("long_ladder")

    def encode(rung: tuple[str, str]) -> Path:
        size, bitrate = rung
        return make_mp4(
            folder / f"long_{size.split('x')[1]}p.mp4",
            seconds=SECONDS,
            size=size,
            fps=FPS,
            gop=2 * FPS,
            bframes=2,
            bitrate=bitrate,
            extra=("-preset", "ultrafast"),  # the last -preset wins; keeps -bf 2 and the GOP
        )

    with ThreadPoolExecutor(len(LADDER)) as pool:
        return list(pool.map(encode, LADDER))


@pytest.fixture(scope="module")
def server(long_ladder: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    files = ", ".join(f'"{f}"' for f in long_ladder)
    cfg = tmp_path_factory.mktemp("long_config") / "long.toml"
    cfg.write_text(
        f'[[assets]]\nname = "{ASSET}"\nfiles = [{files}]\n'
        'segment_duration = 4.0\nprotection = "clear"\n'
    )
    with run_server("--config", str(cfg)) as s:
        yield s


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    require_player("dashjs")
    require_player("shaka")
    with browser() as b:
        yield b


def manifest_url(server: Server, fmt: str) -> str:
    if fmt == SMOOTH:
        return f"{server.base}/{ASSET}.ism/manifest"
    return f"{server.base}/{ASSET}.ism/manifest(format={fmt})"


def chromium_head_abort(r: Request, requests: list[Request]) -> bool:
    """Chromium's own report of a HEAD that succeeded: not a failed request.

    Shaka asks for the manifest with HEAD first, to learn its type from Content-Type (the URL has
    no extension it knows). Chromium answers the fetch with the response (listed with its status)
    and then reports the same HEAD as failed with net::ERR_ABORTED: it does that for every fetch()
    HEAD, the same against Python's own http.server. Only that exact pair is let through.
    """
    return (
        r.method == "HEAD"
        and r.status is None
        and r.failure == "net::ERR_ABORTED"
        and any(
            o.method == "HEAD" and o.url == r.url and o.status is not None and o.status < 400
            for o in requests
        )
    )


def check_clean(p: Playback, server: Server, pages_base: str) -> None:
    """>= 10 s played, no error at all, every origin request 2xx/3xx, cross-origin with CORS."""
    why = p.summary()
    assert not p.timed_out, why
    assert p.reached and p.current_time >= 10.0, why
    assert not p.report.get("ended"), why  # reached the target, not the end of a short stream
    assert not p.fatal_errors, why
    assert not p.nonfatal_errors, why
    assert not p.page_errors, why
    assert p.video["decodedFrames"] >= MIN_FRAMES, why
    to_origin = [r for r in p.requests if r.is_from(server.base)]
    assert to_origin, why
    for r in to_origin:
        if chromium_head_abort(r, to_origin):
            continue
        assert r.status is not None and 200 <= r.status < 400, f"{r}\n{why}"
        assert r.origin == pages_base != server.base, f"{r}\n{why}"  # cross-origin
        assert r.allow_origin in ("*", pages_base), f"{r}\n{why}"
    media = [f for f in p.fragments if f["sn"] != "initSegment"]
    assert {f["type"] for f in media} == {"main", "audio"}, why


def check_levels(p: Playback) -> None:
    why = p.summary()
    assert [lv["height"] for lv in p.levels] == HEIGHTS, why
    assert all(str(lv["codecs"]).lower().startswith("avc1.") for lv in p.levels), why
    assert p.video["height"] in HEIGHTS, why


@pytest.mark.parametrize(
    ("player", "fmt"),
    [("dashjs", CSF), ("dashjs", CMAF), ("shaka", CSF), ("shaka", CMAF), ("dashjs", SMOOTH)],
)
def test_player_plays_10_seconds(chromium: Browser, server: Server, player: str, fmt: str) -> None:
    p = chromium.play(manifest_url(server, fmt), player=player, until=UNTIL, rate=RATE, timeout=30)
    print(p.summary())
    check_clean(p, server, chromium.pages_base)
    check_levels(p)
    if fmt == SMOOTH:
        # MSS fragment URLs from the manifest's Url template; no init segment to fetch.
        urls = [r.url for r in p.requests if r.is_from(server.base)]
        assert any("/QualityLevels(" in u and "/Fragments(video=" in u for u in urls), urls
        assert any("/Fragments(audio=" in u for u in urls), urls


@pytest.mark.parametrize("level", range(len(HEIGHTS)))
@pytest.mark.parametrize(("player", "fmt"), [("dashjs", CSF), ("dashjs", SMOOTH), ("shaka", CMAF)])
def test_every_video_rendition_plays_on_its_own(
    chromium: Browser, server: Server, player: str, fmt: str, level: int
) -> None:
    """Started on one Representation / QualityLevel, with ABR off: it alone plays 10 s+."""
    p = chromium.play(
        manifest_url(server, fmt),
        player=player,
        until=UNTIL,
        start_level=level,
        lock_level=True,
        rate=RATE,
        timeout=30,
    )
    print(p.summary())
    check_clean(p, server, chromium.pages_base)
    check_levels(p)
    main = [f for f in p.fragments if f["type"] == "main"]
    assert {f["level"] for f in main} == {level}, p.summary()
    # Segments start every 4 s: 12 s of media takes at least the first three.
    assert len([f for f in main if f["sn"] != "initSegment"]) >= 3, p.summary()
    assert p.start_level == level, p.summary()
    assert set(p.level_switches) == {level}, p.summary()
    assert p.video["height"] == HEIGHTS[level], p.summary()
