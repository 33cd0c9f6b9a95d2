"""Each class of damaged source the fuzzer found, as one byte-patched mutant of the sample: it is
refused at load with the reason, or (where the value is legal) every output builds."""

from __future__ import annotations

import itertools
import struct
from fractions import Fraction

import pytest

from origin.core import pipeline, presentation
from origin.core.errors import MediaError
from origin.core.mp4 import parse, parse_bytes
from tests.support import fuzzing

VIDEO, AUDIO = 0, 1  # track order in the sample files


def box(data: bytes, kind: str, n: int = 0) -> fuzzing.Box:
    return [b for b in fuzzing.walk(data) if b.type == kind][n]


def patch(data: bytes, kind: str, n: int, at: int, fmt: str, value: int) -> bytes:  # noqa: PLR0917
    """``data`` with the field at payload offset ``at`` of the ``n``-th ``kind`` box set."""
    buf = bytearray(data)
    struct.pack_into(fmt, buf, box(data, kind, n).payload + at, value)
    return bytes(buf)


def refused(data: bytes, reason: str) -> None:
    out = fuzzing.check([data])
    assert out.kind == "refused", out.detail
    assert reason in out.detail


def test_pixel_aspect_ratio_overflowing_tkhd_is_refused(fuzz_inputs: dict[str, bytes]) -> None:
    data = patch(fuzz_inputs["progressive.mp4"], "pasp", 0, 0, ">I", 0x8A8D93E0)
    refused(data, "display size")


def test_audio_shorter_than_video_by_segments_builds_with_fewer_audio_segments(
    fuzz_inputs: dict[str, bytes],
) -> None:
    # mdhd v0: version/flags, creation, modification, then the timescale. 4x: 1 s of audio.
    data = patch(fuzz_inputs["progressive.mp4"], "mdhd", AUDIO, 12, ">I", 4 * 48000)
    out = fuzzing.check([data])
    assert out.kind == "built", out.detail
    p = pipeline.prepare("a", [parse_bytes(data)], fuzzing.TARGET)
    assert p.audio is not None and len(p.audio.seg) < len(p.video[0].seg)
    assert all(a < b for a, b in itertools.pairwise(p.audio.seg.starts))
    # Muxed into TS, the audio keeps the video's cuts (empty at the end).
    assert len(p.muxed_audio[p.video[0].id]) == len(p.video[0].seg)


def test_sample_duration_beyond_32_bits_at_10_mhz_is_refused(
    fuzz_inputs: dict[str, bytes],
) -> None:
    data = patch(fuzz_inputs["progressive.mp4"], "mdhd", VIDEO, 12, ">I", 1)  # 512 s a frame
    refused(data, "32-bit sample durations of Smooth Streaming")


def test_fragment_gap_beyond_32_bits_at_10_mhz_is_refused(fuzz_inputs: dict[str, bytes]) -> None:
    # tfdt v1 of the last video fragment (one tfdt per traf, after its tfhd).
    data = fuzz_inputs["fragmented.mp4"]
    tfhds = [b for b in fuzzing.walk(data) if b.type == "tfhd"]
    last = max(k for k, b in enumerate(tfhds) if data[b.payload + 4 : b.payload + 8] == b"\0\0\0\1")
    data = patch(data, "tfdt", last, 4, ">Q", 2**31)
    refused(data, "32-bit sample durations of Smooth Streaming")


def test_composition_offsets_beyond_32_bits_at_10_mhz_are_refused(
    fuzz_inputs: dict[str, bytes],
) -> None:
    # ctts: version/flags, entry count, then (count, offset) pairs.
    data = patch(fuzz_inputs["progressive.mp4"], "ctts", 0, 12, ">I", 0x7FFFFFFF)
    refused(data, "composition offsets span")


def test_edit_list_shift_beyond_the_track_is_refused(fuzz_inputs: dict[str, bytes]) -> None:
    # elst v0: version/flags, count, then segment_duration and media_time: presentation would
    # start 5.3 s into a 4 s track, so every time is negative and the segment lasts 0 (DASH).
    data = patch(fuzz_inputs["progressive.mp4"], "elst", VIDEO, 12, ">i", 0x10000)
    refused(data, "presentation times do not increase")


def test_edit_list_shift_before_what_ts_timestamps_hold_is_refused(
    fuzz_inputs: dict[str, bytes],
) -> None:
    data = patch(fuzz_inputs["progressive.mp4"], "elst", VIDEO, 12, ">i", 0x7FFFFFFF)
    refused(data, "earlier than MPEG-TS timestamps can express")


def test_audio_access_unit_beyond_adts_and_pes_header_is_refused(
    fuzz_inputs: dict[str, bytes],
) -> None:
    # stsz: version/flags, uniform size 0, count, then the sizes: the first audio sample.
    data = patch(fuzz_inputs["progressive.mp4"], "stsz", AUDIO, 12, ">I", 0x10000)
    refused(data, "more than ADTS")


def test_chunk_offset_beyond_the_file_is_refused_before_overflowing(
    fuzz_inputs: dict[str, bytes],
) -> None:
    # co64: version/flags, count, then 64-bit offsets; adding sizes to 2^64-1 overflowed.
    data = patch(fuzz_inputs["co64-stz2.mp4"], "co64", 0, 8, ">Q", 2**64 - 1)
    refused(data, "track 1: a chunk lies beyond the end of the file")


def test_track_id_zero_is_refused(fuzz_inputs: dict[str, bytes]) -> None:
    # tkhd v0: version/flags, creation, modification, then track_ID.
    data = patch(fuzz_inputs["progressive.mp4"], "tkhd", VIDEO, 12, ">I", 0)
    refused(data, "track_ID 0 is out of range")


def test_fragment_decode_time_beyond_63_bits_is_refused(fuzz_inputs: dict[str, bytes]) -> None:
    data = patch(fuzz_inputs["fragmented.mp4"], "tfdt", 0, 4, ">Q", 2**63 - 1)
    with pytest.raises(MediaError, match=r"2\^63"):
        parse_bytes(data)


def test_unexpected_parser_exception_refuses_the_file_naming_the_box(
    fuzz_inputs: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise struct.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setattr(parse, "_parse_moov", broken)
    with pytest.raises(MediaError, match=r"corrupt box 'moov' at offset \d+: struct.error"):
        parse_bytes(fuzz_inputs["progressive.mp4"])


def test_unexpected_exception_while_preparing_refuses_the_asset(
    fuzz_inputs: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    movie = parse_bytes(fuzz_inputs["progressive.mp4"])

    def broken(*args: object) -> None:
        raise IndexError("array index out of range")

    monkeypatch.setattr(presentation, "cut_video", broken)
    with pytest.raises(MediaError, match="IndexError: array index out of range"):
        pipeline.prepare("a", [movie], Fraction(2))


def test_refusal_names_the_file_when_given(fuzz_inputs: dict[str, bytes]) -> None:
    data = patch(fuzz_inputs["progressive.mp4"], "tkhd", VIDEO, 12, ">I", 0)
    with pytest.raises(MediaError, match=r"^movie\.mp4: track 0: "):
        pipeline.prepare("a", [parse_bytes(data)], Fraction(2), names=["movie.mp4"])


@pytest.mark.parametrize("track", [VIDEO, AUDIO])
def test_a_sample_far_from_the_end_overrunning_the_file_is_refused(
    fuzz_inputs: dict[str, bytes], track: int
) -> None:
    # The overrun check reads only chunks near the file's end: a sample early in the file (the
    # 3rd, its chunk far from the end) made bigger than the file must still be found.
    data = fuzz_inputs["progressive.mp4"]
    data = patch(data, "stsz", track, 12 + 4 * 2, ">I", len(data))
    refused(data, "sample data lies beyond the end of the file")
