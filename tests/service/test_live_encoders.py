"""The test-side live encoders (tests/support/live_encoder.py, cmaf_ingest.py) against a capture
server: what they send, when, and how their bodies end, before any origin is involved."""

from __future__ import annotations

import asyncio
import base64
import itertools
import struct
from pathlib import Path

import pytest

from tests.support.capture import Captured, capture_server
from tests.support.cmaf_ingest import (
    CmafIngestClient,
    CmafTrack,
    read_tfdt,
    top_boxes,
    tracks_from_ffmpeg,
)
from tests.support.fmp4_read import walk
from tests.support.live_encoder import LiveEncoder, ladder_command

TFXD = bytes.fromhex("6d1d9b0542d544e680e2141daff757b2")


def moofs(rec: Captured) -> list[tuple[float, int, int]]:
    """(arrival time of its last byte, track_ID, tfxd time) of each moof in a captured body."""
    body = complete_boxes(rec.body)  # the capture may be mid-box while ffmpeg runs
    arrivals, pos = [], 0
    for t, chunk in rec.chunks:
        pos += len(chunk)
        arrivals.append((pos, t))
    out = []
    for box in walk(body).children:
        if box.kind != "moof":
            continue
        traf = box.find("traf")
        track = struct.unpack_from(">I", body, traf.find("tfhd").body + 4)[0]
        tfxd = next(c for c in traf.children if c.kind == "uuid" and body[c.body : c.body + 16])
        assert body[tfxd.body : tfxd.body + 16] == TFXD
        version = body[tfxd.body + 16]
        time = struct.unpack_from(">Q" if version else ">I", body, tfxd.body + 20)[0]
        arrived = next(t for end, t in arrivals if end >= box.end)
        out.append((arrived, track, time))
    return out


def complete_boxes(body: bytes) -> bytes:
    """The body up to the end of its last complete top-level box."""
    boxes = top_boxes(body, partial=True)
    return body[: boxes[-1][2]] if boxes else b""


def top_kinds(body: bytes) -> list[str]:
    return [b.kind for b in walk(complete_boxes(body)).children]


async def test_ladder_is_three_parallel_chunked_posts_arriving_in_real_time_and_stop_ends_them(
    tmp_path: Path,
) -> None:
    async with capture_server() as cap:
        with LiveEncoder(cap.base_url, "ch", tmp_path, bearer="s3cret") as enc:
            await cap.wait_for(lambda: len(cap.requests) == 3)
            opened = [r.started for r in cap.requests]
            await asyncio.sleep(5.5)
            status = await asyncio.to_thread(enc.stop)
        await cap.wait_for(lambda: all(r.ended for r in cap.requests))
    assert status == 255, enc.stderr()  # ffmpeg's status after SIGINT
    assert max(opened) - min(opened) < 0.5  # in parallel, not one after another
    assert sorted(r.path for r in cap.requests) == [
        f"/ch.isml/Streams(video_{h}p)" for h in (240, 360, 480)
    ]
    for rec in cap.requests:
        assert rec.method == "POST"
        assert rec.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in rec.headers
        assert rec.headers["Authorization"] == "Bearer s3cret"
        assert rec.complete, rec.error  # SIGINT: the zero chunk ends the body
        kinds = top_kinds(rec.body)
        assert kinds[:3] == ["ftyp", "uuid", "moov"]  # uuid: the isml live server manifest
        assert kinds[-1] == "mfra"  # the trailing boxes, written on a clean stop
        fragments = moofs(rec)
        video = [f for f in fragments if f[1] == 1]
        # Progressive: a fragment per 2 s GOP, each arriving about 2 s after the one before.
        assert len(video) >= 3
        gaps = [
            b[0] - a[0] for a, b in itertools.pairwise(video[:-1])
        ]  # the last: the stop's flush
        assert all(1.5 < g < 2.5 for g in gaps), gaps
        assert video[0][0] < rec.ended - 3  # the first arrived long before the end
        assert [f[2] for f in video[:3]] == [213340, 20213340, 40213340]  # aligned, 10 MHz
    first = next(r for r in cap.requests if "240p" in r.path)
    audio = [f for f in moofs(first) if f[1] == 2]
    assert audio and 0 <= audio[0][2] < 100  # AAC on the first rendition, starting at ~0


async def test_basic_credentials_are_sent_on_the_first_request_and_kill_truncates(
    tmp_path: Path,
) -> None:
    one = ((426, 240, 300_000),)
    async with capture_server() as cap:
        with LiveEncoder(cap.base_url, "ch", tmp_path, renditions=one, auth=("enc", "p@ss")) as enc:
            await cap.wait_for(lambda: len(cap.requests) == 1 and bool(cap.requests[0].chunks))
            await cap.wait_for(lambda: "moof" in top_kinds(cap.requests[0].body), timeout=5)
            status = await asyncio.to_thread(enc.kill)
        await cap.wait_for(lambda: bool(cap.requests[0].ended))
    assert status == -9
    (rec,) = cap.requests
    assert rec.headers["Authorization"] == "Basic " + base64.b64encode(b"enc:p@ss").decode()
    assert not rec.complete and rec.error  # the connection dropped mid-body
    assert "mfra" not in top_kinds(rec.body)


async def test_a_restarted_encoder_jumps_back_to_the_start_unless_told_to_continue(
    tmp_path: Path,
) -> None:
    one = ((426, 240, 300_000),)
    async with capture_server() as cap:
        with LiveEncoder(cap.base_url, "ch", tmp_path, renditions=one) as enc:
            for run in range(1, 4):
                await cap.wait_for(lambda: len(cap.requests) == run)  # noqa: B023
                await cap.wait_for(lambda: len(moofs(cap.requests[-1])) >= 2, timeout=6)
                if run == 1:
                    await asyncio.to_thread(enc.restart)
                elif run == 2:
                    await asyncio.to_thread(enc.restart, continue_timeline=True)
    runs = [[f[2] for f in moofs(r) if f[1] == 1] for r in cap.requests]
    assert runs[0][0] == runs[1][0] == 213340  # a new ffmpeg starts its timeline again
    # continue_timeline: offset by the wall time run 2 ran, so run 3 starts after run 2's last
    # complete fragment (killed mid-GOP, the partial one never arrived), within a GOP or so.
    after = runs[1][-1] + 20_000_000
    assert after <= runs[2][0] < after + 30_000_000, (runs, enc.stderr())


def test_ladder_command_sends_credentials_proactively() -> None:
    cmd = ladder_command("http://h:1", "c", auth=("u", "p/w"))
    assert cmd.count("-auth_type") == 3
    assert cmd[-1] == "http://u:p%2Fw@h:1/c.isml/Streams(video_480p)"
    assert cmd.count("-f") == 5  # 2 lavfi inputs + 3 ismv outputs
    offset = ladder_command("http://h:1", "c", ts_offset=60)
    assert offset.count("-output_ts_offset") == 3 and "60.021334" in offset
    bearer = ladder_command("http://h:1", "c", bearer="T")
    assert bearer.count("Authorization: Bearer T\r\n") == 3


@pytest.fixture(scope="module")
def cmaf_tracks(tmp_path_factory: pytest.TempPathFactory) -> list[CmafTrack]:
    return tracks_from_ffmpeg(tmp_path_factory.mktemp("cmaf"), 6)


def sequence(cap_requests: list[Captured], path: str) -> list[bytes]:
    return [r.body for r in cap_requests if r.path == path]


async def test_cmaf_client_posts_each_track_header_first_then_segments_in_real_time(
    cmaf_tracks: list[CmafTrack],
) -> None:
    async with capture_server() as cap:
        results = await CmafIngestClient(cmaf_tracks).run(cap.base_url, "ch", bearer="T")
    assert all(r.refused is None and set(r.statuses) == {200} for r in results)
    assert {r.path for r in cap.requests} == {
        "/ch.isml/Streams(video_240p)",
        "/ch.isml/Streams(video_360p)",
        "/ch.isml/Streams(audio)",
    }
    assert {r.method for r in cap.requests} == {"POST"}
    assert all(r.headers["Authorization"] == "Bearer T" for r in cap.requests)
    t0 = min(r.started for r in cap.requests)
    for track in cmaf_tracks:
        recs = [r for r in cap.requests if r.path == f"/ch.isml/Streams({track.name})"]
        assert recs[0].body == track.header and top_kinds(recs[0].body) == ["ftyp", "moov"]
        segments = [r.body for r in recs[1:]]
        assert segments == track.segments
        assert all(top_kinds(s) == ["styp", "moof", "mdat"] for s in segments)
        tfdts = [read_tfdt(s) for s in segments]
        assert tfdts == sorted(set(tfdts))
        # Paced: segment i is sent once its media time has passed (a live encoder's pace).
        for i, rec in enumerate(recs[1:]):
            due = sum(track.durations[: i + 1])
            assert due - 0.05 < rec.started - t0 < due + 0.5, (track.name, i)


async def test_cmaf_client_long_post_and_timeline_offset(cmaf_tracks: list[CmafTrack]) -> None:
    video = cmaf_tracks[:1]
    async with capture_server() as cap:
        client = CmafIngestClient(video, timeline_offset=6.0)
        await client.run(cap.base_url, "ch", realtime=False, mode="long-post", auth=("u", "p"))
    (rec,) = cap.requests
    assert rec.headers["Transfer-Encoding"] == "chunked" and rec.complete
    assert rec.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert rec.body == video[0].header + b"".join(client.segments(video[0]))
    shifted = [read_tfdt(s) for s in client.segments(video[0])]
    assert shifted == [read_tfdt(s) + 6 * video[0].timescale for s in video[0].segments]


async def test_cmaf_client_stops_on_4xx_and_retries_5xx_with_the_header_again(
    cmaf_tracks: list[CmafTrack],
) -> None:
    track = cmaf_tracks[0]
    path = f"/ch.isml/Streams({track.name})"
    # header ok, segment 0 -> 503, then header again and all fine
    async with capture_server({path: [200, 503, 200]}) as cap:
        (res,) = await CmafIngestClient([track], retry_delay=0).run(
            cap.base_url, "ch", realtime=False
        )
    assert res.retries == 1 and res.refused is None
    bodies = sequence(cap.requests, path)
    # (the capture server answers a refusal without reading the body)
    assert bodies == [track.header, b"", track.header, *track.segments]
    async with capture_server({path: [200, 403]}) as cap:
        (res,) = await CmafIngestClient([track]).run(cap.base_url, "ch", realtime=False)
    assert res.refused == 403 and res.statuses == [200, 403]
    assert len(cap.requests) == 2  # no retry after a 4xx


async def test_cmaf_client_long_post_reconnects_after_5xx_and_stops_on_4xx(
    cmaf_tracks: list[CmafTrack],
) -> None:
    track = cmaf_tracks[0]
    path = f"/ch.isml/Streams({track.name})"
    async with capture_server({path: [503, 200]}) as cap:
        (res,) = await CmafIngestClient([track], retry_delay=0).run(
            cap.base_url, "ch", realtime=False, mode="long-post"
        )
    assert res.retries == 1 and res.refused is None and res.statuses[-1] == 200
    last = cap.requests[-1]
    assert len(cap.requests) == 2 and last.complete
    assert last.body.startswith(track.header)  # the header again on the new connection
    # ... then from the segment in flight when the 503 came, to the end
    rest = last.body[len(track.header) :]
    assert rest in {b"".join(track.segments[i:]) for i in range(len(track.segments))}
    async with capture_server({path: [404]}) as cap:
        (res,) = await CmafIngestClient([track]).run(cap.base_url, "ch", mode="long-post")
    assert res.refused == 404 and len(cap.requests) == 1
