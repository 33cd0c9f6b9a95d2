"""Fragmented MP4 sources (CMAF/DASH fMP4, Smooth ismv/isma) load into the same sample index.

Oracles: the same content remuxed by ffmpeg into a progressive MP4 (parsed by the progressive
path), and ffprobe's packet list of the fragmented file itself, including each packet's byte
position. Hand-built files cover the corners of ISO/IEC 14496-12 §8.8 that ffmpeg does not write.
"""

from __future__ import annotations

import json
import struct
import subprocess
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from origin.core import pipeline
from origin.core.errors import MediaError
from origin.core.index import SampleIndex
from origin.core.mp4 import drive, parse_bytes, parse_movie
from origin.core.mp4.fragments import TFXD_UUID
from origin.core.mux import fmp4
from origin.core.mux.run import Run
from origin.core.urls import Format
from tests.media import FFMPEG, FFPROBE, decode_errors, make_mp4
from tests.mp4_build import (
    FTYP,
    avc1,
    box,
    elst,
    full,
    i32,
    mp4a,
    simple_video,
    stco,
    stsc,
    stsz,
    stts,
    top_level,
    trak,
    u32,
    u64,
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


def sample_bytes(data: bytes, s: SampleIndex) -> list[bytes]:
    return [data[o : o + n] for o, n in zip(s.offset, s.size, strict=True)]


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


# --------------------------------------------------------------------------- hand-built corners

NON_SYNC = 0x01010000
SYNC = 0x02000000


def trex(track_id: int, duration: int, size: int = 0, flags: int = 0) -> bytes:
    return full("trex", 0, 0, u32(track_id), u32(1), u32(duration), u32(size), u32(flags))


def empty_tables() -> tuple[bytes, ...]:
    return stts(), stsz([]), stsc(), stco([])


def init(*extra_traks: bytes, trexes: Sequence[bytes] = (), edts: bytes = b"") -> bytes:
    """ftyp + moov: video track 1 (timescale 1000), audio track 2 (48000), empty tables."""
    mvhd = full("mvhd", 0, 0, u32(0), u32(0), u32(1000), u32(0), bytes(80))
    video = trak(avc1(), *empty_tables(), track_id=1, edts=edts)
    audio = trak(mp4a(), *empty_tables(), track_id=2, handler="soun", timescale=48000)
    trexes = trexes or (trex(1, 100, 0, NON_SYNC), trex(2, 1024, 0, SYNC))
    return FTYP + box("moov", mvhd, video, audio, *extra_traks, box("mvex", *trexes))


def tfhd(track_id: int, flags: int = 0, *fields: bytes) -> bytes:
    return full("tfhd", 0, flags, u32(track_id), *fields)


def trun(
    flags: int, samples: Sequence[Sequence[int]], *, data_offset: int | None = None,
    first_flags: int | None = None, version: int = 0,
) -> bytes:  # fmt: skip
    head = u32(len(samples))
    if data_offset is not None:
        flags |= 0x1
        head += i32(data_offset)
    if first_flags is not None:
        flags |= 0x4
        head += u32(first_flags)
    body = b"".join(struct.pack(f">{len(s)}I", *(v & 0xFFFFFFFF for v in s)) for s in samples)
    return full("trun", version, flags, head, body)


def tfdt(t: int) -> bytes:
    return full("tfdt", 1, 0, u64(t))


def tfxd(t: int, duration: int = 0) -> bytes:
    return box("uuid", TFXD_UUID, u32(1 << 24), u64(t), u64(duration))


def fragment(make_trafs: Callable[[int], Sequence[bytes]], payload: bytes, seq: int = 1) -> bytes:
    """moof + mdat; ``make_trafs(d)`` gets d = the moof's size + 8 (the payload's moof offset)."""
    size = len(box("moof", full("mfhd", 0, 0, u32(seq)), *make_trafs(0)))
    moof = box("moof", full("mfhd", 0, 0, u32(seq)), *make_trafs(size + 8))
    assert len(moof) == size
    return moof + box("mdat", payload)


SIZE, DURATION, FLAGS, CTO = 0x200, 0x100, 0x400, 0x800


def payload(*sizes: int) -> bytes:
    """Distinct bytes per sample, so offsets can be checked by content."""
    return b"".join(bytes([i + 1]) * n for i, n in enumerate(sizes))


def test_implicit_base_offsets_follow_the_spec_rule() -> None:
    """No base offset flags: traf 1 is based at the moof, traf 2 at the end of traf 1's data;
    a trun without data_offset continues after the previous run of its traf."""
    head = init()
    body = payload(10, 20, 30, 5, 6)
    frag = fragment(
        lambda d: [
            box("traf", tfhd(1), tfdt(0),
                trun(SIZE, [[10], [20]], data_offset=d, first_flags=SYNC), trun(SIZE, [[30]])),
            box("traf", tfhd(2), tfdt(0), trun(SIZE, [[5], [6]])),
        ],
        body,
    )  # fmt: skip
    data = head + frag
    movie = parse_bytes(data)
    assert movie.fragmented
    v, a = movie.video()[0].samples, movie.audio()[0].samples
    assert [data[o : o + n] for o, n in zip(v.offset, v.size, strict=True)] == [
        b"\1" * 10,
        b"\2" * 20,
        b"\3" * 30,
    ]
    assert sample_bytes(data, a) == [b"\4" * 5, b"\5" * 6]
    assert v.dts.tolist() == [0, 100, 200] and v.duration.tolist() == [100] * 3
    assert v.keyframes.tolist() == [0]  # trex says non-sync; first_sample_flags says sync
    assert a.dts.tolist() == [0, 1024] and a.keyframes.tolist() == [0, 1]


def test_explicit_base_data_offset_and_default_base_is_moof() -> None:
    head = init()
    body = payload(10, 20)
    frag_at = len(head)

    def trafs(d: int) -> list[bytes]:
        mdat_payload = frag_at + d
        return [
            box("traf", tfhd(1, 0x1, u64(mdat_payload)), trun(SIZE, [[10]], data_offset=0)),
            box("traf", tfhd(2, 0x020000), trun(SIZE, [[20]], data_offset=d + 10)),
        ]

    data = head + fragment(trafs, body)
    movie = parse_bytes(data)
    assert data[movie.video()[0].samples.offset[0] :][:10] == b"\1" * 10
    assert data[movie.audio()[0].samples.offset[0] :][:20] == b"\2" * 20


def test_defaults_chain_trex_then_tfhd_then_trun() -> None:
    """trex defaults, overridden by tfhd defaults, overridden per sample by the trun."""
    head = init(trexes=(trex(1, 100, 7, NON_SYNC), trex(2, 1024, 3, SYNC)))
    # tfhd: default duration 40, default flags sync (size still from trex: 7)
    frag1 = fragment(
        lambda d: [box("traf", tfhd(1, 0x020000 | 0x8 | 0x20, u32(40), u32(SYNC)),
                       trun(0, [[], []], data_offset=d))],
        payload(7, 7),
    )  # fmt: skip
    # per sample: duration, size, flags, composition offset (v1, negative)
    frag2 = fragment(
        lambda d: [box("traf", tfhd(1, 0x020000),
                       trun(DURATION | SIZE | FLAGS | CTO,
                            [[50, 4, SYNC, 0], [60, 5, NON_SYNC, 120], [70, 6, NON_SYNC, -60]],
                            data_offset=d, version=1))],
        payload(4, 5, 6), seq=2,
    )  # fmt: skip
    # trex only: duration 100, size 7, non-sync
    frag3 = fragment(
        lambda d: [box("traf", tfhd(1, 0x020000), trun(0, [[], []], data_offset=d))],
        payload(7, 7), seq=3,
    )  # fmt: skip
    movie = parse_bytes(head + frag1 + frag2 + frag3)
    s = movie.video()[0].samples
    assert s.duration.tolist() == [40, 40, 50, 60, 70, 100, 100]
    assert s.size.tolist() == [7, 7, 4, 5, 6, 7, 7]
    assert s.dts.tolist() == [0, 40, 80, 130, 190, 260, 360]
    assert s.cto.tolist() == [0, 0, 0, 120, -60, 0, 0]
    assert s.keyframes.tolist() == [0, 1, 2]
    assert movie.audio()[0].samples.size.tolist() == []


def test_timing_from_tfdt_tfxd_or_the_previous_fragment() -> None:
    """tfdt wins; without it Smooth's tfxd; without both, continue; duration-is-empty: a gap."""
    head = init()

    def frag(seq: int, *boxes: bytes, n: int = 2) -> bytes:
        return fragment(
            lambda d: [box("traf", tfhd(1, 0x020000), *boxes,
                           trun(SIZE, [[1]] * n, data_offset=d))],
            bytes(n), seq=seq,
        )  # fmt: skip

    empty = fragment(
        lambda d: [box("traf", tfhd(1, 0x020000 | 0x010000 | 0x8, u32(500)))], b"", seq=3
    )
    data = (head + frag(1, tfdt(1000)) + frag(2) + empty + frag(4) + frag(5, tfxd(5000))
            + frag(6, tfxd(9999), tfdt(6000)))  # fmt: skip
    s = parse_bytes(data).video()[0].samples
    assert s.dts.tolist() == [1000, 1100, 1200, 1300, 1900, 2000, 5000, 5100, 6000, 6100]


def test_edit_list_applies_to_fragmented_tracks() -> None:
    head = init(edts=elst((0, 200)))
    data = head + fragment(
        lambda d: [box("traf", tfhd(1, 0x020000), trun(SIZE, [[1]], data_offset=d))], b"\0"
    )
    assert parse_bytes(data).video()[0].pts_shift == -200


def test_traf_of_an_unserved_track_is_skipped_but_its_data_counted() -> None:
    """A text track's traf sits between video and audio; audio's implicit base follows it."""
    text = trak(box("tx3g", bytes(8)), *empty_tables(), track_id=3, handler="text")
    head = init(text, trexes=(trex(1, 100, 0, SYNC), trex(2, 1024, 0, SYNC), trex(3, 10)))
    data = head + fragment(
        lambda d: [
            box("traf", tfhd(1), trun(SIZE, [[3]], data_offset=d)),
            box("traf", tfhd(3), trun(SIZE, [[4]])),
            box("traf", tfhd(2), trun(SIZE, [[5]])),
        ],
        payload(3, 4, 5),
    )
    movie = parse_bytes(data)
    assert [t.track_id for t in movie.tracks] == [1, 2]
    a = movie.audio()[0].samples
    assert data[a.offset[0] : a.offset[0] + 5] == b"\3" * 5


def _one_sample(d: int, track_id: int = 1, *boxes: bytes) -> list[bytes]:
    return [box("traf", tfhd(track_id, 0x020000), *boxes, trun(SIZE, [[1]], data_offset=d))]


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: init() + fragment(lambda d: _one_sample(d, 1, tfdt(100)), b"\0")
         + fragment(lambda d: _one_sample(d, 1, tfdt(50)), b"\0", seq=2),
         "track 1, fragment 2 .* starts at 50, before the previous samples end"),
        (lambda: init() + fragment(lambda d: _one_sample(d - 10**6), b"\0"),
         "sample data lies outside the file"),
        (lambda: init() + fragment(lambda d: _one_sample(d + 10**6), b"\0"),
         "truncated file: track 1, fragment 1 .* perhaps still being written"),
        (lambda: init(trexes=(trex(2, 1024),)) + fragment(_one_sample, b"\0"),
         "track 1, fragment 1 .* has no trex"),
        (lambda: init() + fragment(
            lambda d: [box("traf", tfhd(1, 0x020000 | 0x2, u32(2)), trun(SIZE, [[1]]))], b"\0"),
         "sample description 2"),
        (lambda: init() + fragment(lambda d: [box("traf", tfdt(0))], b""), "traf has no tfhd"),
        (lambda: init() + fragment(
            lambda d: [box("traf", tfhd(1, 0x020000), full("trun", 0, 0, u32(10**9)))], b""),
         "trun declares 1000000000 samples"),
        (lambda: init() + fragment(
            lambda d: [box("traf", tfhd(1, 0x020000), full("trun", 0, SIZE, u32(1000)))], b""),
         "'trun' box is truncated"),
    ],
    ids=["overlap", "before-file", "after-file", "no-trex", "second-description", "no-tfhd",
         "absurd-count", "short-trun"],
)  # fmt: skip
def test_bad_fragments_are_media_errors(build: Callable[[], bytes], reason: str) -> None:
    with pytest.raises(MediaError, match=reason):
        parse_bytes(build())


def test_moof_in_a_file_without_mvex_is_refused() -> None:
    head = init()
    no_mvex = head[: head.index(b"mvex") - 4]
    no_mvex = no_mvex[: len(FTYP)] + box("moov", no_mvex[len(FTYP) + 8 :])
    with pytest.raises(MediaError, match=r"moof box at offset .* but the moov has no mvex"):
        parse_bytes(no_mvex + fragment(_one_sample, b"\0"))
    with pytest.raises(MediaError, match=r"moof box at offset .* before the moov"):
        parse_bytes(FTYP + fragment(_one_sample, b"\0") + head[len(FTYP) :])


def test_mvex_without_fragments_gives_the_moov_samples() -> None:
    """A moov with mvex and no moof (a fragmented file cut right after its moov, or one whose
    samples are all in the moov): the samples are the moov's."""
    assert all(len(t.samples) == 0 for t in parse_bytes(init()).tracks)
    data = simple_video()
    mvex = box("mvex", trex(1, 0))
    at = data.index(b"moov") - 4
    movie = parse_bytes(data[:at] + box("moov", data[at + 8 :], mvex))
    assert movie.fragmented
    assert movie.tracks[0].samples == parse_bytes(data).tracks[0].samples


class Virtual:
    """A file of written spans; bytes never written (mdat payload) read as zeros."""

    def __init__(self) -> None:
        self.parts: list[tuple[int, bytes]] = []
        self.size = 0
        self.reads: list[tuple[int, int]] = []

    def append(self, data: bytes, hole: int = 0) -> int:
        """Write ``data`` at the end, then leave ``hole`` unwritten bytes; returns its offset."""
        at = self.size
        self.parts.append((at, data))
        self.size += len(data) + hole
        return at

    def read(self, offset: int, size: int) -> bytes:
        self.reads.append((offset, size))
        out = bytearray(min(size, self.size - offset))
        k = max(bisect_right(self.parts, (offset, b"")) - 1, 0)
        for at, data in self.parts[k:]:
            if at >= offset + len(out):
                break
            lo, hi = max(at, offset), min(at + len(data), offset + len(out))
            if lo < hi:
                out[lo - offset : hi - offset] = data[lo - at : hi - at]
        return bytes(out)


def test_two_hour_fragmented_source_loads_at_scale() -> None:
    """2 h in 2 s fragments (3600 moofs; 30 fps video with per-sample sizes/flags/cto, AAC)."""
    f = Virtual()
    f.append(init(trexes=(trex(1, 100, 0, NON_SYNC), trex(2, 1024, 0, SYNC))))
    video_sizes = [3000 + 7 * i for i in range(60)]
    audio_sizes = [300 + i % 5 for i in range(94)]
    payload_size = sum(video_sizes) + sum(audio_sizes)
    vt = at = 0
    for k in range(3600):
        vflags = [SYNC] + [NON_SYNC] * 59
        vrun = [
            [s, fl, c] for s, fl, c in zip(video_sizes, vflags, [200, 0, 100] * 20, strict=True)
        ]

        def trafs(d: int, vt: int = vt, at: int = at, vrun: list[list[int]] = vrun) -> list[bytes]:
            return [
                box("traf", tfhd(1, 0x020000), tfdt(vt),
                    trun(SIZE | FLAGS | CTO, vrun, data_offset=d)),
                box("traf", tfhd(2, 0x020000), tfdt(at),
                    trun(SIZE, [[s] for s in audio_sizes], data_offset=d + sum(video_sizes))),
            ]  # fmt: skip

        whole = fragment(trafs, b"", seq=k + 1)
        moof, mdat_header = whole[:-8], u32(8 + payload_size) + b"mdat"
        f.append(moof + mdat_header, hole=payload_size)
        vt += 60 * 100
        at += 94 * 1024
    started = time.perf_counter()
    movie = drive(parse_movie(f.size), f.read)
    print(f"2 h fragmented index: {time.perf_counter() - started:.2f} s")
    v, a = movie.video()[0].samples, movie.audio()[0].samples
    assert (len(v), len(a)) == (216_000, 338_400)
    assert len(v.keyframes) == 3600 and v.keyframes[1] == 60
    assert v.dts[-1] == 215_999 * 100 and a.dts[-1] == 338_399 * 1024
    assert v.cto[:3].tolist() == [200, 0, 100]
    last = f.parts[-1][0]
    assert v.offset[-60] == last + len(f.parts[-1][1])
    assert a.offset[-1] == f.size - audio_sizes[-1]
    assert len(f.reads) <= 3600 + 5
