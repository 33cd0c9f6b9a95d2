"""The looped VOD channel: the sample ladder played on a fake wall clock across several loops,
fed into a real channel index, and the window's segments muxed and decoded by ffmpeg."""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import pytest

from origin.core.errors import MediaError
from origin.core.live.buffer import URL_SECOND, to_url
from origin.core.live.channel import Channel
from origin.core.live.connection import Connection
from origin.core.live.loop import LoopPiece, LoopSchedule, chunk_of, open_loop
from origin.core.live.model import ChannelView, LiveSegment
from origin.core.mp4 import parse_bytes
from origin.core.mux import Run, mpegts
from origin.core.plan import Span
from origin.core.presentation import Presentation, prepare
from origin.core.track import Movie
from tests.support.media import FFMPEG, probe_frames

SAMPLE = Path(__file__).parents[2] / "origin" / "sample"
T0 = 1_800_000_000.0  # wall clock when the channel is opened
WINDOW = Fraction(24)
FRAME = to_url(512, 12288)  # one video frame of the sample (24 fps), URL units
AAC_FRAME = to_url(1024, 48000)


def _files() -> list[bytes]:
    return [(SAMPLE / f"sample_{n}.mp4").read_bytes() for n in ("240p", "360p", "480p")]


FILES = _files()


def _presentation(movies: list[Movie] | None = None) -> Presentation:
    return prepare("sample", movies or [parse_bytes(f) for f in FILES], Fraction(4))


def _read(piece: LoopPiece) -> list[bytes]:
    return [FILES[s.file][s.offset : s.offset + s.size] for s in piece.spans]


@dataclass
class Played:
    """What a fake-clock run fed and what the channel published."""

    channel: Channel
    schedule: LoopSchedule
    pieces: list[LoopPiece] = field(default_factory=list)
    views: list[ChannelView] = field(default_factory=list)

    def segments(self, kind: str, rid: int) -> list[LiveSegment]:
        """Every segment of a rendition ever published, by number."""
        seen: dict[int, LiveSegment] = {}
        for v in self.views:
            r = v.rendition(kind, rid)
            if r is not None:
                seen.update((s.number, s) for s in r.segments)
        return [seen[n] for n in sorted(seen)]


def play(
    presentation: Presentation, seconds: float, *, window: Fraction = WINDOW, now: float = T0
) -> Played:
    channel, schedule = open_loop("loop", presentation, window=window, now=now)
    conns: dict[str, Connection] = {}
    for sid, tracks in schedule.headers().items():
        conns[sid] = channel.connect(sid)
        conns[sid].header(tracks)
    out = Played(channel, schedule)
    while now <= T0 + seconds:
        for piece in schedule.due(now, window=float(window)):
            conns[piece.stream_id].chunk(chunk_of(piece, _read(piece)), now)
            out.pieces.append(piece)
            assert channel.view is not None
            out.views.append(channel.view)
        now = schedule.next_due()
    return out


@pytest.fixture(scope="module")
def sample() -> Presentation:
    return _presentation()


@pytest.fixture(scope="module")
def played(sample: Presentation) -> Played:
    return play(sample, 40)  # the window starts full: 64 s of channel time, six wraps


def test_the_loop_lasts_the_video_rounded_to_whole_milliseconds(sample: Presentation) -> None:
    schedule = LoopSchedule(sample, start=T0)
    assert schedule.period == Fraction(10)  # 240 frames at 24 fps; the audio ends there too
    assert schedule.target == 4
    for loop in (1, 7, 10**6):
        for r in (*sample.video, sample.audio):
            assert r is not None
            ts = r.track.timescale
            assert abs(schedule.shift(r.track, loop) - loop * schedule.period * ts) <= Fraction(
                1, 2
            )


def test_each_rendition_is_a_stream_announced_with_its_vod_id(sample: Presentation) -> None:
    headers = LoopSchedule(sample, start=T0).headers()
    ids = [r.id for r in sample.video]
    assert list(headers) == [f"loop-{rid}" for rid in ids]
    first = headers[f"loop-{ids[0]}"]
    assert [(st.track.kind.value, st.bitrate) for st in first] == [
        ("video", ids[0]),
        ("audio", sample.audio.id if sample.audio else 0),
    ]
    assert all(len(st.track.samples) == 0 for sts in headers.values() for st in sts)


def test_the_video_timeline_runs_on_across_loops(played: Played, sample: Presentation) -> None:
    grids = []
    for r in sample.video:
        segs = played.segments("video", r.id)
        assert segs[-1].end > 5 * 10 * URL_SECOND  # past five loop boundaries
        numbers = [s.number for s in segs]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        for a, b in itertools.pairwise(segs):
            assert a.end <= b.time <= a.end + FRAME, (a.number, a.end, b.time)
            # Decode times continue exactly: the period is whole ticks of 12288 Hz.
            sa, sb = a.track.samples, b.track.samples
            assert sb.dts[0] == sa.dts[-1] + sa.duration[-1]
        grids.append([(s.number, s.time, s.duration) for s in segs])
    assert all(g == grids[0] for g in grids)  # every rendition on the same grid
    wraps = {s.time for s in played.segments("video", sample.video[0].id)}
    assert {100_000_000, 200_000_000, 300_000_000} <= wraps  # segments start at each wrap


def test_the_audio_is_continuous_across_loops(played: Played, sample: Presentation) -> None:
    assert sample.audio is not None
    video = {s.number for s in played.segments("video", sample.video[0].id)}
    segs = played.segments("audio", sample.audio.id)
    assert {s.number for s in segs} <= video
    assert len(segs) >= len(video) - 1
    for a, b in itertools.pairwise(segs):
        assert b.number == a.number + 1
        sa, sb = a.track.samples, b.track.samples
        gap = sb.dts[0] - (sa.dts[-1] + sa.duration[-1])
        assert 0 <= gap <= 1024, (a.number, gap)  # within one AAC frame, never overlapping
        assert abs(b.time - a.end) <= AAC_FRAME


def test_segments_carry_the_vod_segments_bytes(played: Played, sample: Presentation) -> None:
    for r in sample.video:
        s, data = r.track.samples, FILES[r.file]
        vod = {}
        for k in range(len(r.seg)):
            a, b = r.seg.bounds(k)
            vod[r.times[k]] = b"".join(
                data[s.offset[i] : s.offset[i] + s.size[i]] for i in range(a, b)
            )
        for seg in played.segments("video", r.id):
            assert seg.payload == vod[seg.time % (10 * URL_SECOND)]


def test_the_window_stays_bounded(played: Played) -> None:
    for v in played.views:
        for r in v.renditions():
            span = r.segments[-1].end - r.segments[0].time
            assert span <= (WINDOW + 4) * URL_SECOND
    last = played.views[-1]
    assert last.video[0].segments[-1].end - last.video[0].segments[0].time >= (WINDOW - 4) * 10**7


def test_the_window_is_full_from_the_first_request(sample: Presentation) -> None:
    p = play(sample, 0)
    segs = p.views[-1].video[0].segments
    assert segs[0].time == 0 and segs[-1].end == WINDOW * URL_SECOND


def test_pieces_are_returned_once_in_time_order(played: Played, sample: Presentation) -> None:
    keys = [(p.stream_id, p.track_id, p.loop, p.start) for p in played.pieces]
    assert len(keys) == len(set(keys))
    ends = [p.media_end for p in played.pieces]
    assert ends == sorted(ends)
    per_loop = len(sample.video) * len(sample.video[0].seg) + len(sample.audio.seg)  # type: ignore[union-attr]
    loops = {p.loop for p in played.pieces}
    for loop in sorted(loops)[:-1]:
        assert sum(p.loop == loop for p in played.pieces) == per_loop
    # Video before the audio of the same time.
    assert [p.track_id for p in played.pieces[:4]] == [1, 1, 1, 2]


def test_due_after_a_long_pause_returns_only_the_window(sample: Presentation) -> None:
    schedule = LoopSchedule(sample, start=T0)
    assert schedule.due(T0 + 30, window=24)
    later = schedule.due(T0 + 3600, window=24)
    assert later and all(3576 < p.media_end <= 3600 for p in later)
    fresh = LoopSchedule(sample, start=T0).due(T0 + 3600)
    expected = [(p.stream_id, p.loop, p.start) for p in fresh if p.media_end > 3576]
    assert [(p.stream_id, p.loop, p.start) for p in later] == expected
    assert schedule.due(T0 + 3600, window=24) == []
    nxt = schedule.next_due()
    assert nxt > T0 + 3600 and schedule.due(nxt, window=24)


def test_a_chunk_holds_exactly_its_samples_shifted(sample: Presentation) -> None:
    schedule = LoopSchedule(sample, start=T0)
    pieces = [p for p in schedule.due(T0 + 30) if p.loop == 2 and p.track_id == 1]
    piece = pieces[1]
    chunk = chunk_of(piece, _read(piece))
    s = piece.track.samples
    r = next(r for r in sample.video if r.track is piece.track)
    data = FILES[r.file]
    a, b = piece.start, piece.stop
    assert chunk.payload == b"".join(
        data[s.offset[i] : s.offset[i] + s.size[i]] for i in range(a, b)
    )
    c = chunk.samples
    assert list(c.dts) == [d + 2 * 10 * 12288 for d in s.dts[a:b]]
    for j in range(len(c)):
        i = a + j
        assert (
            chunk.payload[c.offset[j] : c.offset[j] + c.size[j]]
            == data[s.offset[i] : s.offset[i] + s.size[i]]
        )
    assert [c.is_sync(j) for j in range(len(c))] == [s.is_sync(i) for i in range(a, b)]
    short = [d[:-1] for d in _read(piece)]
    with pytest.raises(MediaError):
        chunk_of(piece, short)


def test_an_audio_only_asset_loops_on_the_audio(sample: Presentation) -> None:
    movie = parse_bytes(FILES[0])
    alone = dataclasses.replace(movie, tracks=tuple(movie.audio()))
    p = play(_presentation([alone]), 30)
    assert p.schedule.period == Fraction(10)
    au = p.views[-1].audio
    assert au is not None and not p.views[-1].video
    segs = p.segments("audio", au.id)
    assert segs[-1].end > 4 * 10 * URL_SECOND
    for a, b in itertools.pairwise(segs):
        assert b.number == a.number + 1
        assert abs(b.time - a.end) <= AAC_FRAME


def _ts_window(view: ChannelView, out: Path) -> Iterator[Path]:
    audio = {s.number: s for s in view.audio.segments} if view.audio else {}
    for seg in view.video[-1].segments:
        a = audio.get(seg.number)
        path = out / f"{seg.number}.ts"
        path.write_bytes(mpegts.mux_segment(_run(seg), _run(a) if a else None, sequence=seg.number))
        yield path


def _run(seg: LiveSegment) -> Run:
    s, view = seg.track.samples, memoryview(seg.payload)
    return Run(
        seg.track, 0, len(s), [view[o : o + n] for o, n in zip(s.offset, s.size, strict=True)]
    )


def test_the_window_decodes_cleanly_across_the_wrap(played: Played, tmp_path: Path) -> None:
    view = played.views[-1]
    segs = view.video[-1].segments
    assert any(s.time % (10 * URL_SECOND) == 0 and s.time > segs[0].time for s in segs)
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{view.target}"]
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{segs[0].number}")
    for seg, path in zip(segs, _ts_window(view, tmp_path), strict=True):
        lines += [f"#EXTINF:{seg.duration / URL_SECOND:.6f},", path.name]
    lines.append("#EXT-X-ENDLIST")
    playlist = tmp_path / "index.m3u8"
    playlist.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "warning", "-i", str(playlist), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0
    assert proc.stderr.strip() == ""
    # The demuxed timestamps run on across the wrap: decode times rise by at most a frame.
    for stream, frame in (("v", 1 / 24), ("a", 1024 / 48000)):
        dts = [int(row["dts"]) / 90_000 for row in probe_frames(str(playlist), stream)]
        steps = [b - a for a, b in itertools.pairwise(dts)]
        assert dts[-1] - dts[0] > 15 and min(steps) > 0 and max(steps) <= frame + 1e-4, stream


def test_spans_cover_every_sample_once(sample: Presentation) -> None:
    schedule = LoopSchedule(sample, start=T0)
    for piece in schedule.due(T0 + 10):
        s = piece.track.samples
        for i in range(piece.start, piece.stop):
            inside = [
                sp
                for sp in piece.spans
                if sp.offset <= s.offset[i] and s.offset[i] + s.size[i] <= sp.offset + sp.size
            ]
            assert len(inside) == 1
        assert all(isinstance(sp, Span) for sp in piece.spans)
