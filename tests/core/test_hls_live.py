"""Live (sliding-window) HLS media playlists, parsed back with the independent ``m3u8`` parser."""

import subprocess
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

import m3u8
import pytest

from origin.core.manifest import hls
from tests.support.media import FFMPEG

T0 = datetime(2026, 12, 2, 1, 0, 0, 250000, tzinfo=UTC)


def _channel(n: int, *, jump_at: int | None = None) -> list[hls.Segment]:
    """n 4 s segments of a channel, named by sequence number; a 1 h clock jump at ``jump_at``."""
    segs = []
    for i in range(n):
        when = (
            T0
            + timedelta(seconds=4 * i)
            + (timedelta(hours=1) if jump_at and i >= jump_at else timedelta(0))
        )
        segs.append(
            hls.Segment(
                Fraction(4),
                f"seg{i}.ts",
                program_date_time=when if i in (0, jump_at) else None,
                discontinuity=i == jump_at,
            )
        )
    return segs


def _window(segs: list[hls.Segment], first: int, size: int) -> str:
    """The playlist a server shows when segments [first, first + size) are in the window."""
    window = segs[first : first + size]
    if window[0].program_date_time is None:
        # The first listed segment carries its own wall-clock time, as the live index would give it.
        window[0] = hls.Segment(
            window[0].duration, window[0].uri, program_date_time=T0 + timedelta(seconds=4 * first)
        )
    removed = segs[:first]
    return hls.live_media_playlist(
        window,
        media_sequence=first,
        target=4,
        discontinuity_sequence=sum(s.discontinuity for s in removed),
    )


def test_live_playlist_has_no_endlist_no_playlist_type_and_the_first_sequence() -> None:
    pl = m3u8.loads(_window(_channel(20), 7, 5))
    assert not pl.is_endlist
    assert pl.playlist_type is None
    assert pl.media_sequence == 7
    assert pl.discontinuity_sequence is None  # absent means 0 (§4.3.3.3)
    assert pl.target_duration == 4
    assert [s.uri for s in pl.segments] == [f"seg{i}.ts" for i in range(7, 12)]


def test_sliding_window_keeps_each_sequence_number_on_the_same_uri() -> None:
    segs = _channel(30)
    seen: dict[int, str] = {}
    for first in range(0, 25):
        pl = m3u8.loads(_window(segs, first, 5))
        assert pl.target_duration == 4
        for n, s in enumerate(pl.segments, pl.media_sequence):
            assert seen.setdefault(n, s.uri) == s.uri
    assert seen == {n: f"seg{n}.ts" for n in range(29)}


def test_program_date_time_has_milliseconds_and_zone_and_parses_to_the_datetime() -> None:
    text = _window(_channel(10), 2, 4)
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-12-02T01:00:08.250Z\n" in text
    pl = m3u8.loads(text)
    assert pl.segments[0].current_program_date_time == T0 + timedelta(seconds=8)
    # m3u8 extrapolates the following segments from EXTINF: the times form one timeline.
    assert pl.segments[3].current_program_date_time == T0 + timedelta(seconds=20)


def test_program_date_time_keeps_a_non_utc_offset() -> None:
    when = datetime(2026, 12, 2, 3, 0, 0, 5000, tzinfo=timezone(timedelta(hours=2)))
    seg = hls.Segment(Fraction(2), "a.ts", program_date_time=when)
    text = hls.live_media_playlist([seg], media_sequence=0)
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-12-02T03:00:00.005+02:00\n" in text
    assert m3u8.loads(text).segments[0].program_date_time == when


def test_discontinuity_is_flagged_with_its_own_date_and_counted_once_it_slides_out() -> None:
    segs = _channel(20, jump_at=6)
    pl = m3u8.loads(_window(segs, 4, 5))
    assert [s.discontinuity for s in pl.segments] == [False, False, True, False, False]
    assert pl.discontinuity_sequence is None  # absent means 0 (§4.3.3.3)
    assert pl.segments[2].program_date_time == T0 + timedelta(seconds=24, hours=1)
    # The segment that starts the new timeline is now first: it keeps its tag.
    pl = m3u8.loads(_window(segs, 6, 5))
    assert pl.segments[0].discontinuity
    assert pl.discontinuity_sequence is None  # absent means 0 (§4.3.3.3)
    # Once it has slid out, the discontinuity sequence counts it.
    text = _window(segs, 7, 5)
    pl = m3u8.loads(text)
    assert pl.discontinuity_sequence == 1
    assert not any(s.discontinuity for s in pl.segments)
    assert text.index("#EXT-X-DISCONTINUITY-SEQUENCE:1") < text.index("#EXTINF")


def test_ended_live_playlist_gets_endlist_and_event_gets_its_type() -> None:
    segs = _channel(3)
    pl = m3u8.loads(hls.live_media_playlist(segs, media_sequence=0, target=4, ended=True))
    assert pl.is_endlist
    assert pl.playlist_type is None
    pl = m3u8.loads(hls.live_media_playlist(segs, media_sequence=0, target=4, event=True))
    assert pl.playlist_type == "event"
    assert not pl.is_endlist


def test_fixed_target_stays_even_when_the_window_holds_only_short_segments() -> None:
    segs = [hls.Segment(Fraction(2), "a.ts", program_date_time=T0)]
    assert (
        m3u8.loads(hls.live_media_playlist(segs, media_sequence=3, target=6)).target_duration == 6
    )


def test_segment_longer_than_the_fixed_target_is_refused() -> None:
    # §4.3.3.1 compares EXTINF rounded to the nearest integer: 4.499 s fits 4, 4.5 s does not.
    ok = [hls.Segment(Fraction(4499, 1000), "a.ts", program_date_time=T0)]
    assert m3u8.loads(hls.live_media_playlist(ok, media_sequence=0, target=4)).target_duration == 4
    bad = [hls.Segment(Fraction(9, 2), "a.ts", program_date_time=T0)]
    with pytest.raises(ValueError, match="target duration"):
        hls.live_media_playlist(bad, media_sequence=0, target=4)


def test_timeline_starts_need_a_program_date_time_and_it_must_have_a_zone() -> None:
    with pytest.raises(ValueError, match="program date time"):
        hls.live_media_playlist([hls.Segment(Fraction(4), "a.ts")], media_sequence=0)
    jump = [
        hls.Segment(Fraction(4), "a.ts", program_date_time=T0),
        hls.Segment(Fraction(4), "b.ts", discontinuity=True),
    ]
    with pytest.raises(ValueError, match="segment 1 "):
        hls.live_media_playlist(jump, media_sequence=0)
    naive = [hls.Segment(Fraction(4), "a.ts", program_date_time=datetime(2026, 1, 1))]
    with pytest.raises(ValueError, match="timezone"):
        hls.live_media_playlist(naive, media_sequence=0)


def test_live_fmp4_playlist_keeps_map_before_key_and_the_key_before_the_first_segment() -> None:
    text = hls.live_media_playlist(
        _channel(4), media_sequence=0, target=4, key=hls.Key("key?kid=1"), map_uri="init.mp4"
    )
    assert (
        text.index("#EXT-X-MAP") < text.index("#EXT-X-KEY") < text.index("#EXT-X-PROGRAM-DATE-TIME")
    )
    pl = m3u8.loads(text)
    assert pl.version == 6
    assert all(s.key is not None and s.key.uri == "key?kid=1" for s in pl.segments)


def test_ended_live_playlist_plays_through_ffmpeg(tmp_path: Path) -> None:
    # Three 2 s TS segments listed as a window that has slid to sequence 5, ended.
    # ffmpeg's own HLS muxer cuts the segments; its playlist is discarded for ours.
    encode = [FFMPEG, "-nostdin", "-v", "error", "-f", "lavfi"]
    encode += ["-i", "testsrc2=size=160x90:rate=25:duration=6", "-c:v", "libx264", "-g", "50"]
    encode += ["-f", "hls", "-hls_time", "2", "-hls_segment_filename", str(tmp_path / "seg%d.ts")]
    subprocess.run(
        [*encode, str(tmp_path / "ffmpeg.m3u8")],
        check=True,
    )
    segs = [
        hls.Segment(Fraction(2), f"seg{i}.ts", program_date_time=T0 if i == 0 else None)
        for i in range(3)
    ]
    playlist = tmp_path / "live.m3u8"
    playlist.write_text(hls.live_media_playlist(segs, media_sequence=5, target=2, ended=True))
    run = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "warning", "-i", str(playlist), "-f", "framecrc", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stderr.strip() == ""
    assert sum(1 for line in run.stdout.splitlines() if not line.startswith("#")) == 150
