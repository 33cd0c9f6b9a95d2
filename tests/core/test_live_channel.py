"""The live channel index: the grid, sequence numbers, audio cut at the grid, the window,
reconnects, redundant encoders, bad ingest and the end of a stream."""

from __future__ import annotations

from fractions import Fraction

import pytest

from origin.core.errors import IngestConflict, IngestError, IngestTooLarge
from origin.core.live.channel import Channel
from origin.core.live.connection import Connection
from origin.core.live.model import ChannelView
from tests.support.live_chunks import (
    AAC_FRAME,
    AUDIO_TS,
    FRAME,
    VIDEO_TS,
    audio_chunk,
    audio_header,
    sample_bytes,
    video_chunk,
    video_header,
)

T0 = 1_800_000_000.0  # wall clock of the tests' first fragment
GOP = 50  # frames: 2 s at 25 fps


class Encoder:
    """Pushes 2 s GOPs of video (and the audio of the same 2 s) into one connection."""

    def __init__(
        self, channel: Channel, stream: str = "s1", *, audio: bool = True, tracks: int = 1
    ) -> None:
        self.conn: Connection = channel.connect(stream)
        headers = [video_header(track_id=k + 1) for k in range(tracks)]
        if audio:
            headers.append(audio_header(track_id=tracks + 1))
        self.conn.header(headers)
        self.tracks = tracks
        self.audio = audio
        self.frame = 0
        self.audio_at = 0  # 48 kHz ticks

    def gop(self, now: float, *, frames: int = GOP, offset: int = 0) -> None:
        for k in range(self.tracks):
            self.conn.chunk(video_chunk(self.frame, frames, track_id=k + 1, offset=offset), now)
        self.frame += frames
        if self.audio:
            end = self.frame * FRAME * AUDIO_TS // VIDEO_TS
            n = -(-(end - self.audio_at) // AAC_FRAME)
            a_off = offset * AUDIO_TS // VIDEO_TS
            self.conn.chunk(
                audio_chunk(self.audio_at, n, track_id=self.tracks + 1, offset=a_off), now
            )
            self.audio_at += n * AAC_FRAME

    def run(self, seconds: int, start: float = T0) -> float:
        now = start
        for _ in range(seconds // 2):
            now += 2
            self.gop(now)
        return now


def channel(**kw: object) -> Channel:
    args: dict[str, object] = {"segment_duration": Fraction(4), "window": Fraction(40)}
    args.update(kw)
    return Channel("ch", **args)  # type: ignore[arg-type]


def view(ch: Channel) -> ChannelView:
    assert ch.view is not None
    return ch.view


def test_a_segment_is_published_by_the_fragment_that_reaches_the_duration() -> None:
    ch = channel()
    enc = Encoder(ch, audio=False)
    enc.gop(T0 + 2)
    assert ch.view is None  # 2 s of a 4 s segment
    enc.gop(T0 + 4)
    v = view(ch)
    (seg,) = v.video[0].segments
    assert (seg.number, seg.time, seg.duration) == (0, 0, 40_000_000)
    assert len(seg.track.samples) == 100 and seg.track.samples.keyframes.tolist() == [0, 50]


def test_a_source_cut_channel_takes_each_fragment_as_one_segment() -> None:
    ch = channel(source_cut=True)  # a looped VOD asset: its segments, not the grid's
    enc = Encoder(ch)
    enc.gop(T0 + 2)
    enc.gop(T0 + 5, frames=75)  # 3 s: ends off the grid of 4 s multiples
    enc.gop(T0 + 7)
    v = view(ch)
    assert [(s.number, s.time, s.duration) for s in v.video[0].segments] == [
        (0, 0, 20_000_000),
        (1, 20_000_000, 30_000_000),
        (2, 50_000_000, 20_000_000),
    ]
    assert [s.number for s in v.audio.segments] == [0, 1, 2]  # type: ignore[union-attr]


def test_published_payload_is_each_samples_own_bytes_in_order() -> None:
    ch = channel()
    Encoder(ch, audio=False).run(8)
    seg = view(ch).video[0].segments[1]
    s = seg.track.samples
    for i in (0, 37, 99):
        got = seg.payload[s.offset[i] : s.offset[i] + s.size[i]]
        assert got == sample_bytes("v", s.dts[i], s.size[i])


def test_renditions_share_numbers_and_times_on_one_grid() -> None:
    ch = channel()
    Encoder(ch, audio=False, tracks=3).run(12)
    v = view(ch)
    assert len(v.video) == 3
    grids = {tuple((s.number, s.time, s.duration) for s in r.segments) for r in v.video}
    assert len(grids) == 1
    assert [s.number for s in v.video[0].segments] == [0, 1, 2]


def test_a_rendition_with_keyframes_off_the_grid_is_refused() -> None:
    ch = channel()
    a = Encoder(ch, "a", audio=False)
    a.run(8)
    b = ch.connect("b")
    b.header([video_header()])
    b.chunk(video_chunk(0, 75), T0 + 9)  # 3 s GOPs: a segment 0..6 s, not 0..4 s
    with pytest.raises(IngestConflict, match="not aligned"):
        b.chunk(video_chunk(75, 75), T0 + 9)


def test_audio_is_cut_at_the_grid_times() -> None:
    ch = channel()
    Encoder(ch).run(12)
    v = view(ch)
    assert v.audio is not None
    video, audio = v.video[0].segments, v.audio.segments
    assert [s.number for s in audio] == [s.number for s in video]
    for a, vs in zip(audio, video, strict=True):
        assert abs(a.time - vs.time) < 10_000_000 * AAC_FRAME // AUDIO_TS
        assert abs(a.end - vs.end) < 10_000_000 * AAC_FRAME // AUDIO_TS
    frames = sum(len(a.track.samples) for a in audio)
    assert frames == -(-12 * AUDIO_TS // AAC_FRAME)


def test_the_window_slides_and_memory_stays_bounded() -> None:
    ch = channel()
    enc = Encoder(ch)
    enc.run(400)
    v = view(ch)
    numbers = [s.number for s in v.video[0].segments]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert numbers[-1] == 99
    assert len(numbers) == 10  # 40 s of 4 s segments
    assert v.audio is not None and v.audio.segments[0].number == numbers[0]
    held = sum(len(s.payload) for r in v.renditions() for s in r.segments)
    assert held < 11 * (100 * 200 + 200 * 50)


def test_wallclock_and_availability_start_follow_arrival() -> None:
    ch = channel()
    Encoder(ch, audio=False).run(8)
    v = view(ch)
    assert v.availability_start.timestamp() == pytest.approx(T0)
    seg = v.video[0].segments[1]
    assert seg.wallclock.timestamp() == pytest.approx(T0 + 4)


def test_a_reconnect_that_continues_the_timeline_has_no_break() -> None:
    ch = channel()
    enc = Encoder(ch)
    now = enc.run(8)
    enc.conn.close(now, clean=False)
    again = Encoder(ch)
    again.frame, again.audio_at = enc.frame, enc.audio_at
    again.run(8, now)
    v = view(ch)
    assert [s.discontinuity for s in v.video[0].segments] == [False] * 4
    assert v.video[0].segments[-1].end == 160_000_000


def test_an_encoder_restarted_at_zero_continues_at_the_live_edge_with_a_discontinuity() -> None:
    ch = channel()
    enc = Encoder(ch)
    now = enc.run(16)
    enc.conn.close(now, clean=False)
    now += 10  # ten seconds without an encoder
    Encoder(ch).run(8, now)
    segs = view(ch).video[0].segments
    times = [s.time for s in segs]
    assert times == sorted(times)
    after = [s for s in segs if s.time >= 160_000_000]
    assert after[0].discontinuity and after[0].epoch == 1
    assert not any(s.discontinuity for s in after[1:])
    # Placed at the wall clock: 26 s after channel time 0 (rounded up to a whole second).
    assert after[0].time == pytest.approx(260_000_000, abs=10_000_000)
    assert view(ch).audio is not None
    audio = view(ch).audio.segments  # type: ignore[union-attr]
    assert [s.number for s in audio] == [s.number for s in segs]


def test_a_redundant_encoder_s_duplicates_are_dropped() -> None:
    ch = channel()
    a, b = Encoder(ch), Encoder(ch)
    now = T0
    for _ in range(6):
        now += 2
        a.gop(now)
        b.gop(now + 0.1)
    v = view(ch)
    assert [s.number for s in v.video[0].segments] == [0, 1, 2]
    assert len(v.video) == 1
    assert v.audio is not None
    assert sum(len(s.track.samples) for s in v.audio.segments) == -(-12 * AUDIO_TS // AAC_FRAME)


def test_the_first_encoder_to_send_a_time_wins_and_the_other_continues_after_it_dies() -> None:
    ch = channel()
    a, b = Encoder(ch, audio=False), Encoder(ch, audio=False)
    now = a.run(8)
    b.run(8)
    a.conn.close(now, clean=False)
    b.run(8, now)
    numbers = [s.number for s in view(ch).video[0].segments]
    assert numbers == [0, 1, 2, 3]


def test_timestamps_going_backwards_in_one_connection_are_refused() -> None:
    ch = channel()
    enc = Encoder(ch, audio=False)
    enc.run(8)
    with pytest.raises(IngestError, match="backwards"):
        enc.conn.chunk(video_chunk(0, 50), T0 + 10)
    assert len(view(ch).video[0].segments) == 2  # what was indexed stays


def test_a_first_fragment_without_a_keyframe_is_refused() -> None:
    ch = channel()
    conn = ch.connect("s1")
    conn.header([video_header()])
    with pytest.raises(IngestError, match="keyframe"):
        conn.chunk(video_chunk(0, 50, keyframe_first=False), T0)


def test_fragments_without_keyframes_continue_the_open_segment() -> None:
    ch = channel()
    conn = ch.connect("s1")
    conn.header([video_header()])
    now = T0
    for k in range(8):  # 1 s fragments, a keyframe every other one
        now += 1
        conn.chunk(video_chunk(25 * k, 25, keyframe_first=k % 2 == 0), now)
    segs = view(ch).video[0].segments
    assert [(s.time, s.duration) for s in segs] == [(0, 40_000_000)]
    assert segs[0].track.samples.keyframes.tolist() == [0, 50]


def test_a_track_whose_codec_changes_is_refused() -> None:
    ch = channel()
    enc = Encoder(ch, audio=False)
    enc.run(4)
    with pytest.raises(IngestConflict, match="changed codec"):
        enc.conn.header([video_header(stsd=b"stsd-v2")])
    again = ch.connect("s1")
    with pytest.raises(IngestConflict):
        again.header([video_header(stsd=b"stsd-v2")])


def test_a_segment_larger_than_the_limit_is_refused() -> None:
    ch = channel(max_segment_bytes=15_000)
    conn = ch.connect("s1")
    conn.header([video_header()])
    with pytest.raises(IngestTooLarge):
        conn.chunk(video_chunk(0, 100), T0)


def test_a_clean_end_flushes_and_ends_the_channel() -> None:
    ch = channel()
    enc = Encoder(ch)
    now = enc.run(10)  # 10 s: two whole segments and 2 s pending
    assert not view(ch).ended
    enc.conn.close(now, clean=True)
    v = view(ch)
    assert v.ended
    assert [s.duration for s in v.video[0].segments] == [40_000_000, 40_000_000, 20_000_000]
    assert v.audio is not None and len(v.audio.segments) == 3


def test_a_dropped_connection_does_not_end_the_channel() -> None:
    ch = channel()
    enc = Encoder(ch)
    now = enc.run(8)
    enc.conn.close(now, clean=False)
    assert not view(ch).ended
    assert view(ch).video[0].connected  # it may be reconnecting: three segments' grace
    other = Encoder(ch, "s2", audio=False)
    other.frame = enc.frame
    other.run(8, now + 12)  # published 12 s later: s1 has been silent for over 3 segments
    s1 = next(r for r in view(ch).video if r.segments[0].number == 0)
    assert not s1.connected


def test_a_new_session_after_the_end_reopens_with_a_discontinuity() -> None:
    ch = channel()
    enc = Encoder(ch, audio=False)
    now = enc.run(8)
    enc.conn.close(now, clean=True)
    again = Encoder(ch, audio=False)
    again.frame = enc.frame
    again.run(8, now)
    v = view(ch)
    assert not v.ended
    assert [s.discontinuity for s in v.video[0].segments] == [False, False, True, False]


def test_audio_priming_before_zero_moves_the_channel_time_by_a_whole_second() -> None:
    ch = channel()
    conn = ch.connect("s1")
    conn.header([video_header(), audio_header()])
    conn.chunk(audio_chunk(0, 10, offset=-1024), T0)
    conn.chunk(video_chunk(0, 100), T0 + 4)
    conn.chunk(audio_chunk(9 * 1024, 200), T0 + 4)
    v = view(ch)
    assert v.video[0].segments[0].time == 10_000_000
    assert (
        v.audio is not None and v.audio.segments[0].time == 10_000_000 - 1024 * 10_000_000 // 48000
    )


def test_rendition_ids_are_the_declared_or_measured_bitrate_and_kept() -> None:
    ch = channel()
    Encoder(ch, audio=False, tracks=2).run(4)
    ids = [r.id for r in view(ch).video]
    assert ids[0] == 100 * 200 * 8 // 4 and ids[1] == ids[0] + 1


def test_status_reports_streams_lag_and_window() -> None:
    ch = channel()
    assert ch.status(T0).state == "idle"
    Encoder(ch).run(8)
    st = ch.status(T0 + 8.5)
    assert st.state == "live" and st.segments == 2
    (stream,) = st.streams
    assert stream.connections == 1 and stream.last_fragment == T0 + 8
    assert stream.lag == pytest.approx(0.5, abs=0.1)
    assert st.window == (0.0, 8.0)
