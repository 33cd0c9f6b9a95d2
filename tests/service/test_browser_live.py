"""Real players play a live channel, live: hls.js (HLS TS and fMP4, AES-128), Shaka Player (DASH
and HLS fMP4), dash.js (DASH and Smooth Streaming), each for at least 20 s of playback.

The channel is the sample (10 s) looped on the wall clock (``loop = true``): 4 s segments cut as
the VOD cuts them (4, 4, 2 s per loop), a 60 s window full from the start, AES-128 for HLS with a
key of its own, DASH and Smooth clear. The players' pages come from another origin (the harness's
static server, tests/browser/harness.py); three play at a time in one Chromium, each in its own
context, and the run's playlists are fetched from Python before and after.

What each playback must show (``check_live``), from the page's samples of the playhead and of the
player's live edge every 250 ms (pages/report.js, ``live=1``):

- no error at all (but hls.js's note on an ABR up-switch, ``upswitch_reappend``), at least
  ``PLAY`` s played from the first frame;
- no stall after the first frame: a stall is the playhead (``video.currentTime``) not advancing
  for more than ``STALL`` s while the page samples it; and over the run it advances at 1x (0.9 to
  1.1 media seconds per wall second: no freeze made up by a jump, no slow motion);
- the playhead near the live edge as the player itself places it (``live_bound``: the player's
  target delay, 3 segment durations (4 for dash.js on Smooth), plus the newest segment's age and
  the start-up, see there): hls.js the end of the last fragment in its playlist as loaded
  (``LevelDetails.edge``), Shaka the presentation timeline's segment availability end (its
  ``seekRange().end`` plus its presentation delay: the synced clock less the longest segment),
  dash.js ``getDvrWindow().end`` (the synced clock; on Smooth the last fragment listed); and
  the distance does not grow over the run (no drift);
- the window slides: the player's own window start (hls.js the playlist's first sequence number,
  Shaka ``seekRange().start``, dash.js ``getDvrWindow().start``) grows between the first and the
  last sample, and so do the origin's (HLS ``EXT-X-MEDIA-SEQUENCE``, the MPD's and the Smooth
  manifest's first segment time) between the start and the end of the run.

hls.js also shows the loop: the playhead enters (``FRAG_CHANGED``) a fragment that starts a loop
(its time a multiple of the 10 s period) after a fragment of the previous loop, without a stall.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.browser.harness import Browser, Playback, browser, missing_prerequisites
from tests.browser.harness import require as require_player
from tests.support.live_encoder import LiveEncoder
from tests.support.server import Server, run_server, sample_config

CHANNEL = "loop"
KEY_ID = "7d3b0f6e-2c1a-4e8b-9a55-31c2f0d4b6a7"
KEY = "a4f1c3e5b7d9021436587a9cbedf1032"
SEGMENT = 4.0  # the asset's segment duration (sample_config): the channel's
WINDOW = 60  # DVR seconds
LOOP = 10.0  # the sample's video is 240 frames at 24 fps: the loop period
URL_SECOND = 10_000_000  # fragment URL times are in 100 ns units

PLAY = 20.0  # media seconds each player plays from its first frame
STALL = 1.5  # the playhead not advancing for longer than this (seconds) is a stall
# How far behind the live edge a player may be. Each aims at a delay from the edge it sees when
# it starts (``target_delay``): hls.js 3 target durations from its playlist's end (RFC 8216
# 6.3.3 makes that the earliest start; its liveSyncDurationCount), Shaka and dash.js on DASH the
# MPD's suggestedPresentationDelay (8 s, 2 segments), dash.js on Smooth 4 fragment durations
# (its default without a suggested delay, which a Smooth manifest cannot carry). Two things come
# on top and are never caught up at normal latency (no catch-up rate): the start-up (from that
# choice to the first frame: 0.2-1 s here), and the age of the newest segment when the player
# looked: a segment is listed once complete, so the newest can be up to one segment old (this
# loop cuts 4, 4, 2 s), and Shaka starts at the start of the segment holding its chosen point.
# Hence the target plus one segment plus one second; that the distance then stays put
# (``DRIFT``) is the stronger check.
START_UP = 1.0


def target_delay(fmt: str) -> float:
    return {SMOOTH: 4, CSF: 2, CMAF: 2}.get(fmt, 3) * SEGMENT


def live_bound(fmt: str) -> float:
    return target_delay(fmt) + SEGMENT + START_UP


# How much the distance to the edge may grow from the run's first to its last seconds: the
# largest distance in each, over a span longer than a playlist refresh (the distance to a
# playlist's edge is a saw-tooth: it jumps at each refresh that finds a new segment).
DRIFT = 0.5
DRIFT_SPAN = SEGMENT + 1.0

TS, FMP4, CSF, CMAF, SMOOTH = "m3u8-aapl", "m3u8-cmaf", "mpd-time-csf", "mpd-time-cmaf", "smooth"
# Three at a time on two cores (measured: no stall, 1x playback in each).
BATCHES = [
    [("hlsjs", TS), ("shaka", CSF), ("dashjs", SMOOTH)],
    [("hlsjs", FMP4), ("dashjs", CSF), ("shaka", FMP4)],
]
CASES = [case for batch in BATCHES for case in batch]

_skip = next(
    (s for s in (missing_prerequisites(p)[0] for p in ("hlsjs", "dashjs", "shaka")) if s), None
)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_skip is not None, reason=_skip or "")]


@dataclass
class Run:
    """One live playback and the origin's window before and after it."""

    player: str  # the harness's name: hlsjs, shaka, dashjs
    playback: Playback
    window_before: int  # the origin's first segment (HLS: sequence number; else its time)
    window_after: int
    wall: float  # seconds the whole batch took


def manifest_url(server: Server, fmt: str) -> str:
    if fmt == SMOOTH:
        return f"{server.base}/{CHANNEL}.isml/manifest"
    return f"{server.base}/{CHANNEL}.isml/manifest(format={fmt})"


def window_start(server: Server, fmt: str) -> int:
    """Where the origin's window starts now: the first video segment it lists."""
    body = server.request(manifest_url(server, fmt).removeprefix(server.base)).body.decode()
    if fmt in (TS, FMP4):
        media = next(line for line in body.splitlines() if line and not line.startswith("#"))
        playlist = server.request(f"/{CHANNEL}.isml/{media}").body.decode()
        m = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist)
    elif fmt == SMOOTH:
        m = re.search(r'<c t="(\d+)"', body)
    else:
        m = re.search(r'<S t="(\d+)"', body)
    assert m, body
    return int(m.group(1))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    channel = f"""
[[channels]]
name = "{CHANNEL}"
loop = true
asset = "bbb"
window = {WINDOW}
protection = "aes-128"
key_id = "{KEY_ID}"
key = "{KEY}"
dash = "clear"
smooth = "clear"
"""
    cfg = sample_config(tmp_path_factory.mktemp("live_config"), more=channel)
    with run_server("--config", str(cfg)) as s:
        yield s


@pytest.fixture(scope="module")
def runs(server: Server) -> dict[tuple[str, str], Run]:
    """Every playback of ``BATCHES``, a batch at a time in one browser."""
    for player in ("hlsjs", "dashjs", "shaka"):
        require_player(player)
    out: dict[tuple[str, str], Run] = {}
    with browser() as b:
        for batch in BATCHES:
            out.update(_play_batch(b, server, batch))
    return out


def _play_batch(
    b: Browser, server: Server, batch: list[tuple[str, str]]
) -> dict[tuple[str, str], Run]:
    before = [window_start(server, fmt) for _, fmt in batch]
    start = time.monotonic()
    plays = [
        {
            "src": manifest_url(server, fmt),
            "player": player,
            "until": PLAY,
            "live": True,
            # No clock for dash.js on Smooth (no UTCTiming there): it reads the manifest
            # response's Date, which the origin exposes to cross-origin pages.
            "config": None,
        }
        for player, fmt in batch
    ]
    playbacks = b.play_together(plays, timeout=PLAY + 25)
    wall = time.monotonic() - start
    after = [window_start(server, fmt) for _, fmt in batch]
    return {
        case: Run(case[0], p, w0, w1, wall)
        for case, p, w0, w1 in zip(batch, playbacks, before, after, strict=True)
    }


# --- judging a playback from its samples ------------------------------------------------------


def after_first_frame(p: Playback) -> list[dict[str, Any]]:
    first = p.first_frame
    assert first is not None, p.summary()
    return [s for s in p.samples if s["t"] >= first["t"]]


def longest_freeze(samples: list[dict[str, Any]]) -> tuple[float, float]:
    """(seconds, at currentTime): the longest time the playhead did not advance."""
    longest, at = 0.0, 0.0
    moved_t, moved_ct = samples[0]["t"], samples[0]["currentTime"]
    for s in samples[1:]:
        if s["currentTime"] > moved_ct + 1e-3:
            moved_t, moved_ct = s["t"], s["currentTime"]
        elif s["t"] - moved_t > longest:
            longest, at = s["t"] - moved_t, moved_ct
    return longest, at


def distances(samples: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(t, edge - currentTime) for every sample where the player gave its live edge."""
    return [
        (s["t"], s["edge"]["edge"] - s["currentTime"])
        for s in samples
        if s["edge"] and isinstance(s["edge"].get("edge"), (int, float))
    ]


def player_window_starts(player: str, p: Playback) -> list[float]:
    name = {"hlsjs": "startSN", "shaka": "seekStart", "dashjs": "dvrStart"}[player]
    return [
        float(s["edge"][name])
        for s in after_first_frame(p)
        if s["edge"] and isinstance(s["edge"].get(name), (int, float))
    ]


def upswitch_reappend(p: Playback, error: dict[str, Any]) -> bool:
    """hls.js 1.7's warning that an appended fragment did not grow the buffer, for a fragment
    that replaced the same sequence number of another level (an ABR up-switch re-fetching what
    is buffered): hls.js's doing, not a fault of the stream."""
    if error.get("fatal") or error.get("details") != "bufferAppendNoProgress":
        return False
    main = [f for f in p.fragments if f["type"] == "main"]
    for i, f in enumerate(main):
        if f["url"] == error.get("url"):
            return any(g["sn"] == f["sn"] and g["level"] != f["level"] for g in main[:i])
    return False


def describe(run: Run) -> str:
    p = run.playback
    samples = after_first_frame(p) if p.first_frame else []
    d = distances(samples)
    freeze, _ = longest_freeze(samples) if samples else (0.0, 0.0)
    return (
        f"{p.player} {p.src.rsplit('/', 1)[-1]}: first frame after "
        f"{(p.first_frame or {}).get('t')} s, played {p.played:.1f} s, "
        f"edge distance {min(x for _, x in d):.2f}-{max(x for _, x in d):.2f} s, "
        f"longest freeze {freeze:.2f} s, origin window {run.window_before}->{run.window_after}, "
        f"{len(p.errors)} errors; batch wall {run.wall:.1f} s"
        if d
        else p.summary()
    )


def check_live(run: Run, fmt: str) -> None:
    p = run.playback
    why = p.summary() + "\n" + "\n".join(str(s) for s in p.samples)
    assert not p.fatal_errors, why
    assert not p.page_errors, why
    assert not p.timed_out, why
    assert p.played >= PLAY, why
    samples = after_first_frame(p)
    assert samples[-1]["t"] - samples[0]["t"] >= PLAY - 1, why

    freeze, at = longest_freeze(samples)
    assert freeze <= STALL, f"the playhead stood still {freeze:.2f} s at {at}\n{why}"
    assert all(not s["paused"] for s in samples), why
    rate = (samples[-1]["currentTime"] - samples[0]["currentTime"]) / (
        samples[-1]["t"] - samples[0]["t"]
    )
    assert 0.9 <= rate <= 1.1, f"played at {rate:.3f}x\n{why}"

    d = distances(samples)
    assert len(d) >= len(samples) - 2, why
    worst = max(x for _, x in d)
    bound = live_bound(fmt)
    assert min(x for _, x in d) > 0, why
    assert worst <= bound, f"edge distance {worst:.2f} s > {bound} s\n{why}"
    first = max(x for t, x in d if t <= d[0][0] + DRIFT_SPAN)
    last = max(x for t, x in d if t >= d[-1][0] - DRIFT_SPAN)
    assert last <= first + DRIFT, f"drifted from the edge: {first:.2f} s, then {last:.2f}\n{why}"

    starts = player_window_starts(run.player, p)
    assert starts and starts[-1] > starts[0], f"the player's window did not slide\n{why}"
    assert run.window_after > run.window_before, why


@pytest.mark.parametrize(("player", "fmt"), CASES)
def test_player_plays_the_live_channel_at_the_live_edge(
    runs: dict[tuple[str, str], Run], player: str, fmt: str
) -> None:
    run = runs[(player, fmt)]
    print(describe(run))
    check_live(run, fmt)
    p = run.playback
    # No error at all (dash.js: nothing from its logger at error level either, e.g. no 404 on a
    # segment it thought available), but hls.js's note on an up-switch (upswitch_reappend).
    assert not [e for e in p.errors if not upswitch_reappend(p, e)], p.summary()
    to_origin = [r for r in p.requests if r.is_from(run.playback.src)]
    assert all(r.allow_origin is not None for r in to_origin if r.status), p.summary()
    if fmt in (TS, FMP4) and player == "hlsjs":
        assert p.keys and all(f"/key?kid={KEY_ID}" in k for k in p.keys), p.summary()


@pytest.mark.parametrize("fmt", [TS, FMP4])
def test_the_looped_channel_plays_in_hlsjs_across_a_loop_boundary_without_a_stall(
    runs: dict[tuple[str, str], Run], fmt: str
) -> None:
    p = runs[("hlsjs", fmt)].playback
    check_live(runs[("hlsjs", fmt)], fmt)  # no stall anywhere in the run, the boundary included
    played = [f for f in p.played_fragments if f["type"] == "main"]
    times = [int(m.group(1)) for f in played if (m := re.search(r"video=(\d+)", f["url"] or ""))]
    assert len(times) == len(played) >= 5, p.summary()
    assert times == sorted(times), p.summary()  # in order, no jump back
    loop = round(LOOP * URL_SECOND)
    entered = list(dict.fromkeys(times))  # a fragment entered again on another level: once
    wraps = [(a, b) for a, b in itertools.pairwise(entered) if b % loop == 0]
    assert wraps, f"no loop start among the played fragments {times}\n{p.summary()}"
    # The fragment entered before each loop's first is the previous loop's last.
    assert all(b - loop <= a < b for a, b in wraps), times


# --- a channel an encoder pushes to -----------------------------------------------------------

INGEST_SECRET = "browser-ingest-secret-0123"


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose channel ``tv`` a real ffmpeg ladder (3 renditions, one POST each, 2 s GOP)
    pushes to, running for as long as the players play; a 24 s window, so that it slides while
    they do."""
    channel = f"""
[[channels]]
name = "tv"
ingest_user = "enc"
ingest_secret = "{INGEST_SECRET}"
window = 24
segment_duration = {SEGMENT}
"""
    tmp = tmp_path_factory.mktemp("live_pushed")
    cfg = sample_config(tmp, server=f'state_dir = "{tmp}"', more=channel)
    with (
        run_server("--config", str(cfg)) as s,
        LiveEncoder(s.base, "tv", tmp, auth=("enc", INGEST_SECRET)),
    ):
        deadline = time.monotonic() + 30
        while s.request("/tv.isml/manifest(format=mpd-time-csf)").status != 200:
            assert time.monotonic() < deadline, "the encoder's stream never showed up"
            time.sleep(0.5)
        time.sleep(2 * SEGMENT)  # a few segments in the window
        yield s


@pytest.mark.parametrize(("player", "fmt"), [("hlsjs", FMP4), ("dashjs", CSF)])
def test_players_play_what_an_encoder_pushes_at_the_live_edge(
    pushed: Server, player: str, fmt: str
) -> None:
    require_player(player)
    src = f"{pushed.base}/tv.isml/manifest(format={fmt})"
    with browser() as b:
        (p,) = b.play_together(
            [{"src": src, "player": player, "until": PLAY, "live": True, "config": None}],
            timeout=PLAY + 25,
        )
    run = Run(player, p, 0, 1, 0.0)  # the origin's window is checked by test_live_e2e
    print(describe(run))
    check_live(run, fmt)
    assert not [e for e in p.errors if not upswitch_reappend(p, e)], p.summary()


def test_the_players_reloads_of_live_manifests_and_keys_are_answered_by_the_fast_path(
    server: Server, runs: dict[tuple[str, str], Run]
) -> None:
    """Real players' requests carry only headers the fast path lets through (Chromium's
    sec-fetch-*, sec-ch-ua*, Origin, Referer…): their reloads skip aiohttp."""
    health = json.loads(server.request("/healthz").body)
    reloads = sum(len(run.playback.requests) for run in runs.values())
    print(f"fast-path hits {health['fast_path']['hits']} of {reloads} player requests")
    assert health["fast_path"]["hits"] >= len(runs), health
