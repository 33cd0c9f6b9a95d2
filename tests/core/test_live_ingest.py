"""The incremental ingest parser on what ffmpeg really sends (ismv over HTTP, DASH segments)."""

from __future__ import annotations

import struct
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from origin.core.errors import IngestError, IngestTooLarge
from origin.core.live.ingest import Event, Header, StreamParser
from origin.core.live.model import Chunk
from origin.core.mp4.parse import parse_bytes
from tests.support.media import FFMPEG, make_mp4, probe_frames

ISMV = ("-f", "ismv", "-movflags", "isml+frag_keyframe")


@pytest.fixture(scope="session")
def ismv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ingest") / "live.ismv"
    return make_mp4(path, seconds=4, faststart=False, extra=ISMV)


@pytest.fixture(scope="session")
def dash_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ingest_dash")
    make_mp4(
        out / "manifest.mpd", seconds=4, faststart=False, extra=("-f", "dash", "-seg_duration", "2")
    )
    return out


def boxes(data: bytes) -> list[tuple[str, int, int]]:
    """(type, offset, size) of the top-level boxes."""
    out, pos = [], 0
    while pos < len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        out.append((kind.decode(), pos, size))
        pos += size
    return out


def parse_all(data: bytes, **kw: object) -> list[Event]:
    parser = StreamParser(**kw)  # type: ignore[arg-type]
    events = parser.feed(data)
    parser.close()
    return events


def chunks(events: list[Event]) -> list[Chunk]:
    return [e for e in events if isinstance(e, Chunk)]


def test_feeding_byte_by_byte_gives_what_feeding_the_whole_stream_gives(ismv: Path) -> None:
    data = ismv.read_bytes()
    parser = StreamParser()
    one_by_one: list[Event] = []
    for i in range(len(data)):
        one_by_one += parser.feed(data[i : i + 1])
    parser.close()
    whole = parse_all(data)
    assert one_by_one == whole
    assert isinstance(whole[0], Header) and len(chunks(whole)) == 4  # 2 GOPs x (video, audio)


def test_chunks_carry_the_samples_and_times_the_file_parser_finds(ismv: Path) -> None:
    data = ismv.read_bytes()
    movie = parse_bytes(data)
    events = parse_all(data)
    for track in movie.tracks:
        mine = [c for c in chunks(events) if c.track_id == track.track_id]
        s = track.samples
        # The file parser moves a negative start to 0 (pts_shift); ingest keeps the encoder's.
        assert [d for c in mine for d in c.samples.dts] == [d + track.pts_shift for d in s.dts]
        assert [x for c in mine for x in c.samples.cto] == list(s.cto)
        assert [x for c in mine for x in c.samples.duration] == list(s.duration)
        assert b"".join(c.payload for c in mine) == b"".join(
            data[o : o + n] for o, n in zip(s.offset, s.size, strict=True)
        )
        for c in mine:
            assert list(c.samples.offset) == [
                sum(c.samples.size[:i]) for i in range(len(c.samples))
            ]
            kf = [
                i + sum(len(p.samples) for p in mine[: mine.index(c)]) for i in c.samples.keyframes
            ]
            assert set(kf) <= set(s.keyframes)
        assert sum(len(c.samples.keyframes) for c in mine) == len(s.keyframes)
    video = [c for c in chunks(events) if c.track_id == movie.video()[0].track_id]
    assert all(c.samples.is_sync(0) for c in video)  # one fragment per GOP
    audio = [c for c in chunks(events) if c.track_id == movie.audio()[0].track_id]
    assert audio[0].start < 0  # ffmpeg's tfxd says the 1024 samples of AAC priming
    # ffprobe counts in the stream time base, the same 10 MHz; its demuxer moves presentation
    # later by the largest negative composition offset (ffmpeg writes trun v1), so compare
    # presentation times relative to the first.
    probed = probe_frames(str(ismv))[: len(video[0].samples)]
    s0 = video[0].samples
    assert [int(p["dts"]) for p in probed] == list(s0.dts)
    pts = [int(p["pts"]) for p in probed]
    assert [p - pts[0] for p in pts] == [
        d + c - s0.cto[0] - s0.dts[0] for d, c in zip(s0.dts, s0.cto, strict=True)
    ]
    assert [p["flags"].startswith("K") for p in probed] == [s0.is_sync(i) for i in range(len(s0))]


def test_a_chunk_is_emitted_when_the_last_byte_of_its_mdat_arrives(ismv: Path) -> None:
    data = ismv.read_bytes()
    mdat = next((off, size) for kind, off, size in boxes(data) if kind == "mdat")
    parser = StreamParser()
    events = parser.feed(data[: sum(mdat) - 1])
    assert [type(e) for e in events] == [Header]
    events = parser.feed(data[sum(mdat) - 1 : sum(mdat)])
    assert [type(e) for e in events] == [Chunk]


def test_the_header_announces_the_tracks_and_the_bitrates_of_the_isml_manifest(ismv: Path) -> None:
    data = ismv.read_bytes()
    header = parse_all(data)[0]
    assert isinstance(header, Header)
    by_kind = {t.track.kind.value: t for t in header.tracks}
    assert by_kind["video"].bitrate == 300_000 and by_kind["audio"].bitrate == 64_000
    assert all(len(t.track.samples) == 0 for t in header.tracks)
    assert all(t.track.timescale == 10_000_000 for t in header.tracks)


def test_a_resent_header_is_announced_again(ismv: Path) -> None:
    data = ismv.read_bytes()
    moov = next(data[o : o + n] for kind, o, n in boxes(data) if kind == "moov")
    events = parse_all(data[:-8] + moov + data[-8:])
    assert [type(e) for e in events][-1] is Header and events[-1] == events[0]


def test_uuid_mfra_free_and_unknown_boxes_are_skipped(ismv: Path) -> None:
    data = ismv.read_bytes()
    kinds = [k for k, _, _ in boxes(data)]
    assert kinds[:3] == ["ftyp", "uuid", "moov"] and kinds[-1] == "mfra"
    junk = (
        struct.pack(">I4s", 5000, b"free")
        + bytes(4992)
        + struct.pack(">I4s", 12, b"zzzz")
        + b"abcd"
    )
    moov = next(o + n for kind, o, n in boxes(data) if kind == "moov")
    parser = StreamParser()
    padded = data[:moov] + junk + data[moov:]
    events = []
    for i in range(0, len(padded), 1000):
        events += parser.feed(padded[i : i + 1000])
    parser.close()
    assert events == parse_all(data)
    assert len(parser._buf) < 1000  # the free box was discarded as it passed, not held


def test_a_stream_cut_inside_a_box_is_refused_at_close(ismv: Path) -> None:
    data = ismv.read_bytes()
    parser = StreamParser()
    parser.feed(data[:-4])
    with pytest.raises(
        IngestError, match=rf"stream ends with 4 stray bytes at offset {len(data) - 8}"
    ):
        parser.close()
    mdat = [o for kind, o, _ in boxes(data) if kind == "mdat"][1]
    parser = StreamParser()
    parser.feed(data[: mdat + 100])
    with pytest.raises(IngestError, match=rf"'mdat' at offset {mdat}"):
        parser.close()
    parser = StreamParser()
    parser.feed(data[:mdat])
    with pytest.raises(IngestError, match=r"after the moof at offset \d+: no mdat"):
        parser.close()


def test_a_box_over_the_limit_is_refused_as_too_large(ismv: Path) -> None:
    data = ismv.read_bytes()
    parser = StreamParser(max_box=50_000)
    assert [type(e) for e in parser.feed(data)] == [Header]  # what came before the big box
    with pytest.raises(IngestTooLarge, match=r"box 'mdat' at stream offset \d+ is \d+ bytes") as e:
        parser.close()
    assert e.value.status == 413
    with pytest.raises(IngestTooLarge):  # the connection stays refused
        parser.feed(b"")


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", r"not an MP4 stream: it starts with b'GET / HT'"),
        (
            b"\0\0\0\x10ftypisml" + bytes(4) + b"\0\0\0\x08\xff\xfe\x00\x01",
            r"no box header at stream offset 16",
        ),
        (struct.pack(">I4s", 4, b"ftyp"), r"box 'ftyp' at stream offset 0 has invalid size 4"),
        (struct.pack(">I4s", 0, b"mdat"), r"'mdat' at stream offset 0 runs to the end"),
        (struct.pack(">I4s", 16, b"moof") + bytes(8), r"moof at stream offset 0 before any moov"),
    ],
)
def test_garbage_is_refused_with_the_box_and_its_offset(stream: bytes, reason: str) -> None:
    with pytest.raises(IngestError, match=reason):
        StreamParser().feed(stream)


def test_a_moof_not_followed_by_its_mdat_is_refused(ismv: Path) -> None:
    data = ismv.read_bytes()
    _, moof, size = next(b for b in boxes(data) if b[0] == "moof")
    stream = data[: moof + size] + struct.pack(">I4s", 8, b"free") + data[moof + size :]
    with pytest.raises(IngestError, match=rf"moof at stream offset {moof} is followed by 'free'"):
        parse_all(stream)


def test_a_trun_pointing_outside_its_mdat_is_refused(ismv: Path) -> None:
    data = ismv.read_bytes()
    _, mdat, size = next(b for b in boxes(data) if b[0] == "mdat")
    short = struct.pack(">I4s", size - 100, b"mdat") + data[mdat + 8 : mdat + size - 100]
    with pytest.raises(IngestError, match=r"moof at stream offset \d+: track 1.*sample data up to"):
        parse_all(data[:mdat] + short)
    into_moof = bytearray(data)
    trun = data.index(b"trun")
    assert struct.unpack_from(">I", data, trun + 4)[0] & 1  # ffmpeg writes a data_offset
    struct.pack_into(">i", into_moof, trun + 12, 8)
    with pytest.raises(IngestError, match=r"track 1: a trun points at byte 8, before the mdat"):
        parse_all(bytes(into_moof))


def test_segments_posted_apart_from_their_header_parse_with_the_header_given(
    dash_dir: Path,
) -> None:
    init = (dash_dir / "init-stream0.m4s").read_bytes()
    segment = (dash_dir / "chunk-stream0-00002.m4s").read_bytes()
    header = parse_all(init)[0]
    assert isinstance(header, Header)
    assert header.tracks[0].bitrate == 300_000  # the btrt of -b:v 300k
    apart = chunks(parse_all(segment, tracks=header.tracks, defaults=header.defaults))
    together = parse_all(init + segment)
    assert apart == together[1:] and len(apart) == 1
    assert apart[0].start == 2 * header.tracks[0].track.timescale  # tfdt of the 2nd segment
    assert apart[0].samples.is_sync(0)


class _Capture(BaseHTTPRequestHandler):
    """Records each request and feeds its chunked body to a parser as it arrives."""

    seen: list[tuple[str, str, dict[str, str], list[Event], bytes]] = []

    def _handle(self) -> None:
        parser, events, body = StreamParser(), [], bytearray()
        assert self.headers["Transfer-Encoding"] == "chunked"
        while size := int(self.rfile.readline().split(b";")[0], 16):
            piece = self.rfile.read(size)
            self.rfile.readline()
            body += piece
            events += parser.feed(piece)
        self.rfile.readline()
        parser.close()
        self.seen.append((self.command, self.path, dict(self.headers), events, bytes(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = _handle  # noqa: N815 (http.server's handler names)

    def log_message(self, *args: object) -> None:
        pass


def test_ffmpeg_posts_the_ismv_stream_chunked_as_it_writes_the_file(ismv: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/ch.isml/Streams(s1)"
        src = "testsrc2=size=320x180:rate=25"
        auth = "Authorization: Bearer X\r\n"
        cmd = [FFMPEG, "-nostdin", "-v", "error", "-f", "lavfi", "-i", src,
               "-t", "1", "-c:v", "libx264", "-g", "25", *ISMV, "-headers", auth]  # fmt: skip
        subprocess.run([*cmd, url], check=True, timeout=30)
        subprocess.run([*cmd, "-y", str(ismv.with_name("posted.ismv"))], check=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    [(method, path, headers, events, body)] = _Capture.seen
    assert (method, path) == ("POST", "/ch.isml/Streams(s1)")
    assert headers["Authorization"] == "Bearer X"
    assert body == ismv.with_name("posted.ismv").read_bytes()
    assert events == parse_all(body) and len(chunks(events)) == 1


def test_tracks_of_a_codec_not_served_are_left_out_and_their_fragments_skipped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "three.mp4"
    src = "testsrc2=size=160x120:rate=25:duration=2"
    subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-f", "lavfi", "-i", src, "-f", "lavfi", "-i",
         "sine=sample_rate=48000:duration=2", "-map", "0", "-map", "1", "-map", "0",
         "-c:v:0", "libx264", "-c:v:1", "mpeg4", "-c:a", "aac", "-g", "25", "-f", "mp4",
         "-movflags", "frag_keyframe+empty_moov+default_base_moof", str(path)],
        check=True, timeout=30,
    )  # fmt: skip
    events = parse_all(path.read_bytes())
    header = events[0]
    assert isinstance(header, Header)
    assert [t.track.codec_string[:4] for t in header.tracks] == ["avc1", "mp4a"]
    assert {c.track_id for c in chunks(events)} == {t.track.track_id for t in header.tracks}
    assert sum(len(c.samples) for c in chunks(events) if c.track_id == 1) == 50


def test_fragments_before_a_bad_box_in_the_same_feed_are_kept(ismv: Path) -> None:
    data = ismv.read_bytes()
    end = [o + n for kind, o, n in boxes(data) if kind == "mdat"][1]
    parser = StreamParser()
    events = parser.feed(data[:end] + b"\0\0\0\x10\xff\xff\xff\xff" + bytes(8))
    assert events == parse_all(data)[:3]
    assert parser.error is not None and "no box header at stream offset" in str(parser.error)
    with pytest.raises(IngestError, match="no box header"):
        parser.feed(data[end:])


def test_the_mfra_an_encoder_writes_last_ends_the_stream(ismv: Path) -> None:
    data = ismv.read_bytes()
    mfra = next(o for kind, o, _ in boxes(data) if kind == "mfra")
    cut = StreamParser()
    cut.feed(data[:mfra])
    cut.close()
    assert not cut.ended  # a body that just stops: the encoder may come back
    whole = StreamParser()
    whole.feed(data)
    whole.close()
    assert whole.ended


def test_a_segment_with_the_lmsg_brand_ends_the_stream(ismv: Path) -> None:
    data = ismv.read_bytes()
    moof = next(o for kind, o, _ in boxes(data) if kind == "moof")
    plain = struct.pack(">I4s4sI4s", 20, b"styp", b"msdh", 0, b"msdh")
    last = struct.pack(">I4s4sI4s4s", 24, b"styp", b"msdh", 0, b"msdh", b"lmsg")
    for styp, ended in ((plain, False), (last, True)):
        parser = StreamParser()
        parser.feed(data[:moof] + styp)
        assert parser.ended is ended
