"""The MP4 parser, against ffprobe as an oracle and against hand-built boxes for the corners."""

from __future__ import annotations

import hashlib
import subprocess
from itertools import accumulate
from pathlib import Path

import pytest

from origin.core.errors import MediaError
from origin.core.mp4 import Need, drive, parse_bytes, parse_movie
from origin.core.mp4.codecs import parse_asc, parse_avcc, parse_esds
from origin.core.track import AacConfig, AvcConfig, Kind, Movie
from tests.support.media import FFMPEG, make_mp4
from tests.support.mp4_build import (
    ASC_LC_48K,
    AVCC,
    DATA_START,
    FTYP,
    PPS,
    SPS,
    Sparse,
    avc1,
    bits,
    box,
    ctts,
    elst,
    esds,
    ffprobe,
    full,
    hexdump_bytes,
    movie_file,
    mp4a,
    rewrite_moov,
    simple_video,
    stco,
    stsc,
    stss,
    stsz,
    stts,
    stz2,
    to_co64,
    to_stz2,
    top_level,
    trak,
    u8,
    u16,
    u32,
    u64,
)

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def co64_mp4(moov_at_end_mp4: Path, media_dir: Path) -> Path:
    """The moov-at-end file with every stco rewritten as a co64 (same offsets)."""
    data = rewrite_moov(moov_at_end_mp4.read_bytes(), to_co64(0))
    assert b"co64" in data and b"stco" not in data
    path = media_dir / "co64.mp4"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def stz2_mp4(moov_at_end_mp4: Path, media_dir: Path) -> Path:
    """The moov-at-end file with every stsz rewritten as a 16-bit stz2."""
    data = rewrite_moov(moov_at_end_mp4.read_bytes(), to_stz2)
    assert b"stz2" in data and b"stsz" not in data
    path = media_dir / "stz2.mp4"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def tagged_mp4(media_dir: Path) -> Path:
    """No B-frames (no ctts), 4:3 pixels (pasp), languages set, 44.1 kHz audio."""
    return make_mp4(
        media_dir / "tagged.mp4", seconds=2, bframes=0, sample_rate=44100,
        extra=("-vf", "setsar=4/3", "-metadata:s:v:0", "language=fra",
               "-metadata:s:a:0", "language=eng"),
    )  # fmt: skip


@pytest.fixture(scope="session")
def hevc_mp4(media_dir: Path) -> Path:
    path = media_dir / "hevc.mp4"
    subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-y", "-f", "lavfi",
         "-i", "testsrc2=size=64x64:rate=10:duration=0.5", "-c:v", "libx265", "-preset",
         "ultrafast", "-x265-params", "log-level=error", "-tag:v", "hvc1", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="session")
def subtitled_mp4(bframes_mp4: Path, media_dir: Path) -> Path:
    """The B-frame file plus a mov_text subtitle track (handler 'sbtl'/'text')."""
    srt = media_dir / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    path = media_dir / "subtitled.mp4"
    subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-y", "-i", str(bframes_mp4), "-i", str(srt),
         "-map", "0", "-map", "1", "-c", "copy", "-c:s", "mov_text", str(path)],
        check=True,
    )  # fmt: skip
    return path


# --------------------------------------------------------------------------- ffprobe oracle

AVC_PROFILES = {"Baseline": 66, "Constrained Baseline": 66, "Main": 77, "High": 100}
ORACLE_FILES = ["bframes_mp4", "moov_at_end_mp4", "co64_mp4", "stz2_mp4", "tagged_mp4"]


@pytest.mark.parametrize("name", ORACLE_FILES)
def test_stream_properties_match_ffprobe(name: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(name)
    movie = parse_bytes(path.read_bytes())
    streams = ffprobe(path, "-show_streams", "-show_data")["streams"]
    assert [t.track_id for t in movie.tracks] == [int(s["id"], 16) for s in streams]
    for track, s in zip(movie.tracks, streams, strict=True):
        assert s["time_base"] == f"1/{track.timescale}"
        assert track.language == s["tags"]["language"]
        extradata = hexdump_bytes(s["extradata"])
        if track.kind is Kind.VIDEO:
            assert isinstance(track.codec, AvcConfig)
            assert s["codec_name"] == "h264"
            assert (track.width, track.height) == (s["width"], s["height"])
            assert "{}:{}".format(*track.par) == s["sample_aspect_ratio"]
            assert track.codec.profile == AVC_PROFILES[s["profile"]]
            assert track.codec.level == s["level"]
            assert track.codec_string == f"avc1.{AVC_PROFILES[s['profile']]:02x}00{s['level']:02x}"
            assert track.codec.nal_length_size == int(s["nal_length_size"]) == 4
            assert track.codec.record == extradata
        else:
            assert isinstance(track.codec, AacConfig)
            assert (s["codec_name"], s["profile"]) == ("aac", "LC")
            assert track.codec_string == "mp4a.40.2"
            assert track.sample_rate == track.codec.sample_rate == int(s["sample_rate"])
            assert track.channels == s["channels"]
            assert track.codec.asc == extradata


@pytest.mark.parametrize("name", ORACLE_FILES)
def test_every_packet_matches_ffprobe(name: str, request: pytest.FixtureRequest) -> None:
    """Count, dts/pts after the edit-list shift, duration, size, offset, key flag, payload MD5."""
    path: Path = request.getfixturevalue(name)
    data = path.read_bytes()
    movie = parse_bytes(data)
    for index, track in enumerate(movie.tracks):
        packets = ffprobe(
            path, "-select_streams", str(index), "-show_data_hash", "MD5",
            "-show_entries", "packet=pts,dts,duration,size,flags,pos,data_hash",
        )["packets"]  # fmt: skip
        s = track.samples
        assert len(s) == len(packets) > 0
        for i, p in enumerate(packets):
            # ffprobe reports the stream time base (1/mdhd timescale) with the edit list applied.
            assert p["dts"] == s.dts[i] + track.pts_shift
            assert p["pts"] == track.pts(i)
            assert p["duration"] == s.duration[i]
            assert int(p["size"]) == s.size[i]
            assert int(p["pos"]) == s.offset[i]
            assert ("K" in p["flags"]) == s.is_sync(i)
            payload = data[s.offset[i] : s.offset[i] + s.size[i]]
            assert p["data_hash"] == "MD5:" + hashlib.md5(payload).hexdigest()


def test_bframes_give_ctts_offsets_and_edit_list_shifts_first_frame_to_zero(
    bframes_mp4: Path,
) -> None:
    video, audio = parse_bytes(bframes_mp4.read_bytes()).tracks
    frame = video.samples.duration[0]
    assert video.pts_shift == -2 * frame  # ffmpeg's elst media_time for 2 B-frames
    assert min(video.pts(i) for i in range(len(video.samples))) == 0
    assert any(c != video.samples.cto[0] for c in video.samples.cto)
    assert audio.pts_shift == -1024  # AAC encoder priming
    assert video.samples.keyframes[:2].tolist() == [0, 50]


def test_no_ctts_means_zero_composition_offsets(tagged_mp4: Path) -> None:
    video = parse_bytes(tagged_mp4.read_bytes()).video()[0]
    assert set(video.samples.cto) == {0}
    assert video.pts_shift == 0


def test_moov_at_end_costs_header_reads_plus_the_moov(moov_at_end_mp4: Path) -> None:
    data = moov_at_end_mp4.read_bytes()
    boxes = list(top_level(data))
    assert boxes[-1][0] == "moov"
    mdat = next((at, size) for kind, at, size in boxes if kind == "mdat")
    moov_at, moov_size = boxes[-1][1:]
    needs: list[tuple[int, int]] = []

    def read(offset: int, size: int) -> bytes:
        needs.append((offset, size))
        return data[offset : offset + size]

    drive(parse_movie(len(data)), read)
    assert (moov_at, moov_size) in needs
    small = [n for n in needs if n != (moov_at, moov_size)]
    assert all(size <= 16 for _, size in small)
    assert len(small) == len(boxes)
    assert not any(mdat[0] + 16 <= off < mdat[0] + mdat[1] for off, _ in small)
    assert sum(size for _, size in needs) <= moov_size + 16 * len(boxes) < len(data) // 10


def test_reader_may_return_more_than_asked_and_saves_requests(bframes_mp4: Path) -> None:
    data = bframes_mp4.read_bytes()
    exact: list[int] = []
    ahead: list[int] = []

    def read_exact(offset: int, size: int) -> bytes:
        exact.append(offset)
        return data[offset : offset + size]

    def read_ahead(offset: int, size: int) -> bytes:
        ahead.append(offset)
        return data[offset : offset + max(size, 1 << 16)]

    expected = drive(parse_movie(len(data)), read_exact)
    assert drive(parse_movie(len(data)), read_ahead) == expected == parse_bytes(data)
    assert len(ahead) < len(exact)


def test_parser_asks_for_a_header_first() -> None:
    gen = parse_movie(10_000)
    assert next(gen) == Need(0, 16)
    with pytest.raises(MediaError, match="not an MP4"):
        gen.send(b"\x89PNG\r\n\x1a\n" + bytes(8))


def test_short_read_means_truncated(moov_at_end_mp4: Path) -> None:
    data = moov_at_end_mp4.read_bytes()
    cut = data[: len(data) // 2]
    with pytest.raises(MediaError, match="truncated"):
        drive(parse_movie(len(data)), lambda offset, size: cut[offset : offset + size])


@pytest.mark.parametrize("keep", [0.5, 0.999, 20, 36])
def test_truncated_file_is_a_media_error(keep: float, moov_at_end_mp4: Path) -> None:
    data = moov_at_end_mp4.read_bytes()
    n = int(len(data) * keep) if keep < 1 else int(keep)
    with pytest.raises(MediaError, match="truncated"):
        parse_bytes(data[:n])


def test_truncated_mdat_with_moov_first_is_a_media_error(bframes_mp4: Path) -> None:
    data = bframes_mp4.read_bytes()
    with pytest.raises(MediaError, match="truncated"):
        parse_bytes(data[: len(data) - 100])


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, this is plain text and not a movie", b"\x89PNG\r\n\x1a\n" + bytes(100),
     b"\x47\x40\x00\x10" + bytes(184), bytes(64)],
    ids=["empty", "text", "png", "ts", "zeros"],
)  # fmt: skip
def test_non_mp4_is_a_media_error(data: bytes) -> None:
    with pytest.raises(MediaError, match="not an MP4"):
        parse_bytes(data)


def test_ftyp_without_moov_is_a_media_error() -> None:
    with pytest.raises(MediaError, match="no moov"):
        parse_bytes(FTYP + box("mdat", bytes(100)))


def test_hevc_is_rejected_naming_the_codec(hevc_mp4: Path) -> None:
    with pytest.raises(MediaError, match="unsupported codec 'hvc1' in track 1"):
        parse_bytes(hevc_mp4.read_bytes())


def test_encrypted_sample_entry_is_rejected(bframes_mp4: Path) -> None:
    data = bframes_mp4.read_bytes().replace(b"avc1\x00\x00\x00\x00\x00\x00", b"encv" + bytes(6), 1)
    with pytest.raises(MediaError, match="unsupported codec 'encv' in track 1"):
        parse_bytes(data)


def test_subtitle_tracks_are_skipped(subtitled_mp4: Path) -> None:
    movie = parse_bytes(subtitled_mp4.read_bytes())
    assert [(t.track_id, t.kind) for t in movie.tracks] == [(1, Kind.VIDEO), (2, Kind.AUDIO)]


def test_quicktime_mov_sound_description_v1_with_wave_box(
    bframes_mp4: Path, media_dir: Path
) -> None:
    mov = media_dir / "remux.mov"
    subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-y", "-i", str(bframes_mp4), "-c", "copy", str(mov)],
        check=True,
    )
    data = mov.read_bytes()
    assert b"wave" in data
    got, want = parse_bytes(data).tracks[1], parse_bytes(bframes_mp4.read_bytes()).tracks[1]
    assert isinstance(got.codec, AacConfig) and isinstance(want.codec, AacConfig)
    assert (got.codec.asc, got.sample_rate, got.channels) == (want.codec.asc, 48000, 2)
    assert (got.samples.size, got.samples.dts) == (want.samples.size, want.samples.dts)


def test_co64_offsets_beyond_4_gib(moov_at_end_mp4: Path) -> None:
    """A virtual 4 GiB+ file: a largesize 'free' box pushes mdat past 2**32; moov uses co64."""
    data = moov_at_end_mp4.read_bytes()
    original = parse_bytes(data)
    ftyp_end = next(at + size for kind, at, size in top_level(data) if kind == "ftyp")
    pad = (1 << 32) + 4096
    rest = rewrite_moov(data, to_co64(pad))[ftyp_end:]
    virtual = Sparse(ftyp_end + pad + len(rest))
    virtual.put(0, data[:ftyp_end])
    virtual.put(ftyp_end, u32(1) + b"free" + u64(pad))
    virtual.put(ftyp_end + pad, rest)
    movie = drive(parse_movie(virtual.size), virtual.read)
    for track, before in zip(movie.tracks, original.tracks, strict=True):
        s = track.samples
        assert min(s.offset) > 1 << 32
        assert s.offset.tolist() == [o + pad for o in before.samples.offset]
        b = before.samples
        assert (s.size, s.dts, s.cto) == (b.size, b.dts, b.cto)
        last, at = len(s) - 1, b.offset[-1]
        assert virtual.read(s.offset[last], s.size[last]) == data[at : at + s.size[last]]


def test_stsd_is_copied_verbatim_with_its_header(bframes_mp4: Path) -> None:
    data = bframes_mp4.read_bytes()
    for track in parse_bytes(data).tracks:
        assert track.stsd[4:8] == b"stsd"
        assert int.from_bytes(track.stsd[:4], "big") == len(track.stsd)
        assert track.stsd in data


# --------------------------------------------------------------------------- hand-built files


def test_simple_file_parses_to_contiguous_offsets() -> None:
    track = parse_bytes(simple_video()).tracks[0]
    s = track.samples
    assert s.size.tolist() == [10, 20, 30, 40, 50, 60]
    assert s.offset.tolist() == [DATA_START + x for x in (0, 10, 30, 60, 100, 150)]
    assert s.dts.tolist() == [0, 100, 200, 300, 400, 500]
    assert s.keyframes.tolist() == list(range(6))  # no stss: every sample is sync
    assert (s.dts.typecode, s.duration.typecode, s.cto.typecode) == ("q", "I", "i")
    assert (s.size.typecode, s.offset.typecode, s.keyframes.typecode) == ("I", "Q", "I")
    assert (track.width, track.height, track.par, track.pts_shift) == (64, 48, (1, 1), 0)
    assert track.codec == parse_avcc(AVCC)


def test_stsc_runs_map_samples_to_scattered_chunks() -> None:
    sizes = [1, 2, 3, 4, 5, 6, 7]
    # chunks 1-2 hold 3 samples, chunk 3 holds 1; chunk 2 is placed before chunk 1 in mdat.
    tables = (
        stts((7, 10)), stsz(sizes), stsc((1, 3, 1), (3, 1, 1)),
        stco([DATA_START + 20, DATA_START, DATA_START + 100]),
    )  # fmt: skip
    s = parse_bytes(movie_file(trak(avc1(), *tables), mdat=bytes(200))).tracks[0].samples
    rel = [o - DATA_START for o in s.offset]
    assert rel == [20, 21, 23, 0, 4, 9, 100]


def test_uniform_stsz() -> None:
    tables = (stts((4, 10)), stsz([5] * 4, uniform=5), stsc((1, 4, 1)), stco([DATA_START]))
    s = parse_bytes(movie_file(trak(avc1(), *tables), mdat=bytes(20))).tracks[0].samples
    assert s.size.tolist() == [5, 5, 5, 5]
    assert s.offset.tolist() == [DATA_START + x for x in (0, 5, 10, 15)]


@pytest.mark.parametrize(
    ("field", "sizes"),
    [(4, [1, 15, 7, 0, 9]), (4, [3, 4]), (8, [255, 1, 128]), (16, [65535, 300, 2])],
)
def test_stz2_field_sizes(field: int, sizes: list[int]) -> None:
    tables = (
        stts((len(sizes), 10)), stz2(sizes, field), stsc((1, len(sizes), 1)), stco([DATA_START])
    )  # fmt: skip
    s = parse_bytes(movie_file(trak(avc1(), *tables), mdat=bytes(sum(sizes)))).tracks[0].samples
    assert s.size.tolist() == sizes
    assert s.offset.tolist() == list(accumulate(sizes[:-1], initial=DATA_START))


@pytest.mark.parametrize("version", [0, 1])
def test_ctts_signed_offsets(version: int) -> None:
    extra = (ctts((1, 200), (2, -100), (3, 0), version=version),)
    s = parse_bytes(simple_video(extra_tables=extra)).tracks[0].samples
    assert s.cto.tolist() == [200, -100, -100, 0, 0, 0]


def test_stss_marks_keyframes() -> None:
    s = parse_bytes(simple_video(extra_tables=(stss(1, 4),))).tracks[0].samples
    assert s.keyframes.tolist() == [0, 3]
    assert [s.is_sync(i) for i in range(6)] == [True, False, False, True, False, False]


@pytest.mark.parametrize(
    ("edts", "version", "expected"),
    [
        # movie timescale 1 kHz (edit durations); media 90 kHz (media_time and the result)
        (elst((6000, 300)), 0, -300),
        (elst((500, -1), (6000, 300)), 0, 500 * 90 - 300),
        (elst((500, -1), (6000, 27_000), version=1), 1, 45_000 - 27_000),
        (elst((100, -1), (200, -1), (6000, 0), (100, 9000)), 0, 300 * 90),  # later edits ignored
        (b"", 0, 0),
    ],
    ids=["media_time", "empty_then_media_time", "v1", "first_normal_edit_wins", "no_edts"],
)
def test_edit_list_to_pts_shift(edts: bytes, version: int, expected: int) -> None:
    sizes = [10] * 3
    tables = (stts((3, 3000)), stsz(sizes), stsc((1, 3, 1)), stco([DATA_START]))
    entry = avc1()
    t = trak(entry, *tables, timescale=90_000, edts=edts, version=version)
    track = parse_bytes(movie_file(t, mdat=bytes(30))).tracks[0]
    assert track.pts_shift == expected
    assert track.timescale == 90_000


@pytest.mark.parametrize(
    ("code", "language"),
    [(0x15C7, "eng"), (0x55C4, "und"), (0, "und"), (0x1A41, "fra"), (0x7FFF, "und")],
)
def test_mdhd_language(code: int, language: str) -> None:
    assert parse_bytes(simple_video(language=code)).tracks[0].language == language


def test_pasp_sets_pixel_aspect_ratio() -> None:
    entry = avc1(64, 48, box("pasp", u32(4), u32(3)), box("btrt", u32(0), u32(1), u32(1)))
    track = parse_bytes(simple_video(entry=entry)).tracks[0]
    assert (track.par, track.width, track.height) == ((4, 3), 64, 48)


def test_zero_sample_entry_size_falls_back_to_tkhd() -> None:
    for version in (0, 1):
        track = parse_bytes(simple_video(entry=avc1(0, 0), version=version)).tracks[0]
        assert (track.width, track.height) == (64, 48)  # the builder's tkhd size


def test_uniform_stsz_with_a_bogus_count_is_rejected_before_allocating() -> None:
    tables = (stts((4, 10)), stsz([], uniform=5)[:-4] + u32(1 << 31), stsc((1, 4, 1)))
    with pytest.raises(MediaError, match="beyond the end of the file"):
        parse_bytes(movie_file(trak(avc1(), *tables, stco([DATA_START])), mdat=bytes(20)))


def test_he_aac_core_rate_in_config_and_output_rate_on_track() -> None:
    he_aac = bytes.fromhex("2b920800")  # AOT 5: 22.05 kHz core, 44.1 kHz output, stereo
    sizes = [100] * 4
    tables = (stts((4, 2048)), stsz(sizes), stsc((1, 4, 1)), stco([DATA_START]))
    t = trak(mp4a(he_aac, rate=44100), *tables, handler="soun", timescale=44100)
    track = parse_bytes(movie_file(t, mdat=bytes(400))).tracks[0]
    assert isinstance(track.codec, AacConfig)
    assert track.kind is Kind.AUDIO
    assert (track.codec.sample_rate, track.codec.sampling_index) == (22050, 7)
    assert (track.sample_rate, track.channels, track.codec_string) == (44100, 2, "mp4a.40.5")
    assert (track.codec.max_bitrate, track.codec.avg_bitrate) == (128_000, 96_000)


def test_size_zero_box_extends_to_end_of_file() -> None:
    data = simple_video()
    moov_at = data.index(b"moov") - 4
    data = data[:moov_at] + u32(0) + data[moov_at + 4 :]
    assert parse_bytes(data).tracks[0].samples.size.tolist() == [10, 20, 30, 40, 50, 60]


def test_largesize_mdat_header() -> None:
    sizes = [10, 20]
    start = len(FTYP) + 16
    tables = (stts((2, 10)), stsz(sizes), stsc((1, 2, 1)), stco([start]))
    mvhd = full("mvhd", 0, 0, u32(0), u32(0), u32(1000), u32(0), bytes(80))
    mdat = u32(1) + b"mdat" + u64(16 + 30) + bytes(30)
    data = FTYP + mdat + box("moov", mvhd, trak(avc1(), *tables))
    assert parse_bytes(data).tracks[0].samples.offset.tolist() == [start, start + 10]


def test_non_av_tracks_alone_are_a_media_error() -> None:
    with pytest.raises(MediaError, match="no audio or video track"):
        parse_bytes(simple_video(handler="text", entry=box("tx3g", bytes(8))))


def test_unknown_codec_in_text_track_is_skipped_beside_video() -> None:
    sizes = [10, 20]
    tables = (stts((2, 10)), stsz(sizes), stsc((1, 2, 1)), stco([DATA_START]))
    video = trak(avc1(), *tables)
    text = trak(box("tx3g", bytes(8)), *tables, track_id=2, handler="text")
    movie = parse_bytes(movie_file(video, text, mdat=bytes(30)))
    assert [t.track_id for t in movie.tracks] == [1]


@pytest.mark.parametrize(
    ("entry", "handler", "reason"),
    [
        (avc1(fourcc="hev1"), "vide", "unsupported codec 'hev1' in track 1"),
        (box("vp09", bytes(8)), "vide", "unsupported codec 'vp09' in track 1"),
        (box("Opus", bytes(8)), "soun", "unsupported codec 'Opus' in track 1"),
        (avc1(fourcc="enca"), "soun", "unsupported codec 'enca' in track 1"),
        (mp4a(oti=0x6B), "soun", r"track 1: unsupported mp4a object type indication 0x6b"),
        (mp4a(bits("11111", "001010", "0011", "0010")), "soun", "unsupported AAC object type 42"),
        (box("avc1", bytes(78)), "vide", "track 1: 'avc1' sample entry has no avcC"),
    ],
)
def test_unsupported_sample_entries(entry: bytes, handler: str, reason: str) -> None:
    with pytest.raises(MediaError, match=reason):
        parse_bytes(simple_video(entry=entry, handler=handler))


def _tables_file(*tables: bytes, mdat_size: int = 210) -> bytes:
    return movie_file(trak(avc1(), *tables), mdat=bytes(mdat_size))


SIZES6 = [10, 20, 30, 40, 50, 60]


@pytest.mark.parametrize(
    ("tables", "reason"),
    [
        ((stts((5, 100)), stsz(SIZES6), stsc((1, 6, 1)), stco([DATA_START])), "stts describes 5"),
        ((stts((6, 100)), ctts((7, 0)), stsz(SIZES6), stsc((1, 6, 1)), stco([DATA_START])),
         "ctts describes 7"),
        ((stts((6, 100)), stsz(SIZES6), stsc((1, 5, 1)), stco([DATA_START])),
         "stsc/stco describe 5 samples"),
        ((stts((6, 100)), stsz(SIZES6), stsc((1, 3, 1), (3, 3, 1)), stco([DATA_START] * 2)),
         "stsc chunk numbers"),
        ((stts((6, 100)), stsz(SIZES6), stsc((2, 6, 1)), stco([DATA_START])), "stsc chunk numbers"),
        ((stts((6, 100)), stsz(SIZES6), stsc((1, 6, 2)), stco([DATA_START])),
         "missing sample description"),
        ((stts((6, 100)), stsz(SIZES6), stss(1, 7), stsc((1, 6, 1)), stco([DATA_START])),
         "stss sample numbers"),
        ((stts((6, 100)), stsz(SIZES6), stss(4, 1), stsc((1, 6, 1)), stco([DATA_START])),
         "stss sample numbers"),
        ((stts((6, 100)), stsz(SIZES6), stsc((1, 6, 1)), stco([DATA_START + 10_000])),
         "beyond the end of the file"),
        ((stts((6, 100)), stsc((1, 6, 1)), stco([DATA_START])), "no stsz or stz2"),
        ((stts((6, 100)), stsz(SIZES6), stsc((1, 6, 1))), "no stco or co64"),
        ((stsz(SIZES6), stsc((1, 6, 1)), stco([DATA_START])), "has no stts"),
        ((stts((6, 100)), full("stsz", 0, 0, u32(0), u32(6), bytes(8)), stsc((1, 6, 1)),
          stco([DATA_START])), "'stsz' box is truncated"),
        ((stts((6, 100)), full("stz2", 0, 0, bytes(3), u8(7), u32(6), bytes(6)),
          stsc((1, 6, 1)), stco([DATA_START])), "stz2 field size 7"),
    ],
)  # fmt: skip
def test_inconsistent_tables_are_media_errors(tables: tuple[bytes, ...], reason: str) -> None:
    with pytest.raises(MediaError, match=reason):
        parse_bytes(_tables_file(*tables))


def test_box_overrunning_its_parent_is_a_media_error() -> None:
    data = bytearray(simple_video())
    at = data.index(b"stts") - 4
    data[at : at + 4] = u32(10_000)
    with pytest.raises(MediaError, match="overruns its parent"):
        parse_bytes(bytes(data))


# --------------------------------------------------------------------------- codec records


def test_avcc_record() -> None:
    config = parse_avcc(AVCC)
    assert (config.profile, config.compatibility, config.level) == (100, 0, 31)
    assert (config.sps, config.pps, config.nal_length_size) == ((SPS,), (PPS,), 4)
    assert config.codec_string == "avc1.64001f"
    assert config.record == AVCC


@pytest.mark.parametrize(
    ("record", "reason"),
    [(AVCC[:-1], "truncated"), (b"\x02" + AVCC[1:], "configurationVersion"),
     (AVCC[:4] + b"\xfe" + AVCC[5:], "3-byte"), (AVCC[:5] + b"\xe0\x00", "no SPS")],
)  # fmt: skip
def test_bad_avcc_is_a_media_error(record: bytes, reason: str) -> None:
    with pytest.raises(MediaError, match=reason):
        parse_avcc(record)


@pytest.mark.parametrize(
    ("asc", "expected"),
    [
        # (object_type, core_type, sampling_index, core_rate, output_rate, channels, sbr, ps)
        (bytes.fromhex("1190"), (2, 2, 3, 48000, 48000, 2, False, False)),
        (bytes.fromhex("1210"), (2, 2, 4, 44100, 44100, 2, False, False)),
        # ffmpeg's encoder: LC plus an explicit "no SBR" sync extension
        (bytes.fromhex("119056e500"), (2, 2, 3, 48000, 48000, 2, False, False)),
        # explicit hierarchical signalling
        (bytes.fromhex("2b920800"), (5, 2, 7, 22050, 44100, 2, True, False)),
        (bits("11101", "0110", "0001", "0011", "00010", "000"),
         (29, 2, 6, 24000, 48000, 1, True, True)),
        # backward-compatible signalling: LC core, then sync extensions 0x2B7 (SBR), 0x548 (PS)
        (bits("00010", "0110", "0001", "000", "01010110111", "00101", "1", "0011",
              "10101001000", "1"), (29, 2, 6, 24000, 48000, 1, True, True)),
        (bits("00010", "0111", "0010", "000", "01010110111", "00101", "1", "0100"),
         (5, 2, 7, 22050, 44100, 2, True, False)),
        # escape object type 31 (+6 bits) and explicit 24-bit rate (index 15)
        (bits("11111", "001010", "1111", format(37800, "024b"), "0010"),
         (42, 42, 15, 37800, 37800, 2, False, False)),
        (bits("00010", "1111", format(12345, "024b"), "0001", "000"),
         (2, 2, 15, 12345, 12345, 1, False, False)),
    ],
)  # fmt: skip
def test_audio_specific_config(asc: bytes, expected: tuple[int | bool, ...]) -> None:
    assert tuple(parse_asc(asc)) == expected


@pytest.mark.parametrize("asc", [b"", b"\x11", bits("00010", "1101", "0010")])
def test_bad_audio_specific_config_is_a_media_error(asc: bytes) -> None:
    with pytest.raises(MediaError, match="AudioSpecificConfig"):
        parse_asc(asc)


def test_esds_short_and_long_descriptor_sizes_agree() -> None:
    short = parse_esds(esds(ASC_LC_48K, long=False)[8:])
    long = parse_esds(esds(ASC_LC_48K, long=True)[8:])
    assert short == long
    assert (long.object_type, long.sample_rate, long.sampling_index) == (2, 48000, 3)
    assert (long.channel_config, long.channels, long.asc) == (2, 2, ASC_LC_48K)
    assert (long.max_bitrate, long.avg_bitrate) == (128_000, 96_000)


def test_esds_optional_es_descriptor_fields_are_skipped() -> None:
    # streamDependence (+2), URL (+1+len) and OCR stream (+2) flags all set.
    payload = esds(ASC_LC_48K, es_flags=0xE0, es_extra=u16(7) + u8(3) + b"abc" + u16(9))
    assert parse_esds(payload[8:]).asc == ASC_LC_48K


def test_seven_channel_config_means_eight_channels() -> None:
    asc = bits("00010", "0011", "0111", "000")
    config = parse_esds(esds(asc)[8:])
    assert (config.channel_config, config.channels) == (7, 8)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(esds(ASC_LC_48K)[8:-10], "truncated"), (bytes(4) + b"\x04\x00", "expected descriptor tag")],
)
def test_bad_esds_is_a_media_error(payload: bytes, reason: str) -> None:
    with pytest.raises(MediaError, match=reason):
        parse_esds(payload)


# --------------------------------------------------------------------------- scale


def long_track_file(n: int = 216_000) -> tuple[Sparse, list[int]]:
    """A 2-hour 30 fps track shaped like ffmpeg's: B-frame ctts runs, 1-sample chunks, co64.

    The mdat payload is virtual (never written), so reading it would fail.
    """
    sizes = [2000 + (i * 7919) % 3000 for i in range(n)]
    head = FTYP + u32(1) + b"mdat" + u64(16 + sum(sizes))
    starts = list(accumulate(sizes[:-1], initial=len(head)))
    pattern = ((1, 1024), (1, 2560), (1, 1024), (2, 0))
    tables = (
        stts((n, 512)), ctts(*pattern * (n // 5)), stss(*range(1, n + 1, 60)), stsz(sizes),
        stsc((1, 1, 1)), stco(starts, wide=True),
    )  # fmt: skip
    mvhd = full("mvhd", 0, 0, u32(0), u32(0), u32(1000), u32(0), bytes(80))
    moov = box("moov", mvhd, trak(avc1(), *tables, timescale=15360))
    virtual = Sparse(len(head) + sum(sizes) + len(moov))
    virtual.put(0, head)
    virtual.put(len(head) + sum(sizes), moov)
    return virtual, starts


def test_two_hour_track_expands_correctly() -> None:
    virtual, starts = long_track_file()
    movie: Movie = drive(parse_movie(virtual.size), virtual.read)
    s = movie.tracks[0].samples
    assert len(s) == 216_000
    assert s.offset.tolist() == starts
    assert s.dts[-1] == 215_999 * 512
    assert s.cto[:10].tolist() == [1024, 2560, 1024, 0, 0] * 2
    assert len(s.keyframes) == 3600
    assert movie.tracks[0].seconds == 7200
