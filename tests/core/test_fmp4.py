"""The fMP4 / CMAF writer: box trees, sizes, trun timing and flags, and real players' view of it."""

from __future__ import annotations

import itertools
import struct
import subprocess
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from origin.core.mp4 import parse_bytes
from origin.core.mp4.defs import NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS
from origin.core.mux.fmp4 import (
    Fragment,
    fragment_of,
    init_segment,
    media_segment,
    media_segment_size,
    moof,
    moof_size,
    segment_header,
)
from origin.core.mux.run import Run
from origin.core.track import Kind, Track
from tests.support.fmp4_read import (
    STUB_STSD,
    Box,
    Trun,
    audio_track,
    brands,
    frame_hashes,
    full,
    lift_stsd,
    read_trun,
    run_of,
    video_track,
    walk,
)
from tests.support.media import FFPROBE, decode_errors, make_mp4, probe_frames


@pytest.fixture(scope="module")
def real_stsd(bframes_mp4: Path) -> dict[Kind, bytes]:
    return {
        Kind.VIDEO: lift_stsd(bframes_mp4, b"vide"),
        Kind.AUDIO: lift_stsd(bframes_mp4, b"soun"),
    }


# --- init segment -------------------------------------------------------------------------------

VIDEO_INIT_TREE = [
    "ftyp",
    (
        "moov",
        [
            "mvhd",
            (
                "trak",
                [
                    "tkhd",
                    ("edts", ["elst"]),  # the B-frame delay (pts_shift -1024)
                    (
                        "mdia",
                        [
                            "mdhd",
                            "hdlr",
                            (
                                "minf",
                                [
                                    "vmhd",
                                    ("dinf", [("dref", ["url "])]),
                                    ("stbl", ["stsd", "stts", "stsc", "stsz", "stco"]),
                                ],
                            ),
                        ],
                    ),
                ],
            ),
            ("mvex", ["trex"]),
        ],
    ),
]


def test_video_init_segment_has_the_full_box_tree_with_consistent_sizes() -> None:
    data = init_segment(video_track())
    assert walk(data).tree() == VIDEO_INIT_TREE


def test_audio_init_segment_uses_smhd_and_carries_the_priming_edit() -> None:
    data = init_segment(audio_track())
    trak = walk(data).find("moov/trak")
    assert [c.kind for c in trak.children] == ["tkhd", "edts", "mdia"]
    assert trak.find("mdia/minf").children[0].kind == "smhd"


def test_init_brands_declare_iso6_and_cmaf() -> None:
    data = init_segment(video_track())
    assert brands(data, walk(data).find("ftyp")) == ("iso6", ["iso6", "cmfc"])


def test_init_copies_the_source_stsd_verbatim(real_stsd: dict[Kind, bytes]) -> None:
    for kind, track in ((Kind.VIDEO, video_track), (Kind.AUDIO, audio_track)):
        data = init_segment(track(stsd=real_stsd[kind]))
        stsd = walk(data).find("moov/trak/mdia/minf/stbl/stsd")
        assert data[stsd.start : stsd.end] == real_stsd[kind]


def test_init_sample_tables_are_empty() -> None:
    data = init_segment(video_track())
    stbl = walk(data).find("moov/trak/mdia/minf/stbl")
    for kind in ("stts", "stsc", "stco"):
        box = stbl.find(kind)
        assert data[box.body : box.end] == bytes(8)  # version/flags + entry_count 0
    stsz = stbl.find("stsz")
    assert data[stsz.body : stsz.end] == bytes(12)


def test_mvhd_uses_the_track_timescale_zero_duration_and_next_track_id() -> None:
    data = init_segment(audio_track(track_id=7))
    version, _, pos = full(data, walk(data).find("moov/mvhd"))
    assert version == 0
    _, _, timescale, duration = struct.unpack_from(">IIII", data, pos)
    assert (timescale, duration) == (48000, 0)
    assert struct.unpack_from(">I", data, pos + 92)[0] == 8


def test_tkhd_is_enabled_in_movie_with_display_size_from_pixel_aspect_ratio() -> None:
    data = init_segment(video_track(par=(4, 3)))
    version, flags, pos = full(data, walk(data).find("moov/trak/tkhd"))
    assert (version, flags) == (0, 3)
    assert struct.unpack_from(">I", data, pos + 8)[0] == 1  # track_ID
    assert struct.unpack_from(">I", data, pos + 16)[0] == 0  # duration
    assert struct.unpack_from(">H", data, pos + 32)[0] == 0  # video: volume 0
    width, height = struct.unpack_from(">II", data, pos + 72)
    assert width == round(320 * 4 / 3 * 65536)
    assert height == 180 << 16


def test_audio_tkhd_has_full_volume_and_no_size() -> None:
    data = init_segment(audio_track())
    _, _, pos = full(data, walk(data).find("moov/trak/tkhd"))
    assert struct.unpack_from(">H", data, pos + 32)[0] == 0x0100
    assert struct.unpack_from(">II", data, pos + 72) == (0, 0)


@pytest.mark.parametrize(
    ("language", "packed"), [("eng", 0x15C7), ("und", 0x55C4), ("", 0x55C4), ("EN", 0x55C4)]
)
def test_mdhd_has_timescale_and_packed_language(language: str, packed: int) -> None:
    data = init_segment(audio_track(language=language))
    version, _, pos = full(data, walk(data).find("moov/trak/mdia/mdhd"))
    assert version == 0
    assert struct.unpack_from(">IIIIH", data, pos) == (0, 0, 48000, 0, packed)


def test_hdlr_names_the_handler() -> None:
    for track, handler, name in (
        (video_track(), b"vide", b"VideoHandler\0"),
        (audio_track(), b"soun", b"SoundHandler\0"),
    ):
        data = init_segment(track)
        box = walk(data).find("moov/trak/mdia/hdlr")
        assert data[box.body + 8 : box.body + 12] == handler
        assert data[box.body + 24 : box.end] == name


def test_vmhd_flag_and_self_contained_data_reference() -> None:
    data = init_segment(video_track())
    minf = walk(data).find("moov/trak/mdia/minf")
    assert full(data, minf.find("vmhd"))[:2] == (0, 1)
    url = minf.find("dinf/dref/url ")
    assert full(data, url)[:2] == (0, 1)
    assert url.end - url.start == 12


def test_trex_defaults_to_the_first_sample_description() -> None:
    data = init_segment(video_track())
    _, _, pos = full(data, walk(data).find("moov/mvex/trex"))
    assert struct.unpack_from(">IIIII", data, pos) == (1, 1, 0, 0, 0)


def elst_entries(data: bytes) -> list[tuple[int, int, int]] | None:
    trak = walk(data).find("moov/trak")
    if not trak.has("edts"):
        return None
    version, _, pos = full(data, trak.find("edts/elst"))
    count = struct.unpack_from(">I", data, pos)[0]
    row = struct.Struct(">Iihh" if version == 0 else ">Qqhh")
    return [row.unpack_from(data, pos + 4 + i * row.size)[:3] for i in range(count)]


def test_audio_priming_becomes_one_edit_to_the_end_skipping_it() -> None:
    assert elst_entries(init_segment(audio_track(pts_shift=-1024))) == [(0, 1024, 1)]


def test_video_b_frame_delay_becomes_one_edit_to_the_end_skipping_it() -> None:
    # As the source's edit list says it, and as Chromium, Firefox, Safari and ffmpeg apply it.
    assert elst_entries(init_segment(video_track(pts_shift=-1024))) == [(0, 1024, 1)]


def test_no_shift_or_a_late_start_has_no_edit_list() -> None:
    # A late start is not an empty edit (Chromium ignores those): it delays tfdt instead.
    for track in (audio_track, video_track):
        assert elst_entries(init_segment(track(pts_shift=0))) is None
        assert elst_entries(init_segment(track(pts_shift=960))) is None


def test_init_rejects_a_stsd_that_is_not_one_box() -> None:
    with pytest.raises(ValueError, match="stsd"):
        init_segment(video_track(stsd=b"junk"))
    with pytest.raises(ValueError, match="stsd"):
        init_segment(video_track(stsd=STUB_STSD + b"x"))


# --- media segments -----------------------------------------------------------------------------


def segment_parts(data: bytes) -> tuple[Box, Box, Trun]:
    root = walk(data)
    assert [c.kind for c in root.children] == ["styp", "moof", "mdat"]
    moof_box = root.find("moof")
    assert moof_box.tree() == ["mfhd", ("traf", ["tfhd", "tfdt", "trun"])]
    return root, moof_box, read_trun(data, moof_box.find("traf/trun"))


def test_media_segment_is_styp_moof_mdat_with_consistent_sizes() -> None:
    segment_parts(media_segment(run_of(video_track(), 0, 8), sequence=1))
    segment_parts(media_segment(run_of(audio_track(), 3, 9), sequence=1))


@pytest.mark.parametrize("kind", [Kind.VIDEO, Kind.AUDIO])
def test_trun_data_offset_points_at_the_mdat_payload(kind: Kind) -> None:
    track = video_track() if kind is Kind.VIDEO else audio_track()
    run = run_of(track, 2, 9)
    data = media_segment(run, sequence=3)
    root, moof_box, trun = segment_parts(data)
    mdat = root.find("mdat")
    assert moof_box.start + trun.data_offset == mdat.body
    pos = moof_box.start + trun.data_offset
    for payload, entry in zip(run.data, trun.entries, strict=True):
        assert entry["size"] == len(payload)
        assert data[pos : pos + entry["size"]] == payload
        pos += entry["size"]
    assert pos == mdat.end == len(data)


def test_mfhd_carries_the_sequence_number_given() -> None:
    for sequence in (1, 2, 0xFFFFFFFF):
        data = media_segment(run_of(audio_track(), 0, 2), sequence=sequence)
        _, moof_box, _ = segment_parts(data)
        _, _, pos = full(data, moof_box.find("mfhd"))
        assert struct.unpack_from(">I", data, pos)[0] == sequence


def test_tfhd_is_relative_to_moof_with_the_track_id() -> None:
    data = media_segment(run_of(video_track(), 0, 4), sequence=1)
    _, moof_box, _ = segment_parts(data)
    _, flags, pos = full(data, moof_box.find("traf/tfhd"))
    assert flags == 0x020000  # default-base-is-moof, no base_data_offset
    assert struct.unpack_from(">I", data, pos)[0] == 1


def test_video_trun_has_durations_sync_flags_and_the_sources_unsigned_offsets() -> None:
    track = video_track(pts_shift=-1024)
    init = init_segment(track)
    data = media_segment(run_of(track, 0, 12), sequence=1)
    _, moof_box, trun = segment_parts(data)
    assert trun.version == 0  # unsigned offsets: nothing for a player to misread as signed
    assert trun.flags == 0xF01
    _, _, pos = full(data, moof_box.find("traf/tfdt"))
    decode = struct.unpack_from(">Q", data, pos)[0]
    ((_, trim, _),) = elst_entries(init) or [(0, 0, 0)]
    s = track.samples
    for i, entry in enumerate(trun.entries):
        assert entry["duration"] == s.duration[i]
        sync = i in (0, 8)
        assert entry["flags"] == (SYNC_SAMPLE_FLAGS if sync else NON_SYNC_SAMPLE_FLAGS)
        assert entry["cto"] == s.cto[i]
        # 14496-12: presentation = decode time + composition offset - the edit's media_time.
        assert decode + entry["cto"] - trim == track.pts(i)
        decode += entry["duration"]
    assert track.pts(0) == 0  # the keyframe presents at its decode time, as the source says


def test_negative_source_offsets_are_raised_and_trimmed_by_the_edit() -> None:
    # A source whose ctts/trun v1 offsets go negative (ffmpeg's -movflags negative_cts_offsets).
    track = video_track(pts_shift=0)
    track.samples.cto[:] = array("i", [c - 1024 for c in track.samples.cto])
    assert min(track.samples.cto) == -512
    init = init_segment(track)
    data = media_segment(run_of(track, 0, 8), sequence=1)
    _, moof_box, trun = segment_parts(data)
    assert trun.version == 0
    assert elst_entries(init) == [(0, 512, 1)]
    _, _, pos = full(data, moof_box.find("traf/tfdt"))
    decode = struct.unpack_from(">Q", data, pos)[0]
    for i, entry in enumerate(trun.entries):
        assert entry["cto"] >= 0
        assert decode + entry["cto"] - 512 == track.pts(i)
        decode += entry["duration"]


def test_trun_is_signed_only_when_an_offset_is_negative() -> None:
    # Smooth fragments keep negative offsets (Smooth has no edit list); others need no sign.
    for offsets, version in (([0, 1024, -512, -512], 1), ([512, 1536, 0, 0], 0)):
        cto = array("i", offsets)
        fragment = Fragment(1, 0, array("I", [512] * 4), array("I", [1] * 4), bytes(4), cto)
        data = moof(fragment, sequence=1)
        trun = read_trun(data, walk(data).find("moof/traf/trun"))
        assert (trun.version, [e["cto"] for e in trun.entries]) == (version, offsets)


def test_video_flags_are_exact_bit_patterns() -> None:
    assert SYNC_SAMPLE_FLAGS == 2 << 24  # sample_depends_on = 2 (I-frame)
    assert NON_SYNC_SAMPLE_FLAGS == (1 << 24) | (1 << 16)  # depends_on = 1, is_non_sync_sample


@pytest.mark.parametrize("track", [audio_track, video_track])
def test_a_late_start_delays_tfdt(track: Callable[..., Track]) -> None:
    late = track(pts_shift=3000)
    data = media_segment(run_of(late, 4, 8), sequence=1)
    _, moof_box, trun = segment_parts(data)
    _, _, pos = full(data, moof_box.find("traf/tfdt"))
    assert struct.unpack_from(">Q", data, pos)[0] == late.samples.dts[4] + 3000
    assert [e.get("cto", 0) for e in trun.entries] == [late.samples.cto[i] for i in range(4, 8)]


def test_audio_trun_has_no_flags_or_offsets_and_tfhd_marks_every_sample_sync() -> None:
    track = audio_track()
    data = media_segment(run_of(track, 0, 10), sequence=1)
    _, moof_box, trun = segment_parts(data)
    assert (trun.version, trun.flags) == (0, 0x301)
    assert [e["duration"] for e in trun.entries] == [1024] * 9 + [512]
    _, flags, pos = full(data, moof_box.find("traf/tfhd"))
    assert flags == 0x020020
    assert struct.unpack_from(">II", data, pos) == (2, SYNC_SAMPLE_FLAGS)


@pytest.mark.parametrize(("first_dts", "start"), [(0, 0), (0, 8), (2**33, 4)])
def test_tfdt_is_the_64_bit_decode_time_of_the_first_sample(first_dts: int, start: int) -> None:
    track = video_track(first_dts=first_dts)
    data = media_segment(run_of(track, start, 12), sequence=1)
    _, moof_box, _ = segment_parts(data)
    version, _, pos = full(data, moof_box.find("traf/tfdt"))
    assert version == 1
    assert struct.unpack_from(">Q", data, pos)[0] == track.samples.dts[start]


def test_styp_says_segment_at_a_keyframe_and_chunk_elsewhere() -> None:
    track = video_track()
    data = media_segment(run_of(track, 8, 12), sequence=1)
    assert brands(data, walk(data).find("styp")) == ("msdh", ["msdh", "cmfs", "cmff"])
    data = media_segment(run_of(track, 2, 8), sequence=1)
    assert brands(data, walk(data).find("styp")) == ("msdh", ["msdh", "cmfl"])


@pytest.mark.parametrize(
    ("kind", "start", "stop"),
    [
        (Kind.VIDEO, 0, 12),
        (Kind.VIDEO, 0, 1),
        (Kind.VIDEO, 3, 7),
        (Kind.AUDIO, 0, 10),
        (Kind.AUDIO, 9, 10),
        (Kind.AUDIO, 2, 5),
    ],
)
def test_media_segment_size_is_exact(kind: Kind, start: int, stop: int) -> None:
    track = video_track() if kind is Kind.VIDEO else audio_track()
    data = media_segment(run_of(track, start, stop), sequence=5)
    assert media_segment_size(track, start, stop) == len(data)


def test_segment_header_is_the_segment_without_its_payload() -> None:
    track = video_track()
    run = run_of(track, 8, 12)
    header = segment_header(track, 8, 12, sequence=2)
    assert header + b"".join(run.data) == media_segment(run, sequence=2)


def test_mdat_over_4_gib_gets_a_64_bit_header() -> None:
    big = 2**31  # two samples make 4 GiB: sizes only, no payload is built
    track = video_track(n=3, keyframes=(0,), sizes=[big, big, 10])
    header = segment_header(track, 0, 3, sequence=1)
    mdat_header = header[-16:]
    assert mdat_header[:8] == struct.pack(">I4s", 1, b"mdat")
    assert struct.unpack(">Q", mdat_header[8:])[0] == 16 + 2 * big + 10
    assert media_segment_size(track, 0, 3) == len(header) + 2 * big + 10
    moof_box = walk(header, 0, len(header) - 16).find("moof")
    trun = read_trun(header, moof_box.find("traf/trun"))
    assert moof_box.start + trun.data_offset == len(header)


def test_moof_hook_appends_extra_traf_boxes_and_keeps_data_offset_right() -> None:
    # What a Smooth writer does: its own columns (here re-timed by 10 MHz / 12800) and a tfxd.
    base = fragment_of(video_track(), 0, 4)
    scaled = Fragment(
        track_id=base.track_id,
        base_time=base.base_time * 10_000_000 // 12800,
        durations=array("I", [d * 10_000_000 // 12800 for d in base.durations]),
        sizes=base.sizes,
        sync=base.sync,
        offsets=array("i", [c * 10_000_000 // 12800 for c in base.offsets or ()]),
    )
    extra = struct.pack(">I4s", 8 + 16, b"uuid") + bytes(16)
    data = moof(scaled, sequence=1, traf_extra=extra)
    assert len(data) == moof_size(scaled, traf_extra=len(extra))
    moof_box = walk(data).find("moof")
    traf = moof_box.find("traf")
    assert [c.kind for c in traf.children] == ["tfhd", "tfdt", "trun", "uuid"]
    assert read_trun(data, traf.find("trun")).data_offset == len(data) + 8


def test_invalid_inputs_are_rejected() -> None:
    track = video_track()
    with pytest.raises(ValueError, match="empty"):
        media_segment(Run(track, 3, 3, []), sequence=1)
    with pytest.raises(ValueError, match="range"):
        media_segment(Run(track, 10, 13, [b"x"] * 3), sequence=1)
    with pytest.raises(ValueError, match="range"):
        media_segment_size(track, 5, 5)
    with pytest.raises(ValueError, match="sizes"):
        media_segment(Run(track, 0, 2, [b"x", b"y"]), sequence=1)
    with pytest.raises(ValueError, match="sequence"):
        media_segment(run_of(track, 0, 2), sequence=-1)
    with pytest.raises(ValueError, match="decode time"):
        media_segment(run_of(video_track(first_dts=-512), 0, 2), sequence=1)
    with pytest.raises(ValueError, match="at least one"):
        Fragment(1, 0, array("I"), array("I"))


def test_audio_with_composition_offsets_is_refused() -> None:
    track = audio_track()
    track.samples.cto[1] = 5  # arrays are mutable; the muxer must not silently drop this
    with pytest.raises(ValueError, match="composition"):
        fragment_of(track, 0, 3)


# --- with ffmpeg / ffprobe ----------------------------------------------------------------------


def ffprobe_stream(path: Path) -> dict[str, str]:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "stream", "-of", "default=nw=1", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_init_segment_alone_is_accepted_by_ffprobe(
    real_stsd: dict[Kind, bytes], tmp_path: Path
) -> None:
    video = tmp_path / "video_init.mp4"
    video.write_bytes(init_segment(video_track(stsd=real_stsd[Kind.VIDEO])))
    info = ffprobe_stream(video)
    assert (info["codec_name"], info["width"], info["height"]) == ("h264", "320", "180")
    audio = tmp_path / "audio_init.mp4"
    audio.write_bytes(init_segment(audio_track(stsd=real_stsd[Kind.AUDIO])))
    info = ffprobe_stream(audio)
    assert (info["codec_name"], info["sample_rate"], info["channels"]) == ("aac", "48000", "2")


def keyframe_cuts(track: Track, pieces: int) -> list[int]:
    """``pieces`` runs over the whole track, each starting on a keyframe."""
    keys = list(track.samples.keyframes)
    n = len(track.samples)
    if track.kind is Kind.AUDIO:
        return [n * k // pieces for k in range(pieces)] + [n]
    assert len(keys) >= pieces
    return [keys[len(keys) * k // pieces] for k in range(pieces)] + [n]


def remux(source: Path, track: Track, out: Path) -> list[int]:
    data = source.read_bytes()
    s = track.samples
    cuts = keyframe_cuts(track, 3)
    parts = [init_segment(track)]
    for sequence, (start, stop) in enumerate(itertools.pairwise(cuts), 1):
        chunks = [data[s.offset[i] : s.offset[i] + s.size[i]] for i in range(start, stop)]
        segment = media_segment(Run(track, start, stop, chunks), sequence=sequence)
        assert len(segment) == media_segment_size(track, start, stop)
        parts.append(segment)
    out.write_bytes(b"".join(parts))
    return cuts


@pytest.fixture(scope="module")
def source(media_dir: Path) -> Path:
    # Several GOPs so that three keyframe-aligned fragments exist: 4 s at 25 fps, GOP 25.
    return make_mp4(media_dir / "fmp4_source.mp4", gop=25)


def iter_tracks(source: Path) -> Iterator[Track]:
    movie = parse_bytes(source.read_bytes())
    yield from movie.video()
    yield from movie.audio()


@pytest.mark.parametrize("kind", [Kind.VIDEO, Kind.AUDIO])
def test_remuxed_fragments_play_back_like_the_source(
    kind: Kind, source: Path, tmp_path: Path
) -> None:
    track = next(t for t in iter_tracks(source) if t.kind is kind)
    out = tmp_path / f"{kind}.mp4"
    cuts = remux(source, track, out)
    assert len(cuts) == 4

    info = ffprobe_stream(out)
    stream = "v" if kind is Kind.VIDEO else "a"
    if kind is Kind.VIDEO:
        assert (info["codec_name"], info["width"], info["height"]) == ("h264", "320", "180")
    else:
        assert (info["codec_name"], info["sample_rate"]) == ("aac", "48000")

    want = probe_frames(str(source), stream)
    got = probe_frames(str(out), stream)
    assert len(got) == len(want) == len(track.samples)
    # Exactly the source's timestamps: unsigned offsets and the source's edit list, which
    # libavformat applies to fragments (it would read signed negative offsets as a pts shift).
    assert [(p["pts"], p["dts"]) for p in got] == [(p["pts"], p["dts"]) for p in want]
    assert [p["size"] for p in got] == [p["size"] for p in want]
    assert [p["flags"][0] for p in got] == [p["flags"][0] for p in want]  # keyframes

    assert decode_errors(str(out)) == ""
    # Same pictures / audio frames in the same presentation order. libavformat applies a
    # fragmented file's elst only as a time offset (the priming packet still reads at pts -1024,
    # as in the source) but marks it for discard only in non-fragmented files, so it decodes the
    # priming frames here too: compare after them.
    priming = sum("D" in p["flags"] for p in want)
    assert frame_hashes(out, stream)[priming:] == frame_hashes(source, stream)
