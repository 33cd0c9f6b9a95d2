"""The built-in player page (``/``) in headless Debian Chromium, as a new user meets it: the
real server on its built-in config, the sample and the looped live channel picked from the page's
list, each way to stream picked from its format switch, played 8 s with a picture that is not
black, the page's own figures filled in, and not one request to another host.

Skipped only where Chromium is not installed and this is not CI.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.browser.harness import CHROMIUM_ARGS, find_chromium, in_ci, picture_stats
from tests.support.server import Server, run_server
from tests.support.token_server import config_text, make_jwt

PLAYED = 8.0  # seconds of media the page must play

if find_chromium() is None and not in_ci():
    pytest.skip("chromium is not installed (scripts/test.sh installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with run_server() as s:
        yield s


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    executable = find_chromium()
    assert executable, "chromium is not installed (scripts/test.sh installs it)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Visit:
    """One page in its own browser context, with everything it asked for and said."""

    page: Any
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def text(self, selector: str) -> str:
        return str(self.page.inner_text(selector))

    def messages(self, level: str) -> list[str]:
        return [str(t) for t in self.page.locator(f"#messages p.{level}").all_inner_texts()]

    def summary(self) -> str:
        return "\n".join(
            [
                "messages: " + " | ".join(self.page.locator("#messages p").all_inner_texts()),
                "stats: " + self.text("#stats").replace("\n", " "),
                "console: " + " | ".join(self.console[-15:]),
                "page errors: " + " | ".join(self.errors),
            ]
        )


@contextmanager
def open_page(chromium: Any, base: str) -> Iterator[Visit]:
    """``base``/ in a fresh browser context, once its list of titles is there."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    v = Visit(page)
    page.on("request", lambda r: v.requests.append(r.url))
    page.on("console", lambda m: v.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: v.errors.append(str(e)))
    try:
        page.goto(base + "/", wait_until="load")
        page.wait_for_selector("#titles button[data-title]")
        yield v
    finally:
        context.close()


@pytest.fixture
def visit(chromium: Any, server: Server) -> Iterator[Visit]:
    with open_page(chromium, server.base) as v:
        yield v


def pick(v: Visit, name: str, kind: str, way: str, engine: str) -> None:
    v.page.click(f'#titles button[data-title="{name}"][data-kind="{kind}"]')
    v.page.select_option("#way", label=way)
    v.page.select_option("#engine", engine)
    v.page.click("#play")


def media_time(v: Visit) -> float:
    return float(v.page.evaluate("document.getElementById('video').currentTime"))


def play_for(v: Visit, seconds: float, *, rate: float, timeout: float) -> float:
    """Wait until the video has played ``seconds`` past where it started; the seconds played."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: PLC0415

    try:
        v.page.wait_for_function(
            "() => { const e = document.getElementById('video');"
            " return e.readyState >= 3 && !e.paused && e.currentTime > 0; }",
            timeout=timeout * 1000,
        )
    except PlaywrightTimeout:
        pytest.fail(f"did not start playing in {timeout:g} s\n{v.summary()}")
    if rate != 1:
        v.page.evaluate(f"document.getElementById('video').playbackRate = {rate}")
    start = media_time(v)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and media_time(v) - start < seconds:
        assert not v.messages("error"), v.summary()
        time.sleep(0.25)
    return media_time(v) - start


def plays(v: Visit, server: Server, *, live: bool) -> None:
    """The picked title plays PLAYED seconds (VOD at twice the speed) and looks played."""
    played = play_for(v, PLAYED, rate=1.0 if live else 2.0, timeout=40 if live else 30)
    assert played >= PLAYED, v.summary()
    check_played(v, server, live=live)


def check_played(v: Visit, server: Server, *, live: bool) -> None:
    mean, spread = picture_stats(v.page.locator("#video").screenshot())
    assert mean > 20 and spread > 8, (
        f"black or flat picture: {mean:.1f}, {spread:.1f}\n{v.summary()}"
    )
    assert not v.messages("error") and not v.errors, v.summary()
    assert re.fullmatch(r"\d+\u00d7\d+", v.text("#s-rendition")), v.summary()  # width x height
    assert v.text("#s-bitrate").endswith("bit/s"), v.summary()
    assert v.text("#s-buffer").endswith(" s"), v.summary()
    assert v.text("#s-latency").endswith(" s") == live, v.summary()
    assert "Playing" in " ".join(v.messages("info")), v.summary()
    elsewhere = [u for u in v.requests if not u.startswith((server.base + "/", "blob:", "data:"))]
    assert not elsewhere, elsewhere
    violations = [c for c in v.console if "Content Security Policy" in c]
    assert not violations, violations


# (way as the format switch says it, player): every way the sample's policy allows, each with
# a player that plays it in Chromium.
SAMPLE_WAYS = [
    ("HLS (TS) · AES-128", "hls.js"),
    ("HLS (fMP4) · AES-128", "hls.js"),
    ("HLS (fMP4) · cbcs (ClearKey)", "Shaka"),
    ("HLS (fMP4) · cenc (ClearKey)", "Shaka"),
    ("DASH (csf) · clear", "dash.js"),
    ("DASH (csf) · cenc (ClearKey)", "dash.js"),
    ("DASH (csf) · cbcs (ClearKey)", "Shaka"),
    ("DASH (cmaf) · clear", "Shaka"),
    ("DASH (cmaf) · cenc (ClearKey)", "Shaka"),
    ("DASH (cmaf) · cbcs (ClearKey)", "dash.js"),
    ("Smooth Streaming · clear", "dash.js"),
]


SMOOTH_CENC = ("Smooth Streaming · cenc (ClearKey)", "")  # offered, no player here plays it


@pytest.mark.parametrize(("way", "engine"), SAMPLE_WAYS)
def test_the_page_plays_the_sample_in_every_way_its_policy_allows(
    visit: Visit, server: Server, way: str, engine: str
) -> None:
    pick(visit, "sample", "vod", way, engine)
    plays(visit, server, live=False)


def test_smooth_with_common_encryption_is_offered_and_said_to_need_another_player(
    visit: Visit,
) -> None:
    """dash.js reads only PlayReady and Widevine from a Smooth manifest and Shaka 4.16 plays no
    Smooth here: the page says so instead of failing with a player's error code."""
    visit.page.click('#titles button[data-title="sample"][data-kind="vod"]')
    visit.page.select_option("#way", label=SMOOTH_CENC[0])
    assert visit.page.locator("#engine option").all_inner_texts() == ["none here"]
    visit.page.click("#play")
    assert any("PlayReady player" in m for m in visit.messages("error")), visit.summary()
    assert not visit.errors, visit.summary()


CHANNEL_WAYS = [
    ("HLS (TS) · AES-128", "hls.js"),
    ("HLS (fMP4) · AES-128", "hls.js"),
    ("DASH (csf) · clear", "dash.js"),
    ("DASH (cmaf) · clear", "Shaka"),
    ("Smooth Streaming · clear", "dash.js"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("way", "engine"), CHANNEL_WAYS)
def test_the_page_plays_the_looped_live_channel_with_its_latency(
    visit: Visit, server: Server, way: str, engine: str
) -> None:
    pick(visit, "sample-live", "live", way, engine)
    plays(visit, server, live=True)


@pytest.mark.parametrize(
    ("title", "kind", "tested"),
    [("sample", "vod", [*SAMPLE_WAYS, SMOOTH_CENC]), ("sample-live", "live", CHANNEL_WAYS)],
)
def test_the_ways_played_above_are_every_way_the_page_offers(
    visit: Visit, title: str, kind: str, tested: list[tuple[str, str]]
) -> None:
    visit.page.click(f'#titles button[data-title="{title}"][data-kind="{kind}"]')
    # The title's ways are asked for on the click.
    visit.page.wait_for_selector("#way option", state="attached")
    offered = visit.page.locator("#way option").all_inner_texts()
    assert sorted(offered) == sorted(way for way, _ in tested)


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The sample as ``secure``: its key only for a JWT with the content key claim."""
    cfg = tmp_path_factory.mktemp("tokens") / "origin.toml"
    cfg.write_text(config_text())
    with run_server("--config", str(cfg)) as s:
        yield s


@pytest.mark.parametrize("mode", ["header", "query"])
def test_a_token_typed_in_plays_the_protected_title_and_is_never_shown(
    chromium: Any, token_server: Server, mode: str
) -> None:
    token = make_jwt()
    with open_page(chromium, token_server.base) as v:
        v.page.fill("#token", token)
        v.page.select_option("#token-mode", mode)
        pick(v, "secure", "vod", "HLS (fMP4) · AES-128", "hls.js")
        plays(v, token_server, live=False)
        assert token not in v.page.inner_text("body")
        if mode == "query":
            assert "token=…" in v.text("#url"), v.text("#url")


@pytest.mark.parametrize(
    ("token", "words"),
    [("", "wants a token"), ("not-a-jwt", "refused the token")],
)
def test_a_refused_key_is_said_in_plain_words(
    chromium: Any, token_server: Server, token: str, words: str
) -> None:
    with open_page(chromium, token_server.base) as v:
        v.page.fill("#token", token)
        pick(v, "secure", "vod", "HLS (fMP4) · AES-128", "hls.js")
        v.page.wait_for_selector("#messages p.error", timeout=20_000)
        said = " ".join(v.messages("error"))
        assert words in said, v.summary()
        assert float(v.page.evaluate("document.getElementById('video').currentTime")) < 1
