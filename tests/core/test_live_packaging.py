"""Live packaging: manifests and segments built from hand-made ChannelViews of the sample."""

from __future__ import annotations

import dataclasses
import subprocess
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import m3u8
import pytest

from origin.core import pipeline, urls
from origin.core.crypto import Aes128Cbc
from origin.core.errors import NotFoundError
from origin.core.live.model import ChannelView
from origin.core.mp4.defs import TFRF_UUID, TFXD_UUID
from origin.core.urls import Format, Options
from tests.support import fmp4_read
from tests.support.dash_check import NS, assert_valid_mpd
from tests.support.live_views import FIRST_NUMBER, SEGMENTS, SHIFT, T0, live_view, now_after
from tests.support.media import FFMPEG
from tests.support.smooth_client import expand_chunks

TS = Options(format=Format.HLS_TS)
CMAF = Options(format=Format.HLS_CMAF)
KEY = bytes(range(16))
UTC_URL = "https://origin.example/time"
# The key file has no media extension, which ffmpeg's HLS demuxer refuses for local files.
PLAY = (FFMPEG, "-nostdin", "-v", "warning", "-allowed_extensions", "ALL")


def playlist(view: ChannelView, track: str = "video", opts: Options = TS) -> m3u8.M3U8:
    rid = view.rendition(track, view.video[0].id if track == "video" else view.audio.id)  # type: ignore[union-attr]
    assert rid is not None
    return m3u8.loads(pipeline.live_media_playlist(view, track, rid.id, opts))


def test_master_playlists_describe_the_ladder_with_window_bandwidths() -> None:
    view = live_view()
    for opts in (TS, CMAF):
        master = m3u8.loads(pipeline.live_master_playlist(view, opts, query="t=1"))
        assert master.is_variant
        video = [p for p in master.playlists if p.stream_info.resolution]
        assert [p.stream_info.resolution[1] for p in video] == [240, 360, 480]
        for p, r in zip(video, view.video, strict=True):
            info = p.stream_info
            bw = r.bandwidth(ts=True) if opts is TS else r.bandwidth(ts=False)
            assert info.bandwidth > bw.peak and info.average_bandwidth > bw.average  # + audio
            assert info.codecs == f"{r.track.codec_string},{view.audio.track.codec_string}"  # type: ignore[union-attr]
            assert info.frame_rate == 24.0
            assert p.uri.endswith("?t=1")
        assert len(master.playlists) == 4  # the audio-only variant, as VOD
        assert bool(master.media) is (opts is CMAF)


def test_media_playlist_numbers_dates_and_no_endlist_while_live() -> None:
    view = live_view(1, 5)
    pl = playlist(view)
    assert pl.media_sequence == FIRST_NUMBER + 1
    assert pl.target_duration == 2 and not pl.is_endlist and pl.playlist_type is None
    first = view.video[0].segments[0]
    assert first.time == (SHIFT + 2) * urls.URL_TIMESCALE
    assert [s.program_date_time for s in pl.segments] == [
        T0 + timedelta(seconds=SHIFT + 2 * k) for k in range(1, 5)
    ]
    assert pl.segments[0].uri == urls.fragment_uri("video", first.time, TS)
    assert playlist(live_view(1, 5, ended=True)).is_endlist


def test_sliding_window_keeps_uris_and_sequence_numbers() -> None:
    for opts, track in ((TS, "video"), (CMAF, "video"), (CMAF, "audio")):
        before = playlist(live_view(0, 4), track, opts)
        after = playlist(live_view(1, 5, version=2), track, opts)
        assert after.media_sequence == before.media_sequence + 1
        numbered = {before.media_sequence + k: s.uri for k, s in enumerate(before.segments)}
        later = {after.media_sequence + k: s.uri for k, s in enumerate(after.segments)}
        assert all(numbered[n] == later[n] for n in numbered.keys() & later.keys())
        assert len(numbered.keys() & later.keys()) == 3


def test_discontinuity_keeps_its_tag_first_and_is_counted_once_slid_out() -> None:
    text = pipeline.live_media_playlist(live_view(1, 5, discontinuity_at=3), "video", 152122, TS)
    assert "#EXT-X-DISCONTINUITY-SEQUENCE" not in text
    assert [s.discontinuity for s in m3u8.loads(text).segments] == [False, False, True, False]
    first = playlist(live_view(3, 5, discontinuity_at=3))
    assert first.discontinuity_sequence in (None, 0) and first.segments[0].discontinuity
    slid = playlist(live_view(4, 5, discontinuity_at=3))
    assert slid.discontinuity_sequence == 1 and not slid.segments[0].discontinuity


def test_ts_video_waits_for_its_muxed_audio_unless_the_audio_is_gone() -> None:
    lagging = live_view(0, 5, audio=(0, 3))
    rid = lagging.video[0].id
    assert len(playlist(lagging).segments) == 3
    newest = lagging.video[0].segments[-1].time
    with pytest.raises(pipeline.NotYetAvailable):
        pipeline.live_segment(lagging, Format.HLS_TS, "video", rid, newest)
    assert len(playlist(lagging, opts=CMAF).segments) == 5  # CMAF video carries no audio
    gone = live_view(0, 5, audio=(0, 3), audio_connected=False)
    assert len(playlist(gone).segments) == 5
    assert pipeline.live_segment(gone, Format.HLS_TS, "video", rid, newest)
    no_audio = live_view(0, 5, audio=(0, 0))
    assert len(playlist(no_audio).segments) == 5


def test_segment_lookups_tell_not_yet_from_slid_out_from_unknown() -> None:
    view = live_view(1, 4)
    r = view.video[0]
    first, newest = r.segments[0].time, r.segments[-1].time
    with pytest.raises(pipeline.NotYetAvailable):
        pipeline.live_segment(view, Format.HLS_CMAF, "video", r.id, newest + 1)
    with pytest.raises(pipeline.SlidOut):
        pipeline.live_segment(view, Format.HLS_CMAF, "video", r.id, first - 1)
    with pytest.raises(NotFoundError) as inside:
        pipeline.live_segment(view, Format.HLS_CMAF, "video", r.id, first + 1)
    assert type(inside.value) is NotFoundError
    with pytest.raises(NotFoundError):
        pipeline.live_segment(view, Format.HLS_CMAF, "video", 7, first)
    ref = pipeline.live_segment_ref(view, Format.HLS_TS, "video", r.id, newest)
    assert ref.sequence == FIRST_NUMBER + 3


def _mpd(view: ChannelView, fmt: Format) -> ET.Element:
    text = pipeline.live_dash_manifest(
        view, Options(format=fmt), now=now_after(view), utc_timing_url=UTC_URL
    )
    assert_valid_mpd(text)
    return ET.fromstring(text)


def test_dynamic_mpd_lists_the_window_at_channel_times() -> None:
    view = live_view(1, 5)
    for fmt in (Format.DASH_CSF, Format.DASH_CMAF):
        root = _mpd(view, fmt)
        assert root.get("type") == "dynamic"
        assert root.get("availabilityStartTime") == "2026-12-02T03:00:00Z"
        assert root.get("minimumUpdatePeriod") == "PT1S"
        assert root.get("timeShiftBufferDepth") == "PT8S"
        assert root.get("suggestedPresentationDelay") == "PT4S"  # two 2 s segments
        assert "mediaPresentationDuration" not in root.attrib
        timing = root.find(f"{{{NS}}}UTCTiming")
        assert timing is not None and timing.get("value") == UTC_URL
        sets = root.findall(f".//{{{NS}}}AdaptationSet")
        s = sets[0].find(f"{{{NS}}}SegmentTemplate/{{{NS}}}SegmentTimeline/{{{NS}}}S")
        assert s is not None and int(s.get("t", "-1")) == view.video[0].segments[0].time
        assert len(sets[0].findall(f"{{{NS}}}Representation")) == 3  # sharing that timeline


def test_ended_mpd_stays_dynamic_with_a_duration_and_no_updates() -> None:
    root = _mpd(live_view(1, 5, ended=True), Format.DASH_CMAF)
    assert root.get("type") == "dynamic" and "minimumUpdatePeriod" not in root.attrib
    assert root.get("mediaPresentationDuration", "").startswith(f"PT{SHIFT // 60}M")


def _boxes(data: bytes) -> dict[str | bytes, list[fmp4_read.Box]]:
    """Every box by type (``uuid`` boxes by their user type)."""
    found: dict[str | bytes, list[fmp4_read.Box]] = {}

    def walk(box: fmp4_read.Box) -> None:
        for child in box.children:
            key = data[child.start + 8 : child.start + 24] if child.kind == "uuid" else child.kind
            found.setdefault(key, []).append(child)
            walk(child)

    walk(fmp4_read.walk(data))
    return found


def _tfrf_entries(data: bytes) -> list[tuple[int, int]]:
    (box,) = _boxes(data)[TFRF_UUID]
    body = box.start + 8 + 16 + 4
    count = data[body]
    out = []
    for k in range(count):
        pos = body + 1 + 16 * k
        out.append(
            (int.from_bytes(data[pos : pos + 8], "big"), int.from_bytes(data[pos + 8 : pos + 16]))
        )
    return out


def test_smooth_manifest_holds_back_the_newest_and_fragments_announce_the_next() -> None:
    view = live_view(1, 5)
    root = ET.fromstring(pipeline.live_smooth_manifest(view))
    assert root.get("IsLive") == "TRUE" and root.get("LookAheadFragmentCount") == "1"
    assert root.get("DVRWindowLength") == str(8 * urls.URL_TIMESCALE)
    for stream, r in zip(root.findall("StreamIndex"), (view.video[0], view.audio), strict=True):
        assert r is not None
        listed = expand_chunks(stream)
        assert listed == [(s.time, s.duration) for s in r.segments[:-1]]
        for k, (t, _) in enumerate(listed):
            frag = pipeline.live_segment(view, None, r.kind.value, r.id, t)
            boxes = _boxes(frag)
            assert TFXD_UUID in boxes and "tfdt" not in boxes
            nxt = r.segments[k + 1]
            assert _tfrf_entries(frag) == [(nxt.time, nxt.duration)]
        with pytest.raises(pipeline.NotYetAvailable):
            pipeline.live_segment(view, None, r.kind.value, r.id, r.segments[-1].time)


def test_ended_smooth_manifest_is_on_demand_with_every_fragment() -> None:
    view = live_view(1, 5, ended=True)
    root = ET.fromstring(pipeline.live_smooth_manifest(view))
    assert "IsLive" not in root.attrib and "DVRWindowLength" not in root.attrib
    video = root.findall("StreamIndex")[0]
    r = view.video[0]
    assert expand_chunks(video) == [(s.time, s.duration) for s in r.segments]
    last = pipeline.live_segment(view, None, "video", r.id, r.segments[-1].time)
    assert _tfrf_entries(last) == []


def _lagging(view: ChannelView) -> ChannelView:
    """``view`` with its top video rendition one segment behind the others."""
    top = view.video[-1]
    behind = dataclasses.replace(top, segments=top.segments[:-1])
    return dataclasses.replace(view, video=(*view.video[:-1], behind))


def test_smooth_lists_only_what_every_quality_level_can_serve() -> None:
    view = _lagging(live_view(1, 5))
    video = ET.fromstring(pipeline.live_smooth_manifest(view)).findall("StreamIndex")[0]
    assert len(expand_chunks(video)) == 2
    with pytest.raises(pipeline.NotYetAvailable):
        pipeline.live_smooth_manifest(live_view(4, 5))  # nothing but held-back fragments


def test_mpd_gives_a_lagging_representation_its_own_timeline() -> None:
    root = _mpd(_lagging(live_view(1, 5)), Format.DASH_CSF)
    video = root.findall(f".//{{{NS}}}AdaptationSet")[0]
    assert video.find(f"{{{NS}}}SegmentTemplate") is None
    counts = [
        len(rep.findall(f"{{{NS}}}SegmentTemplate/{{{NS}}}SegmentTimeline/{{{NS}}}S"))
        for rep in video.findall(f"{{{NS}}}Representation")
    ]
    assert counts == [1, 1, 1]  # one run each: 4, 4 and 3 segments of 2 s
    reps = video.findall(f"{{{NS}}}Representation")
    s = [r.find(f"{{{NS}}}SegmentTemplate/{{{NS}}}SegmentTimeline/{{{NS}}}S") for r in reps]
    assert [x.get("r") for x in s if x is not None] == ["3", "3", "2"]


def _write_hls(tmp: Path, view: ChannelView, track: str, rid: int, opts: Options) -> Path:
    """The playlist, the key and every segment it names, encrypted as the service does."""
    (tmp / "key.bin").write_bytes(KEY)
    text = pipeline.live_media_playlist(view, track, rid, opts, key_uri="key.bin")
    r = view.rendition(track, rid)
    assert r is not None
    cipher = Aes128Cbc(KEY)
    listed = m3u8.loads(text)
    # A player's implicit IV is the segment's media sequence: its position after the first's.
    wanted = {s.uri: listed.media_sequence + k for k, s in enumerate(listed.segments)}
    times = [urls.INIT] if opts is CMAF else []
    for t in [*times, *(s.time for s in r.segments)]:
        clear = pipeline.live_segment(view, opts.format, track, rid, t)
        ref = pipeline.live_segment_ref(view, opts.format, track, rid, t)
        body, iv = pipeline.encrypt_segment(ref, clear, cipher, None)
        uri = urls.fragment_uri(track, t, opts)
        assert iv == (wanted[uri].to_bytes(16, "big") if t != urls.INIT else b"")
        (tmp / uri).write_bytes(body)
    path = tmp / f"{track}.m3u8"
    path.write_text(text)
    return path


def _ffmpeg(source: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PLAY, "-i", str(source), "-f", "framecrc", "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def test_ts_segments_decode_alone(tmp_path: Path) -> None:
    view = live_view(2, 4)
    for r in view.renditions():
        seg = tmp_path / f"{r.kind.value}.ts"
        time = r.segments[0].time
        seg.write_bytes(pipeline.live_segment(view, Format.HLS_TS, r.kind.value, r.id, time))
        run = subprocess.run(
            [FFMPEG, "-nostdin", "-v", "error", "-i", str(seg), "-f", "null", "-"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0 and run.stderr == ""


@pytest.mark.parametrize("opts", [TS, CMAF], ids=["ts", "fmp4"])
def test_ended_encrypted_live_playlist_plays_through_ffmpeg(tmp_path: Path, opts: Options) -> None:
    view = live_view(1, SEGMENTS, ended=True)
    video = _write_hls(tmp_path, view, "video", view.video[0].id, opts)
    run = _ffmpeg(video)
    assert run.stderr.strip() == ""
    frames = [line for line in run.stdout.splitlines() if line.startswith("0,")]
    assert len(frames) == 4 * 48  # four 2 s segments at 24 fps
    if opts is TS:
        assert any(line.startswith("1,") for line in run.stdout.splitlines())  # muxed audio
    else:
        assert view.audio is not None
        audio = _ffmpeg(_write_hls(tmp_path, view, "audio", view.audio.id, opts))
        assert audio.stderr.strip() == "" and audio.stdout.count("\n0,") > 300


def test_next_available_is_when_the_next_pushed_segment_becomes_available_never_later() -> None:
    view = live_view()
    ends = sorted({s.end for r in view.renditions() for s in r.segments})
    # Just after the first segments ended: the rest are pushed but not yet available.
    now = T0 + timedelta(microseconds=ends[0] // 10 + 1)
    next_at = pipeline.live_next_available(view, now)
    assert next_at is not None
    assert next_at == T0 + timedelta(microseconds=ends[1] // 10)
    shown = pipeline.live_available_at(view, now)
    assert shown is not None
    assert pipeline.live_available_at(view, next_at - timedelta(microseconds=1)) == shown
    exact = T0 + timedelta(microseconds=-(-ends[1] // 10))  # the first instant it shows
    assert next_at <= exact
    assert pipeline.live_available_at(view, exact) != shown
    assert pipeline.live_next_available(view, now_after(view)) is None
