"""Fragmented MP4 sources (CMAF/DASH fMP4, Smooth ismv/isma) load into the same sample index.

Oracles: the same content remuxed by ffmpeg into a progressive MP4 (parsed by the progressive
path), and ffprobe's packet list of the fragmented file itself, including each packet's byte
position. Hand-built files cover the corners of ISO/IEC 14496-12 §8.8 that ffmpeg does not write.
"""

from __future__ import annotations

import json
import struct
import subprocess
from collections.abc import Callable, Sequence
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from origin.core import pipeline
from origin.core.errors import MediaError
from origin.core.mp4 import drive, parse_bytes, parse_movie
from origin.core.mp4.defs import TFXD_UUID
from origin.core.mux import fmp4
from origin.core.mux.run import Run
from origin.core.urls import Format
from tests.support.media import FFMPEG, FFPROBE, decode_errors, make_mp4
from tests.support.mp4_build import (
    sample_bytes,
    top_level,
)

# --------------------------------------------------------------------------- ffmpeg fixtures

FRAG = "+frag_keyframe+empty_moov"
# name → (file suffix, make_mp4 keyword arguments). Every one is H.264 with 2 B-frames and/or AAC.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "cmaf_default_base_moof": (".mp4", {"extra": ("-movflags", FRAG + "+default_base_moof")}),
    "tfhd_base_data_offset": (".mp4", {"extra": ("-movflags", FRAG)}),
    "implicit_base_omit_tfhd_offset": (
        ".mp4",
        {"extra": ("-movflags", FRAG + "+omit_tfhd_offset")},
    ),
    "dash_sidx": (".mp4", {"extra": ("-movflags", "+dash")}),
    "frag_duration_with_moov_samples": (".mp4", {"extra": ("-frag_duration", "500000")}),
    "cmaf_no_mfra_negative_cto": (
        ".mp4",
        {"extra": ("-movflags", FRAG + "+cmaf+default_base_moof+skip_trailer")},
    ),
    "delay_moov_edit_lists": (".mp4", {"extra": ("-movflags", FRAG + "+delay_moov")}),
    "smooth_ismv": (".ismv", {"extra": ("-f", "ismv")}),
    "smooth_ismv_video_only": (".ismv", {"audio": False, "extra": ("-f", "ismv")}),
    "smooth_isma_audio_only": (".isma", {"video": False, "extra": ("-f", "ismv")}),
    "video_only": (".mp4", {"audio": False, "extra": ("-movflags", FRAG)}),
    "audio_only": (".mp4", {"video": False, "extra": ("-movflags", FRAG + "+default_base_moof")}),
    "multi_track": (".mp4", {}),  # two H.264 renditions + AAC, three trafs per moof
}


def make_multi_track(path: Path) -> Path:
    """Two H.264 tracks and one AAC track; no tfhd offsets, so trafs chain implicitly."""
    src = "testsrc2=size={}:rate=25:duration=4"
    x264 = ["libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold",
            "0", "-bf", "2", "-pix_fmt", "yuv420p"]  # fmt: skip
    subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-y",
         "-f", "lavfi", "-i", src.format("320x180"), "-f", "lavfi", "-i", src.format("640x360"),
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4",
         "-map", "0:v", "-map", "1:v", "-map", "2:a", "-c:v", *x264, "-c:a", "aac",
         "-movflags", FRAG + "+omit_tfhd_offset", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def variants(media_dir: Path) -> Callable[[str], Path]:
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            suffix, kw = VARIANTS[name]
            path = media_dir / f"frag_{name}{suffix}"
            if name == "multi_track":
                made[name] = make_multi_track(path)
            else:
                made[name] = make_mp4(path, faststart=False, **kw)
        return made[name]

    return get


def remux_progressive(path: Path) -> Path:
    out = path.with_name(path.stem + "_progressive.mp4")
    subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-y", "-i", str(path), "-map", "0", "-c", "copy",
         "-f", "mp4", str(out)],
        check=True,
    )  # fmt: skip
    return out


def probe_packets(path: Path, stream: int) -> list[dict[str, str]]:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", str(stream), "-show_entries",
         "packet=pts,dts,duration,size,pos,flags", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    packets: list[dict[str, str]] = json.loads(out)["packets"]
    return packets


def differences(a: Sequence[int], b: Sequence[int]) -> set[int]:
    return {x - y for x, y in zip(a, b, strict=True)}


def rescaled(values: Sequence[int], src: int, dst: int) -> list[int]:
    return [round(Fraction(v * dst, src)) for v in values]


def read_counting(data: bytes) -> tuple[Callable[[int, int], bytes], list[tuple[int, int]]]:
    reads: list[tuple[int, int]] = []

    def read(offset: int, size: int) -> bytes:
        reads.append((offset, size))
        return data[offset : offset + size]

    return read, reads


# --------------------------------------------------------------------------- against ffmpeg


def test_fixtures_exercise_what_their_names_say(variants: Callable[[str], Path]) -> None:
    def data(name: str) -> bytes:
        return variants(name).read_bytes()

    tfhd_flags = [  # (tfhd flags of the first traf) per variant
        struct.unpack_from(">I", d, d.index(b"tfhd") + 4)[0] & 0xFFFFFF
        for d in map(data, ("cmaf_default_base_moof", "tfhd_base_data_offset",
                            "implicit_base_omit_tfhd_offset"))
    ]  # fmt: skip
    assert [f & 0x020001 for f in tfhd_flags] == [0x020000, 0x000001, 0]
    ismv = data("smooth_ismv")
    assert b"tfdt" not in ismv and TFXD_UUID in ismv and b"mfra" in ismv
    assert b"mfra" not in data("cmaf_no_mfra_negative_cto")
    assert b"sidx" in data("dash_sidx")
    assert b"elst" in data("delay_moov_edit_lists")
    assert data("multi_track").count(b"traf") == 3 * data("multi_track").count(b"moof")
    with_moov_samples = parse_bytes(data("frag_duration_with_moov_samples"))
    mdat_first = [k for k, _, _ in top_level(data("frag_duration_with_moov_samples"))][2]
    assert with_moov_samples.fragmented and mdat_first == "mdat"


@pytest.mark.parametrize("name", list(VARIANTS))
def test_fragmented_index_equals_progressive_remux(
    name: str, variants: Callable[[str], Path]
) -> None:
    """Same samples as ffmpeg's progressive remux of the file, byte for byte.

    Decode times are equal (Smooth audio's negative tfxd start becomes dts 0 plus a pts_shift,
    as ffmpeg's remux also starts it at 0). ffmpeg rewrites some other timing when remuxing, so
    the rest compares modulo what it changes: composition offsets modulo a constant (it shifts
    negative trun offsets to be non-negative), timescales (it remuxes 10 MHz Smooth audio at
    48 kHz, so there the comparison is rescaled and rounded), and the last sample's duration
    (it re-derives it; the file's trun says e.g. 512 where the remux says 1024).
    """
    path = variants(name)
    data = path.read_bytes()
    prog = remux_progressive(path)
    pdata = prog.read_bytes()
    movie, ref = parse_bytes(data), parse_bytes(pdata)
    assert movie.fragmented and not ref.fragmented
    assert [t.kind for t in movie.tracks] == [t.kind for t in ref.tracks]
    for got, want in zip(movie.tracks, ref.tracks, strict=True):
        s, w = got.samples, want.samples
        assert len(s) > 50
        assert s.size == w.size
        assert s.keyframes == w.keyframes
        assert sample_bytes(data, s) == sample_bytes(pdata, w)
        dts = rescaled(s.dts, got.timescale, want.timescale)
        duration = rescaled(s.duration, got.timescale, want.timescale)
        cto = rescaled(s.cto, got.timescale, want.timescale)
        assert differences(dts, w.dts) == {0}
        assert len(differences(cto, w.cto)) == 1
        if got.timescale == want.timescale:
            assert duration[:-1] == w.duration[:-1].tolist()
        else:  # rounding after rescaling: within a tick
            assert max(differences(duration[:-1], w.duration[:-1])) <= 1
            assert min(differences(duration[:-1], w.duration[:-1])) >= -1


@pytest.mark.parametrize("name", list(VARIANTS))
def test_fragmented_index_matches_ffprobe_packets(
    name: str, variants: Callable[[str], Path]
) -> None:
    """ffprobe of the fragmented file: same byte positions, sizes, keyframes and timing.

    Timing modulo constants as above: ffmpeg's demuxer ignores tfxd (Smooth audio starts at 0
    there), shifts negative composition offsets, and applies edit lists to its timestamps.
    Positions are exact: ffprobe's ``pos`` is the absolute offset of each sample.
    """
    path = variants(name)
    movie = parse_bytes(path.read_bytes())
    for stream, track in enumerate(movie.tracks):
        packets = probe_packets(path, stream)
        s = track.samples
        assert [int(p["pos"]) for p in packets] == s.offset.tolist()
        assert [int(p["size"]) for p in packets] == s.size.tolist()
        keys = [i for i, p in enumerate(packets) if "K" in p["flags"]]
        assert keys == s.keyframes.tolist()
        dts = [int(p["dts"]) for p in packets]
        assert len(differences(dts, s.dts)) == 1
        cto = [int(p["pts"]) - d for p, d in zip(packets, dts, strict=True)]
        assert len(differences(cto, s.cto)) == 1
        # The durations are in the dts (ffprobe's packet durations of AAC come from the audio
        # parser, not the container, so they are not compared).
        assert s.duration[:-1].tolist() == [b - a for a, b in pairwise(dts)]


def test_smooth_ismv_takes_fragment_times_from_tfxd(variants: Callable[[str], Path]) -> None:
    """No tfdt in ffmpeg's ismv: each traf's first sample is at its tfxd absolute time.

    ffmpeg writes -1024 samples (AAC priming) as the audio's first tfxd time; decode times are
    moved to start at 0 and ``pts_shift`` carries the -1024, as an edit list would.
    """
    data = variants("smooth_ismv").read_bytes()
    movie = parse_bytes(data)
    # track → (first sample number, tfxd time, sample count) per fragment
    firsts: dict[int, list[tuple[int, int, int]]] = {}
    for kind, at, size in top_level(data):
        if kind != "moof":
            continue
        moof = data[at : at + size]
        track_id = struct.unpack_from(">I", moof, moof.index(b"tfhd") + 8)[0]
        count = struct.unpack_from(">I", moof, moof.index(b"trun") + 8)[0]
        tfxd = moof.index(TFXD_UUID) + 16
        assert moof[tfxd] == 1  # version 1: 64-bit time
        seen = firsts.setdefault(track_id, [])
        number = seen[-1][0] + seen[-1][2] if seen else 0
        seen.append((number, struct.unpack_from(">q", moof, tfxd + 4)[0], count))
    for track in movie.tracks:
        assert track.timescale == 10_000_000
        s = track.samples
        assert s.dts[0] == 0
        for number, when, _ in firsts[track.track_id]:
            assert s.dts[number] + track.pts_shift == when
    assert movie.audio()[0].pts_shift == -213_333  # 1024 samples at 48 kHz in 100 ns units
    assert movie.video()[0].pts_shift == 0


def test_edit_lists_shift_fragmented_tracks_like_progressive(
    variants: Callable[[str], Path],
) -> None:
    movie = parse_bytes(variants("delay_moov_edit_lists").read_bytes())
    video, audio = movie.video()[0], movie.audio()[0]
    assert (video.pts_shift, audio.pts_shift) == (-1024, -1024)
    assert min(video.pts(i) for i in range(10)) == 0
    assert audio.pts(0) == -1024  # priming, as with a progressive file


def test_moov_samples_come_before_fragment_samples(variants: Callable[[str], Path]) -> None:
    data = variants("frag_duration_with_moov_samples").read_bytes()
    first_moof = next(at for kind, at, _ in top_level(data) if kind == "moof")
    for track in parse_bytes(data).tracks:
        offsets = track.samples.offset.tolist()
        before = sum(o < first_moof for o in offsets)
        assert 0 < before < len(offsets)
        assert all(o < first_moof for o in offsets[:before])
        assert track.samples.dts == type(track.samples.dts)(
            "q", sorted(track.samples.dts)
        )  # one continuous timeline


def test_read_ahead_reader_gives_the_same_movie(variants: Callable[[str], Path]) -> None:
    data = variants("dash_sidx").read_bytes()

    def read_ahead(offset: int, size: int) -> bytes:
        return data[offset : offset + max(size, 1 << 16)]

    def one_byte_more(offset: int, size: int) -> bytes:
        return data[offset : offset + size + 1]

    expected = parse_bytes(data)
    assert drive(parse_movie(len(data)), read_ahead) == expected
    assert drive(parse_movie(len(data)), one_byte_more) == expected


# --------------------------------------------------------------------------- cost


@pytest.fixture(scope="module")
def many_fragments(media_dir: Path) -> Path:
    """60 s, a fragment every 40 ms (1 video frame): 1500 fragments of two trafs each."""
    return make_mp4(
        media_dir / "many_fragments.mp4", seconds=60, faststart=False,
        extra=("-movflags", "+empty_moov+default_base_moof", "-frag_duration", "40000"),
    )  # fmt: skip


def test_many_fragments_load_with_one_read_per_fragment(many_fragments: Path) -> None:
    data = many_fragments.read_bytes()
    moofs = [(at, size) for kind, at, size in top_level(data) if kind == "moof"]
    assert len(moofs) >= 1400
    read, reads = read_counting(data)
    movie = drive(parse_movie(len(data)), read)
    assert movie == parse_bytes(data)
    assert len(movie.video()[0].samples) == 1500
    # ftyp, moov header and moov, then (steady state) one read per fragment.
    assert len(reads) <= len(moofs) + 10
    requested = sum(size for _, size in reads)
    metadata = sum(size for _, size in moofs)
    # With one frame per fragment the moofs themselves are 9% of this file; the read-ahead
    # adds a margin over them, never mdat payload beyond that margin.
    assert requested < 2 * metadata + 8192
    assert requested < len(data) / 5
    moof_reads = {at for at, _ in moofs}
    # Every moof is read whole once, never re-read.
    covered = [m for m in moof_reads if any(o <= m < o + n for o, n in reads)]
    assert len(covered) == len(moofs)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_fragmented_files_load_with_few_small_reads(
    name: str, variants: Callable[[str], Path]
) -> None:
    data = variants(name).read_bytes()
    boxes = list(top_level(data))
    read, reads = read_counting(data)
    drive(parse_movie(len(data)), read)
    fragments = sum(kind == "moof" for kind, _, _ in boxes)
    assert len(reads) <= len(boxes) - fragments + 3  # at most one per moof/mdat pair, + moov
    # 4 KiB: the read-ahead guessed for the first fragment, which matters in small files.
    assert sum(size for _, size in reads) < len(data) / 15 + 4096


# --------------------------------------------------------------------------- truncation


@pytest.mark.parametrize("where", ["mdat", "moof"])
def test_truncated_last_fragment_is_refused_as_a_partial_write(
    where: str, variants: Callable[[str], Path]
) -> None:
    data = variants("cmaf_no_mfra_negative_cto").read_bytes()
    boxes = list(top_level(data))
    at, size = [(a, s) for kind, a, s in boxes if kind == where][-1]
    moof = [a for kind, a, _ in boxes if kind == "moof"][-1]
    reason = rf"truncated file: .*moof at offset {moof}\).* incomplete, perhaps .*being written"
    with pytest.raises(MediaError, match=reason):
        parse_bytes(data[: at + size // 2])


def test_file_ending_after_a_moof_is_refused(variants: Callable[[str], Path]) -> None:
    data = variants("cmaf_no_mfra_negative_cto").read_bytes()
    at, size = [(a, s) for kind, a, s in top_level(data) if kind == "moof"][-1]
    with pytest.raises(MediaError, match=r"truncated file: .*fragment \d+ .* refers to sample"):
        parse_bytes(data[: at + size])


def test_short_read_of_a_fragment_is_a_media_error(variants: Callable[[str], Path]) -> None:
    data = variants("cmaf_default_base_moof").read_bytes()
    cut = data[: len(data) // 2]
    with pytest.raises(MediaError, match="truncated"):
        drive(parse_movie(len(data)), lambda offset, size: cut[offset : offset + size])


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("name", ["cmaf_default_base_moof", "smooth_ismv", "multi_track"])
@pytest.mark.parametrize("target", [4, 2])
def test_fragmented_source_serves_segments_that_decode(
    name: str, target: int, variants: Callable[[str], Path], tmp_path: Path
) -> None:
    """prepare() and segment_bytes() on a fragmented source: TS (video + muxed audio) and
    CMAF segments decode cleanly, cut where the progressive remux is cut."""
    path = variants(name)
    data = path.read_bytes()
    pres = pipeline.prepare("x", [parse_bytes(data)], Fraction(target))
    assert pres.audio is not None

    def read(span: pipeline.Span) -> bytes:
        return data[span.offset : span.offset + span.size]

    def write(out: Path, fmt: Format, track: str, rid: int, count: int) -> str:
        refs = [pipeline.SegmentRef(fmt, track, rid, k) for k in range(count)]
        if fmt is Format.HLS_CMAF:
            refs.insert(0, pipeline.SegmentRef(fmt, track, rid, -1))
        out.write_bytes(b"".join(pipeline.segment_bytes(pres, ref, read) for ref in refs))
        return decode_errors(str(out))

    for r in pres.video:
        assert len(r.seg) == 4 // target
        assert write(tmp_path / f"{r.id}.ts", Format.HLS_TS, "video", r.id, len(r.seg)) == ""
        assert write(tmp_path / f"{r.id}.mp4", Format.HLS_CMAF, "video", r.id, len(r.seg)) == ""
    audio = pres.audio
    assert write(tmp_path / "a.mp4", Format.HLS_CMAF, "audio", audio.id, len(audio.seg)) == ""
    progressive = parse_bytes(remux_progressive(path).read_bytes())
    expected = pipeline.prepare("x", [progressive], Fraction(target))
    assert [r.seg.starts for r in pres.video] == [r.seg.starts for r in expected.video]


def test_our_own_fmp4_segments_parse_back_to_the_source_index(bframes_mp4: Path) -> None:
    """init + media segments from the fMP4 writer, concatenated: a CMAF file of one track."""
    source = parse_bytes(bframes_mp4.read_bytes())
    src_data = bframes_mp4.read_bytes()
    for track in source.tracks:
        s = track.samples
        half = len(s) // 2
        parts = [fmp4.init_segment(track)]
        for k, (a, b) in enumerate([(0, half), (half, len(s))]):
            payload = [src_data[o : o + n] for o, n in zip(s.offset[a:b], s.size[a:b], strict=True)]
            parts.append(fmp4.media_segment(Run(track, a, b, payload), sequence=k + 1))
        data = b"".join(parts)
        got = parse_bytes(data).tracks[0]
        g = got.samples
        assert (g.dts, g.duration, g.size, g.keyframes) == (s.dts, s.duration, s.size, s.keyframes)
        # The writer may move the edit list's shift into the composition offsets.
        assert [got.pts(i) for i in range(len(g))] == [track.pts(i) for i in range(len(s))]
        assert sample_bytes(data, g) == sample_bytes(src_data, s)
