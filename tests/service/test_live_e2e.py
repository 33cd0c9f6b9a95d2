"""Live end to end against the real server: real ffmpeg encoders push (fragmented-MP4 ingest, one
POST per rendition; a DASH-IF CMAF ingest client), real ffmpeg players play the live HLS URLs."""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import m3u8
import pytest

from tests.support.cmaf_ingest import CmafIngestClient, tracks_from_ffmpeg
from tests.support.live_encoder import LiveEncoder
from tests.support.media import FFMPEG
from tests.support.server import Server, run_server, sample_config

SECRET = "e2e-ingest-secret-0123456789"
KID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
KEY = "8899aabbccddeeff0011223344556677"
BASIC = "Basic " + base64.b64encode(f"enc:{SECRET}".encode()).decode()
# ffmpeg 5.1's HLS demuxer makes a new init section object on every live playlist reload and so
# re-reads the EXT-X-MAP each time (hls.c update_init_section compares pointers); its mov demuxer
# then warns about the second moov. Any live fMP4 HLS does that in this ffmpeg; nothing else may.
FFMPEG_REREADS_INIT = re.compile(r"Found duplicated MOOV Atom|Last message repeated")


def _channels() -> str:
    out = []
    for name, protection in (("tv", "aes-128"), ("cmaf", "clear")):
        key = f'key_id = "{KID}"\nkey = "{KEY}"\ndash = "clear"\nsmooth = "clear"'
        out.append(
            f"""
[[channels]]
name = "{name}"
ingest_user = "enc"
ingest_secret = "{SECRET}"
window = 24
segment_duration = 2
protection = "{protection}"
{key if protection == "aes-128" else ""}
"""
        )
    return "\n".join(out)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    cfg = sample_config(tmp_path, server=f'state_dir = "{tmp_path}"', more=_channels())
    with run_server("--config", str(cfg)) as srv:
        yield srv


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _post(url: str, body: bytes, auth: str | None = BASIC) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method="POST")
    if auth:
        req.add_header("Authorization", auth)
    return _get_request(req)


def _get_request(req: urllib.request.Request) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _media_playlist(base: str, channel: str, fmt: str = "m3u8-cmaf") -> m3u8.M3U8:
    master_url = f"{base}/{channel}.isml/manifest(format={fmt})"
    status, text = _get(master_url)
    assert status == 200, text
    variant = m3u8.loads(text).playlists[0].uri
    status, text = _get(f"{base}/{channel}.isml/{variant}")
    assert status == 200, text
    return m3u8.loads(text)


def _wait_for_segments(base: str, channel: str, n: int, timeout: float = 30) -> m3u8.M3U8:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _ = _get(f"{base}/{channel}.isml/manifest(format=m3u8-cmaf)")
        if status == 200:
            media = _media_playlist(base, channel)
            if len(media.segments) >= n:
                return media
        time.sleep(0.5)
    raise AssertionError(f"channel {channel} has no {n} segments after {timeout} s")


def _player(url: str, seconds: int, log: Path) -> subprocess.Popen[str]:
    with log.open("w") as err:  # the child keeps its own descriptor
        return subprocess.Popen(
            [FFMPEG, "-nostdin", "-v", "warning", "-i", url, "-t", str(seconds), "-f", "null", "-"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )


def _warnings(log: Path) -> list[str]:
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    return [line for line in lines if not FFMPEG_REREADS_INIT.search(line)]


def test_an_encoder_ladder_plays_live_in_ffmpeg_through_restarts_bad_ingest_and_its_end(
    server: Server, tmp_path: Path
) -> None:
    base = server.base
    hls_ts = f"{base}/tv.isml/manifest(format=m3u8-aapl)"
    hls_fmp4 = f"{base}/tv.isml/manifest(format=m3u8-cmaf)"
    encoder = LiveEncoder(base, "tv", tmp_path, auth=("enc", SECRET))
    with encoder:
        first = _wait_for_segments(base, "tv", 3)
        status, master = _get(hls_ts)
        assert status == 200 and master.count("#EXT-X-STREAM-INF") == 4  # 3 videos + audio-only
        logs = [tmp_path / "ts.log", tmp_path / "fmp4.log"]
        started = time.monotonic()
        players = [_player(hls_ts, 30, logs[0]), _player(hls_fmp4, 30, logs[1])]

        # Bad ingest while they play: refused with its status, players unaffected.
        ingest = f"{base}/tv.isml/Streams(video_240p)"
        assert _post(ingest, b"\x00\x00\x00\x03junk" * 8)[0] == 400  # not a box
        assert _post(ingest, b"\x40\x00\x00\x00moov" + bytes(64))[0] == 413  # a 1 GiB box
        assert _post(f"{base}/tv.isml/Streams(x)", b"x", auth=None)[0] == 401
        assert _post(f"{base}/tv.isml/Streams(x)", b"x", auth="Bearer nope")[0] == 401

        # The encoder dies and comes back with its timeline from 0: players carry on.
        time.sleep(6)
        encoder.restart()  # SIGKILL, then a new ffmpeg
        for p in players:
            assert p.wait(timeout=90) == 0
        played = time.monotonic() - started
        assert played >= 20, played
        for log in logs:
            assert not _warnings(log), log.read_text()

        later = _media_playlist(base, "tv")
        assert later.media_sequence > first.media_sequence  # the window slid
        assert later.keys[0] is None or later.keys[0].method == "AES-128"
        ts_media = _media_playlist(base, "tv", "m3u8-aapl")
        assert ts_media.keys[0] is not None and ts_media.keys[0].method == "AES-128"
        assert "#EXT-X-DISCONTINUITY" in ts_media.dumps()  # the restart jumped back

        # The encoder stops cleanly: the playlists end and a player finishes on its own.
        encoder.stop()
        deadline = time.monotonic() + 15
        while not _media_playlist(base, "tv").is_endlist:
            assert time.monotonic() < deadline, "no EXT-X-ENDLIST after the encoder stopped"
            time.sleep(0.5)
        end_log = tmp_path / "end.log"
        assert _player(hls_ts, 600, end_log).wait(timeout=60) == 0
        assert not _warnings(end_log), end_log.read_text()
        status, mpd = _get(f"{base}/tv.isml/manifest(format=mpd-time-csf)")
        assert status == 200 and "mediaPresentationDuration" in mpd


def test_a_dash_if_cmaf_ingest_client_publishes_a_channel_ffmpeg_plays(
    server: Server, tmp_path: Path
) -> None:
    tracks = tracks_from_ffmpeg(tmp_path, 12, heights=(240, 360))
    client = CmafIngestClient(tracks)

    async def push() -> None:
        results = await client.run(server.base, "cmaf", auth=("enc", SECRET))
        assert all(not r.refused for r in results), results

    thread = threading.Thread(target=lambda: asyncio.run(push()), daemon=True)
    thread.start()
    media = _wait_for_segments(server.base, "cmaf", 2)
    assert media.segments
    log = tmp_path / "cmaf.log"
    url = f"{server.base}/cmaf.isml/manifest(format=m3u8-aapl)"
    assert _player(url, 8, log).wait(timeout=60) == 0
    assert not _warnings(log), log.read_text()
    thread.join(timeout=60)
    status, master = _get(f"{server.base}/cmaf.isml/manifest(format=m3u8-cmaf)")
    assert status == 200 and master.count("#EXT-X-STREAM-INF") >= 2


def test_a_redundant_encoder_takes_over_when_the_first_dies(server: Server, tmp_path: Path) -> None:
    """Two encoders push the same stream (the same source, the same timestamps, a second apart):
    the first fragment for a time wins; when the first encoder dies, the second one's fragments
    continue the timeline and players see no break."""
    one = ((426, 240, 300_000),)
    a = LiveEncoder(
        base := server.base, "cmaf", tmp_path / "a", auth=("enc", SECRET), renditions=one
    )
    b = LiveEncoder(base, "cmaf", tmp_path / "b", auth=("enc", SECRET), renditions=one)
    with a:
        time.sleep(1)
        with b:
            _wait_for_segments(base, "cmaf", 2)
            log = tmp_path / "player.log"
            player = _player(f"{base}/cmaf.isml/manifest(format=m3u8-aapl)", 20, log)
            time.sleep(4)
            a.kill()
            assert player.wait(timeout=60) == 0
            assert not _warnings(log), log.read_text()
            media = _media_playlist(base, "cmaf", "m3u8-aapl")
            assert "#EXT-X-DISCONTINUITY" not in media.dumps()
            status, master = _get(f"{base}/cmaf.isml/manifest(format=m3u8-aapl)")
            assert status == 200
            assert master.count("#EXT-X-STREAM-INF") == 2  # one video (not two) + audio-only
            durations = [s.duration for s in media.segments]
            assert all(abs(d - 2.0) < 0.05 for d in durations[:-1]), durations
