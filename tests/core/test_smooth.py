"""Smooth Streaming: client manifests, CodecPrivateData, 10 MHz fragments, and a client's decode."""

from __future__ import annotations

import itertools
import struct
import xml.etree.ElementTree as ET
from array import array
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from origin.core.index import SampleIndex
from origin.core.manifest import smooth
from origin.core.mp4 import codecs, parse_bytes
from origin.core.mp4.defs import NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS, TFXD_UUID
from origin.core.mux.run import Run
from origin.core.mux.smooth import smooth_duration, smooth_fragment, smooth_timing
from origin.core.track import AacConfig, AvcConfig, Kind, Movie, Track
from tests.support.fmp4_read import (
    audio_track,
    frame_hashes,
    full,
    lift_stsd,
    read_trun,
    run_of,
    video_track,
    walk,
)
from tests.support.media import decode_errors, make_mp4, probe_frames
from tests.support.smooth_client import (
    avcc_from_codec_private_data,
    client_init,
    expand_chunks,
    read_chunks,
    read_levels,
)

TEN_MHZ = 10_000_000


# --- CodecPrivateData against a real encoder's configuration --------------------------------


@pytest.fixture(scope="module")
def source(media_dir: Path) -> Path:
    return make_mp4(media_dir / "smooth_source.mp4", gop=25)


@pytest.fixture(scope="module")
def movie(source: Path) -> Movie:
    return parse_bytes(source.read_bytes())


def box_payload(data: bytes, kind: bytes) -> bytes:
    """The payload of the first box ``kind`` found by scanning (sample entries are not walked)."""
    at = data.index(kind) - 4
    size = struct.unpack_from(">I", data, at)[0]
    return data[at + 8 : at + size]


def descriptors(data: bytes, pos: int, end: int) -> dict[int, tuple[int, int]]:
    """tag → (body start, body end) of MPEG-4 descriptors, nested ones included."""
    found: dict[int, tuple[int, int]] = {}
    while pos < end:
        tag = data[pos]
        pos += 1
        size = 0
        while True:
            byte = data[pos]
            pos += 1
            size = size << 7 | byte & 0x7F
            if not byte & 0x80:
                break
        found[tag] = (pos, pos + size)
        if tag == 0x03:  # ES_Descriptor: ES_ID, flags (ffmpeg sets none), then descriptors
            found |= descriptors(data, pos + 3, pos + size)
        elif tag == 0x04:  # DecoderConfigDescriptor: 13 fixed bytes, then descriptors
            found |= descriptors(data, pos + 13, pos + size)
        pos += size
    return found


def test_avc_codec_private_data_is_every_sps_then_pps_behind_start_codes(source: Path) -> None:
    avcc = box_payload(lift_stsd(source, b"vide"), b"avcC")
    pos, sets = 5, []
    for mask in (0x1F, 0xFF):
        count = avcc[pos] & mask
        pos += 1
        items = []
        for _ in range(count):
            n = struct.unpack_from(">H", avcc, pos)[0]
            items.append(avcc[pos + 2 : pos + 2 + n])
            pos += 2 + n
        sets.append(items)
    sps, pps = sets
    want = "".join("00000001" + nal.hex().upper() for nal in sps + pps)
    track = next(t for t in parse_bytes(source.read_bytes()).tracks if t.kind is Kind.VIDEO)
    assert isinstance(track.codec, AvcConfig)
    cpd = codecs.avc_codec_private_data(track.codec)
    assert cpd == want
    assert cpd == cpd.upper() and cpd.startswith("0000000167")
    # A client's avcC from it is the source's up to the end of the PPS (the High profile
    # chroma/bit-depth tail is optional and the client leaves it out).
    assert avcc_from_codec_private_data(cpd) == avcc[:pos]


def test_aac_codec_private_data_is_the_audio_specific_config(source: Path) -> None:
    esds = box_payload(lift_stsd(source, b"soun"), b"esds")
    start, end = descriptors(esds, 4, len(esds))[0x05]
    track = next(t for t in parse_bytes(source.read_bytes()).tracks if t.kind is Kind.AUDIO)
    assert isinstance(track.codec, AacConfig)
    assert codecs.aac_codec_private_data(track.codec) == esds[start:end].hex().upper()
    # LC, 48 kHz, stereo; ffmpeg adds a sync extension saying "no SBR", kept verbatim.
    assert codecs.aac_codec_private_data(track.codec).startswith("1190")
    assert codecs.aac_fourcc(track.codec) == "AACL"


def test_codec_private_data_of_hand_made_configs() -> None:
    avc = AvcConfig(100, 0, 31, 4, (b"\x67\x64\x00\x1f", b"\x67\x01"), (b"\x68\xee",), b"")
    want = "000000016764001F" + "000000016701" + "0000000168EE"
    assert codecs.avc_codec_private_data(avc) == want
    he = AacConfig(5, 24000, 6, 2, bytes.fromhex("2b1188"), 0, 0)
    assert codecs.aac_codec_private_data(he) == "2B1188"
    assert codecs.aac_fourcc(he) == "AACH"
    assert codecs.aac_fourcc(AacConfig(29, 24000, 6, 1, b"\xea", 0, 0)) == "AACH"


# --- the manifest --------------------------------------------------------------------------------

VIDEO_STARTS = (0, 20_000_000, 40_000_000, 60_000_000, 71_000_000)
VIDEO_DURATIONS = (20_000_000, 20_000_000, 20_000_000, 11_000_000, 4_000_000)


def two_streams() -> list[smooth.Stream]:
    video = smooth.Stream(
        "video",
        (
            smooth.VideoLevel(400_000, 640, 360, "00000001674D401E0000000168EE3C80"),
            smooth.VideoLevel(1_200_000, 1280, 720, "000000016764001F0000000168EBE3CB"),
        ),
        VIDEO_STARTS,
        VIDEO_DURATIONS,
    )
    audio = smooth.Stream(
        "audio",
        (smooth.AudioLevel(64_000, 48_000, 2, "1190"),),
        (0, 20_053_333),
        (20_053_333, 30_000_000),
        language="en",
    )
    return [video, audio]


def test_manifest_root_and_stream_attributes_are_exact() -> None:
    text = smooth.manifest(two_streams(), duration=75_000_000)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<SmoothStreamingMedia ')
    root = ET.fromstring(text)
    assert root.attrib == {
        "MajorVersion": "2",
        "MinorVersion": "2",
        "TimeScale": "10000000",
        "Duration": "75000000",
    }
    video, audio = root.findall("StreamIndex")
    assert video.attrib == {
        "Type": "video",
        "Name": "video",
        "Chunks": "5",
        "QualityLevels": "2",
        "MaxWidth": "1280",
        "MaxHeight": "720",
        "DisplayWidth": "1280",
        "DisplayHeight": "720",
        "Url": "QualityLevels({bitrate})/Fragments(video={start time})",
    }
    assert audio.attrib == {
        "Type": "audio",
        "Name": "audio",
        "Language": "en",
        "Chunks": "2",
        "QualityLevels": "1",
        "Url": "QualityLevels({bitrate})/Fragments(audio={start time})",
    }
    assert [q.attrib for q in video.findall("QualityLevel")] == [
        {
            "Index": "0",
            "Bitrate": "400000",
            "FourCC": "H264",
            "MaxWidth": "640",
            "MaxHeight": "360",
            "CodecPrivateData": "00000001674D401E0000000168EE3C80",
        },
        {
            "Index": "1",
            "Bitrate": "1200000",
            "FourCC": "H264",
            "MaxWidth": "1280",
            "MaxHeight": "720",
            "CodecPrivateData": "000000016764001F0000000168EBE3CB",
        },
    ]
    assert [q.attrib for q in audio.findall("QualityLevel")] == [
        {
            "Index": "0",
            "Bitrate": "64000",
            "FourCC": "AACL",
            "SamplingRate": "48000",
            "Channels": "2",
            "BitsPerSample": "16",
            "PacketSize": "4",
            "AudioTag": "255",
            "CodecPrivateData": "1190",
        }
    ]
    # Chunks come after the quality levels.
    assert [c.tag for c in video][-5:] == ["c"] * 5
    assert [c.tag for c in video][:2] == ["QualityLevel"] * 2


def test_chunks_carry_t_first_and_after_a_discontinuity_and_d_everywhere() -> None:
    root = ET.fromstring(smooth.manifest(two_streams(), duration=75_000_000))
    video = root.findall("StreamIndex")[0]
    chunks = [c.attrib for c in video.findall("c")]
    assert chunks == [
        {"t": "0", "d": "20000000"},
        {"d": "20000000"},
        {"d": "20000000"},
        {"d": "11000000"},
        {"d": "4000000"},
    ]
    assert expand_chunks(video) == list(zip(VIDEO_STARTS, VIDEO_DURATIONS, strict=True))
    gap = smooth.Stream("video", two_streams()[0].levels, (0, 10, 25), (10, 10, 5))
    chunks = [c.attrib for c in ET.fromstring(smooth.manifest([gap], duration=30)).iter("c")]
    assert chunks == [{"t": "0", "d": "10"}, {"d": "10"}, {"t": "25", "d": "5"}]


def test_repeat_writes_r_as_the_number_of_fragments_in_the_run() -> None:
    root = ET.fromstring(smooth.manifest(two_streams(), duration=75_000_000, repeat=True))
    video = root.findall("StreamIndex")[0]
    assert [c.attrib for c in video.findall("c")] == [
        {"t": "0", "d": "20000000", "r": "3"},
        {"d": "11000000"},
        {"d": "4000000"},
    ]
    assert video.get("Chunks") == "5"
    assert expand_chunks(video) == list(zip(VIDEO_STARTS, VIDEO_DURATIONS, strict=True))


def test_names_languages_display_size_and_packet_size() -> None:
    level = smooth.VideoLevel(1, 720, 576, "00")
    s = smooth.Stream("video", (level,), (5,), (10,), name="v2", display_size=(1024, 576))
    a = smooth.Stream("audio", (smooth.AudioLevel(2, 44_100, 1, "1208"),), (0,), (10,))
    root = ET.fromstring(smooth.manifest([s, a], duration=15))
    v, au = root.findall("StreamIndex")
    assert (v.get("Name"), v.get("DisplayWidth"), v.get("DisplayHeight")) == ("v2", "1024", "576")
    assert v.get("Url") == "QualityLevels({bitrate})/Fragments(v2={start time})"
    assert [c.attrib for c in v.iter("c")] == [{"t": "5", "d": "10"}]
    assert "Language" not in au.attrib and "MaxWidth" not in au.attrib
    custom = "QualityLevels({bitrate})/Fragments(audio={start time},format=x)"
    a2 = smooth.Stream("audio", a.levels, (0,), (10,), url=custom)
    assert ET.fromstring(smooth.manifest([a2], duration=10))[0].get("Url") == custom
    assert au.find("QualityLevel").get("PacketSize") == "2"  # type: ignore[union-attr]


def test_invalid_descriptions_are_rejected() -> None:
    level = smooth.VideoLevel(1, 2, 2, "00")
    audio = smooth.AudioLevel(1, 48_000, 2, "1190")
    with pytest.raises(ValueError, match="StreamIndex"):
        smooth.Stream("video", (audio,), (0,), (1,))
    with pytest.raises(ValueError, match="type"):
        smooth.Stream("text", (level,), (0,), (1,))
    with pytest.raises(ValueError, match="duration"):
        smooth.Stream("video", (level,), (0, 1), (1,))
    with pytest.raises(ValueError, match="durations"):
        smooth.Stream("video", (level,), (0,), (0,))
    with pytest.raises(ValueError, match="bitrates"):
        smooth.Stream("video", (level, level), (0,), (1,))
    with pytest.raises(ValueError, match="start time"):
        smooth.Stream("video", (level,), (0,), (1,), url="QualityLevels({bitrate})/x")
    stream = smooth.Stream("video", (level,), (0,), (1,))
    with pytest.raises(ValueError, match="names"):
        smooth.manifest([stream, stream], duration=1)
    with pytest.raises(ValueError, match="at least one"):
        smooth.manifest([], duration=1)


def test_attributes_are_escaped() -> None:
    s = smooth.Stream("audio", (smooth.AudioLevel(1, 8000, 1, "15"),), (0,), (1,), language='x"&<')
    root = ET.fromstring(smooth.manifest([s], duration=1))
    assert root.find("StreamIndex").get("Language") == 'x"&<'  # type: ignore[union-attr]


# --- 10 MHz timing -------------------------------------------------------------------------------


def ntsc_video(n: int = 12) -> Track:
    """29.97 fps at 90 kHz: 3003 ticks = 333666.67 x 100 ns, so every duration rounds."""
    cto = [6006, 15015, 3003, 6006] * (n // 4)
    samples = SampleIndex(
        dts=array("q", [7 + 3003 * i for i in range(n)]),
        duration=array("I", [3003] * n),
        cto=array("i", cto),
        size=array("I", [50] * n),
        offset=array("Q", [50 * i for i in range(n)]),
        keyframes=array("I", [0, 8]),
    )
    base = video_track()
    return Track(1, Kind.VIDEO, 90_000, "und", base.codec, base.stsd, -6006, samples, 320, 180)


def exact(ticks: int, timescale: int) -> Fraction:
    return Fraction(ticks * TEN_MHZ, timescale)


def round_half_up(x: Fraction) -> int:
    return int((x + Fraction(1, 2)) // 1)


@pytest.mark.parametrize(("start", "stop"), [(0, 12), (0, 8), (8, 12), (3, 7)])
def test_timing_rounds_decode_times_once_so_durations_never_drift(start: int, stop: int) -> None:
    track = ntsc_video()
    s = track.samples
    timing = smooth_timing(track, start, stop, time=123)
    decode = [round_half_up(exact(s.dts[i] - s.dts[start], 90_000)) for i in range(start, stop)]
    end = round_half_up(exact(s.dts[stop - 1] + 3003 - s.dts[start], 90_000))
    assert list(timing.durations) == [b - a for a, b in itertools.pairwise([*decode, end])]
    assert timing.duration == sum(timing.durations) == end == smooth_duration(track, start, stop)
    assert set(timing.durations) <= {333667, 333666}
    assert abs(timing.duration - exact(3003 * (stop - start), 90_000)) <= Fraction(1, 2)
    assert timing.time == 123


def test_offsets_make_presentation_relative_to_the_first_sample() -> None:
    track = ntsc_video()
    start, stop = 8, 12
    timing = smooth_timing(track, start, stop, time=0)
    assert timing.offsets is not None
    decode = 0
    for i, (d, off) in enumerate(zip(timing.durations, timing.offsets, strict=True), start):
        want = round_half_up(exact(track.pts(i) - track.pts(start), 90_000))
        assert decode + off == want
        decode += d
    assert timing.offsets[0] == 0
    assert min(timing.offsets) < 0  # B-frames: signed offsets


def test_audio_timing_has_no_offsets() -> None:
    track = audio_track()  # 48 kHz, 1024-sample frames, the last one 512
    timing = smooth_timing(track, 0, 10, time=5)
    assert timing.offsets is None
    assert list(timing.durations) == [213333, 213334, 213333] * 3 + [106667]
    assert timing.duration == round_half_up(exact(1024 * 9 + 512, 48_000))
    track.samples.cto[2] = 1
    with pytest.raises(ValueError, match="composition"):
        smooth_timing(track, 0, 3, time=0)


def test_timing_rejects_bad_ranges_and_times() -> None:
    with pytest.raises(ValueError, match="range"):
        smooth_timing(audio_track(), 3, 3, time=0)
    with pytest.raises(ValueError, match="tfxd"):
        smooth_timing(audio_track(), 0, 3, time=-1)


# --- fragments -----------------------------------------------------------------------------------


def parse_fragment(data: bytes) -> dict[str, Any]:
    root = walk(data)
    assert [c.kind for c in root.children] == ["moof", "mdat"]
    moof_box = root.find("moof")
    assert moof_box.tree() == ["mfhd", ("traf", ["tfhd", "trun", "uuid"])]
    traf = moof_box.find("traf")
    _, _, pos = full(data, moof_box.find("mfhd"))
    sequence = struct.unpack_from(">I", data, pos)[0]
    _, tfhd_flags, pos = full(data, traf.find("tfhd"))
    track_id = struct.unpack_from(">I", data, pos)[0]
    default_flags = struct.unpack_from(">I", data, pos + 4)[0] if tfhd_flags & 0x20 else None
    uuid = traf.find("uuid")
    assert data[uuid.body : uuid.body + 16] == TFXD_UUID
    version_flags, time, duration = struct.unpack_from(">IQQ", data, uuid.body + 16)
    assert uuid.end - uuid.start == 44
    return {
        "sequence": sequence,
        "tfhd_flags": tfhd_flags,
        "track_id": track_id,
        "default_flags": default_flags,
        "tfxd": (version_flags, time, duration),
        "trun": read_trun(data, traf.find("trun")),
        "payload_at": root.find("mdat").body - moof_box.start,
        "end": root.find("mdat").end,
    }


def test_video_fragment_box_tree_tfxd_and_trun() -> None:
    track = ntsc_video()
    run = run_of(track, 0, 8)
    data = smooth_fragment(run, sequence=7, time=10_000)
    f = parse_fragment(data)
    timing = smooth_timing(track, 0, 8, time=10_000)
    assert f["sequence"] == 7
    assert f["tfhd_flags"] == 0  # no default-base-is-moof, no defaults: per-sample values
    assert f["track_id"] == 1
    assert f["tfxd"] == (0x01000000, 10_000, timing.duration)
    trun = f["trun"]
    assert trun.version == 1 and trun.flags == 0xF01
    entries = trun.entries
    assert [e["duration"] for e in entries] == list(timing.durations)
    assert [e["cto"] for e in entries] == list(timing.offsets or [])
    assert sum(e["duration"] for e in entries) == timing.duration
    assert [e["flags"] for e in entries] == [SYNC_SAMPLE_FLAGS] + [NON_SYNC_SAMPLE_FLAGS] * 7
    # data_offset (from the moof's first byte) lands on the first payload byte.
    assert trun.data_offset == f["payload_at"]
    pos = trun.data_offset
    for payload, entry in zip(run.data, entries, strict=True):
        assert entry["size"] == len(payload)
        assert data[pos : pos + len(payload)] == payload
        pos += len(payload)
    assert pos == f["end"] == len(data)


def test_audio_fragment_says_sync_once_and_has_no_offsets() -> None:
    track = audio_track()
    data = smooth_fragment(run_of(track, 2, 9), sequence=1, time=0)
    f = parse_fragment(data)
    assert f["tfhd_flags"] == 0x20
    assert f["default_flags"] == SYNC_SAMPLE_FLAGS
    assert f["track_id"] == 2
    trun = f["trun"]
    assert trun.version == 0 and trun.flags == 0x301
    assert f["tfxd"][2] == smooth_duration(track, 2, 9)


def test_track_id_can_be_chosen() -> None:
    data = smooth_fragment(run_of(audio_track(), 0, 2), sequence=1, time=0, track_id=1)
    assert parse_fragment(data)["track_id"] == 1
    with pytest.raises(ValueError, match="track_id"):
        smooth_fragment(run_of(audio_track(), 0, 2), sequence=1, time=0, track_id=0)


def test_short_nal_lengths_are_rewritten_to_four_bytes() -> None:
    base = video_track(n=2, keyframes=(0,), sizes=[2 + 3 + 2 + 1, 2 + 4])
    avc = AvcConfig(100, 0, 13, 2, (b"\x67",), (b"\x68",), b"")
    track = Track(1, Kind.VIDEO, 12800, "und", avc, base.stsd, 0, base.samples, 320, 180)
    first = b"\x00\x03" + b"\x65ab" + b"\x00\x01" + b"\x06"
    second = b"\x00\x04" + b"\x41xyz"
    data = smooth_fragment(Run(track, 0, 2, [first, second]), sequence=1, time=0)
    f = parse_fragment(data)
    want = [b"\x00\x00\x00\x03\x65ab\x00\x00\x00\x01\x06", b"\x00\x00\x00\x04\x41xyz"]
    assert [e["size"] for e in f["trun"].entries] == [len(w) for w in want]
    assert data[f["payload_at"] :] == b"".join(want)
    # A damaged length (loading cannot see it) is cut at the sample's end, not a failed request.
    data = smooth_fragment(
        Run(track, 0, 2, [b"\x00\x09" + b"\x65abcde", second]), sequence=1, time=0
    )
    f = parse_fragment(data)
    assert data[f["payload_at"] :].startswith(b"\x00\x00\x00\x06\x65abcde\x00")


def test_fragment_rejects_mismatched_payloads_and_sequence() -> None:
    track = audio_track()
    with pytest.raises(ValueError, match="sizes"):
        smooth_fragment(Run(track, 0, 2, [b"x", b"y"]), sequence=1, time=0)
    with pytest.raises(ValueError, match="sequence"):
        smooth_fragment(run_of(track, 0, 2), sequence=-1, time=0)


# --- what a Smooth client plays ------------------------------------------------------------------


def cuts(track: Track, pieces: int) -> list[int]:
    n = len(track.samples)
    if track.kind is Kind.AUDIO:
        return [n * k // pieces for k in range(pieces)] + [n]
    keys = list(track.samples.keyframes)
    return [keys[len(keys) * k // pieces] for k in range(pieces)] + [n]


def timeline(track: Track, bounds: list[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Contiguous fragment times: each starts where the previous one's samples end."""
    durations = tuple(smooth_duration(track, a, b) for a, b in itertools.pairwise(bounds))
    starts = tuple(itertools.accumulate(durations[:-1], initial=0))
    return starts, durations


def test_a_client_decodes_fragments_from_the_manifest_alone(
    source: Path, movie: Movie, tmp_path: Path
) -> None:
    data = source.read_bytes()
    (video,), (audio,) = movie.video(), movie.audio()
    assert isinstance(video.codec, AvcConfig) and isinstance(audio.codec, AacConfig)
    vbounds, abounds = cuts(video, 3), cuts(audio, 4)
    vstarts, vdurations = timeline(video, vbounds)
    astarts, adurations = timeline(audio, abounds)
    text = smooth.manifest(
        [
            smooth.Stream(
                "video",
                (
                    smooth.VideoLevel(
                        video.bitrate(),
                        video.width,
                        video.height,
                        codecs.avc_codec_private_data(video.codec),
                    ),
                ),
                vstarts,
                vdurations,
            ),
            smooth.Stream(
                "audio",
                (
                    smooth.AudioLevel(
                        audio.bitrate(),
                        audio.sample_rate,
                        audio.channels,
                        codecs.aac_codec_private_data(audio.codec),
                        codecs.aac_fourcc(audio.codec),
                    ),
                ),
                astarts,
                adurations,
                language="en",
            ),
        ],
        duration=max(vstarts[-1] + vdurations[-1], astarts[-1] + adurations[-1]),
        repeat=True,
    )
    levels = {level.stream_type: level for level in read_levels(text)}
    for kind, track, bounds, stream in (
        ("video", video, vbounds, "v"),
        ("audio", audio, abounds, "a"),
    ):
        level = levels[kind]
        chunks = read_chunks(text, kind)
        assert len(chunks) == len(bounds) - 1
        parts = [client_init(level)]
        s = track.samples
        for sequence, ((start, stop), (t, d)) in enumerate(
            zip(itertools.pairwise(bounds), chunks, strict=True), 1
        ):
            payload = [data[s.offset[i] : s.offset[i] + s.size[i]] for i in range(start, stop)]
            fragment = smooth_fragment(Run(track, start, stop, payload), sequence=sequence, time=t)
            assert parse_fragment(fragment)["tfxd"] == (0x01000000, t, d)
            parts.append(fragment)
        out = tmp_path / f"smooth_{kind}.mp4"
        out.write_bytes(b"".join(parts))

        assert decode_errors(str(out)) == ""
        want = probe_frames(str(source), stream)
        got = probe_frames(str(out), stream)
        assert len(got) == len(want) == len(s)
        assert [p["size"] for p in got] == [p["size"] for p in want]
        assert [p["flags"][0] for p in got] == [p["flags"][0] for p in want]
        # The client's own init has no edit list, so it also decodes the AAC priming frame(s).
        priming = sum("D" in p["flags"] for p in want)
        assert frame_hashes(out, stream)[priming:] == frame_hashes(source, stream)
