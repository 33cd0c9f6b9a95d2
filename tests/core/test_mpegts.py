"""MPEG-TS segment writer: packet structure on hand-built tracks, then real media through ffmpeg."""

from __future__ import annotations

import json
import random
import subprocess
from array import array
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import pytest

from origin.core.errors import MediaError
from origin.core.index import SampleIndex
from origin.core.mux import adts, mpegts
from origin.core.mux.mpegts import (
    AUDIO_FRAMES_PER_PES,
    AUDIO_PID,
    PCR_INTERVAL,
    PMT_PID,
    PTS_OFFSET,
    VIDEO_PID,
    SampleSpan,
    mux_segment,
    segment_size_bound,
    to_90k,
)
from origin.core.mux.run import Run
from origin.core.track import AacConfig, AvcConfig, Kind, Track
from tests.support.media import FFMPEG, FFPROBE, make_mp4, probe_frames
from tests.support.ts_demux import (
    adts_frames,
    annexb_nals,
    check_continuity,
    crc32_reference,
    parse_packets,
    parse_pes_list,
    pat_pmt,
    v90,
)

MASK33 = (1 << 33) - 1
SPS = bytes.fromhex("6764000dacd941419f9f011000000300100000030320f1429960")
PPS = bytes.fromhex("68efbcb0")
AAC_LC = AacConfig(2, 48000, 3, 2, b"\x11\x90", 0, 0)


# --- hand-built tracks ------------------------------------------------------------------------


def _nal_body(rng: random.Random, nal_type: int, size: int) -> bytes:
    # No zero bytes: the payload can never contain a start code, so Annex B splits back exactly.
    return bytes((0x60 | nal_type,)) + bytes(rng.randrange(1, 256) for _ in range(size - 1))


def avc_track(
    n: int = 31,
    *,
    gop: int = 10,
    nls: int = 4,
    timescale: int = 12800,
    frame: int = 512,
    with_aud: bool = False,
    sizes: tuple[int, int] = (200, 2500),
    seed: int = 1,
    pts_shift: int | None = None,
) -> tuple[Track, list[bytes]]:
    """H.264-like track with closed GOPs of I P B B P B B ... (2 B-frames), like x264 writes."""
    rng = random.Random(seed)
    dts, cto, size, payloads = [], [], [], []
    for k in range(n):
        start = k - k % gop
        local = k % gop
        if local == 0:
            disp = 0
        else:
            j = (local - 1) % 3
            base = local - j
            disp = base + 2 if j == 0 else base + j - 1
            disp = min(disp, gop - 1, n - 1 - start)
        dts.append(k * frame)
        cto.append((start + disp - k + 1) * frame)
        key = local == 0
        nals = []
        if with_aud:
            nals.append(b"\x09\xf0")
        nals.append(_nal_body(rng, 6, 12))  # SEI
        nals.append(_nal_body(rng, 5 if key else 1, rng.randrange(*sizes)))
        data = b"".join(len(x).to_bytes(nls, "big") + x for x in nals)
        size.append(len(data))
        payloads.append(data)
    idx = SampleIndex(
        dts=array("q", dts),
        duration=array("I", [frame] * n),
        cto=array("i", cto),
        size=array("I", size),
        offset=array("Q", [0] * n),
        keyframes=array("I", range(0, n, gop)),
    )
    cfg = AvcConfig(0x64, 0, 0x0D, nls, (SPS,), (PPS,), b"")
    shift = -frame if pts_shift is None else pts_shift
    track = Track(1, Kind.VIDEO, timescale, "und", cfg, b"", shift, idx, 320, 180)
    return track, payloads


def aac_track(
    n: int = 60,
    *,
    timescale: int = 48000,
    frame: int = 1024,
    config: AacConfig = AAC_LC,
    sizes: tuple[int, int] = (150, 400),
    seed: int = 2,
    pts_shift: int = -1024,
) -> tuple[Track, list[bytes]]:
    rng = random.Random(seed)
    payloads = [rng.randbytes(rng.randrange(*sizes)) for _ in range(n)]
    idx = SampleIndex(
        dts=array("q", [i * frame for i in range(n)]),
        duration=array("I", [frame] * n),
        cto=array("i", [0] * n),
        size=array("I", [len(p) for p in payloads]),
        offset=array("Q", [0] * n),
        keyframes=array("I", range(n)),
    )
    track = Track(2, Kind.AUDIO, timescale, "eng", config, b"", pts_shift, idx, 0, 0)
    return track, payloads


def run(track: Track, payloads: list[bytes], start: int = 0, stop: int | None = None) -> Run:
    stop = len(payloads) if stop is None else stop
    return Run(track, start, stop, payloads[start:stop])


# --- structure --------------------------------------------------------------------------------


AV = tuple[Track, list[bytes], Track, list[bytes]]


@pytest.fixture(scope="module")
def av() -> AV:
    v, vp = avc_track(31)
    a, ap = aac_track(60)
    return v, vp, a, ap


def test_every_packet_is_188_bytes_starting_with_sync_byte(av: AV) -> None:
    v, vp, a, ap = av
    ts = mux_segment(run(v, vp), run(a, ap), sequence=0)
    assert len(ts) % 188 == 0
    assert ts[::188] == b"\x47" * (len(ts) // 188)
    parse_packets(ts)


def test_pat_and_pmt_open_the_segment_with_valid_crc(av: AV) -> None:
    v, vp, a, ap = av
    packets = parse_packets(mux_segment(run(v, vp), run(a, ap), sequence=7))
    pat, pmt = pat_pmt(packets)
    assert pat[0] == 0 and pat[8:12] == b"\x00\x01\xf0\x00"  # program 1 -> PID 0x1000
    assert pmt[0] == 2 and pmt[3:5] == b"\x00\x01"
    assert (pmt[8] & 0x1F) << 8 | pmt[9] == VIDEO_PID  # PCR PID
    assert pmt[12:-4] == bytes((0x1B, 0xE1, 0x00, 0xF0, 0, 0x0F, 0xE1, 0x01, 0xF0, 0))
    assert mpegts.crc32_mpeg2(pat[:-4]) == crc32_reference(pat[:-4])
    assert [p.pid for p in packets].count(0) == 1


@pytest.mark.parametrize("kind", ["audio-only", "video-only"])
def test_pmt_lists_only_present_streams_and_their_pcr_pid(av: AV, kind: str) -> None:
    v, vp, a, ap = av
    if kind == "audio-only":
        ts = mux_segment(None, run(a, ap), sequence=0)
        pid, stream = AUDIO_PID, bytes((0x0F, 0xE1, 0x01, 0xF0, 0))
    else:
        ts = mux_segment(run(v, vp), None, sequence=0)
        pid, stream = VIDEO_PID, bytes((0x1B, 0xE1, 0x00, 0xF0, 0))
    packets = parse_packets(ts)
    _, pmt = pat_pmt(packets)
    assert (pmt[8] & 0x1F) << 8 | pmt[9] == pid
    assert pmt[12:-4] == stream
    assert {p.pid for p in packets} == {0, PMT_PID, pid}


def test_psi_counters_follow_the_sequence_number(av: AV) -> None:
    _, _, a, ap = av
    for seq in (0, 5, 15, 16, 33):
        packets = parse_packets(mux_segment(None, run(a, ap, 0, 10), sequence=seq))
        assert packets[0].cc == packets[1].cc == seq % 16


def test_video_pes_header_fields_parse_back(av: AV) -> None:
    v, vp, a, ap = av
    packets = parse_packets(mux_segment(run(v, vp), run(a, ap), sequence=0))
    pes = parse_pes_list(packets, VIDEO_PID)
    assert len(pes) == len(vp)
    for i, p in enumerate(pes):
        assert p.stream_id == 0xE0
        assert p.packet_length == 0  # unbounded
        assert p.flags == 0x84  # data_alignment_indicator
        pts, dts = v90(v, i)
        assert p.pts == pts
        assert (p.dts if p.dts is not None else p.pts) == dts
        if p.dts is not None:
            assert p.dts < p.pts  # DTS written only when it differs
        assert p.first.pusi
        assert sum(q.pusi for q in p.packets) == 1


def test_pts_only_when_pts_equals_dts() -> None:
    v, vp = avc_track(10, gop=10)
    cto = v.samples.cto
    flat = SampleIndex(
        dts=v.samples.dts,
        duration=v.samples.duration,
        cto=array("i", [0] * len(cto)),
        size=v.samples.size,
        offset=v.samples.offset,
        keyframes=v.samples.keyframes,
    )
    track = Track(1, Kind.VIDEO, v.timescale, "und", v.codec, b"", 0, flat)
    pes = parse_pes_list(parse_packets(mux_segment(run(track, vp), None, sequence=0)), VIDEO_PID)
    assert all(p.dts is None for p in pes)
    assert [p.pts for p in pes] == [to_90k(i * 512, 12800) + PTS_OFFSET for i in range(10)]


def test_video_payload_is_annexb_with_aud_first_and_parameter_sets_on_keyframes(av: AV) -> None:
    v, vp, _, _ = av
    pes = parse_pes_list(parse_packets(mux_segment(run(v, vp), None, sequence=0)), VIDEO_PID)
    for i, p in enumerate(pes):
        nals = annexb_nals(p.payload)
        assert nals[0] == b"\x09\xf0"
        src = vp[i]
        body = []
        q = 0
        while q < len(src):
            n = int.from_bytes(src[q : q + 4], "big")
            body.append(src[q + 4 : q + 4 + n])
            q += 4 + n
        if v.samples.is_sync(i):
            assert nals[1:3] == [SPS, PPS]
            assert nals[3:] == body
            assert p.first.rai
        else:
            assert nals[1:] == body
            assert not p.first.rai


@pytest.mark.parametrize("nls", [1, 2, 4])
def test_nal_length_sizes_convert_to_the_same_annexb(nls: int) -> None:
    v4, vp4 = avc_track(13, nls=4, sizes=(20, 250))
    v, vp = avc_track(13, nls=nls, sizes=(20, 250))
    ref = parse_pes_list(parse_packets(mux_segment(run(v4, vp4), None, sequence=0)), VIDEO_PID)
    got = parse_pes_list(parse_packets(mux_segment(run(v, vp), None, sequence=0)), VIDEO_PID)
    assert [p.payload for p in got] == [p.payload for p in ref]


def test_aud_already_in_the_sample_is_dropped() -> None:
    v, vp = avc_track(7, with_aud=True)
    pes = parse_pes_list(parse_packets(mux_segment(run(v, vp), None, sequence=0)), VIDEO_PID)
    for p in pes:
        nals = annexb_nals(p.payload)
        assert [x[0] & 0x1F for x in nals].count(9) == 1
        assert nals[0] == b"\x09\xf0"


@pytest.mark.parametrize(
    ("sample", "carried"),
    [
        (b"\x00\x00\x00\x10\x65abc", [b"\x65abc"]),
        (b"\x00\x00\x00", []),
        (b"\x00\x00\x00\x02\x65a\x00\x00", [b"\x65a"]),
    ],
    ids=["overrun", "short-prefix", "truncated-second-prefix"],
)
def test_damaged_length_prefixes_are_passed_on_not_fatal(
    sample: bytes, carried: list[bytes]
) -> None:
    """Damaged payload (which loading cannot see) must not fail the request of a loaded asset:
    a NAL that overruns is cut at the sample's end, a stray tail is dropped."""
    v, _ = avc_track(1)
    ts = mux_segment(Run(v, 0, 1, [sample]), None, sequence=0)
    (pes,) = parse_pes_list(parse_packets(ts), VIDEO_PID)
    nals = [n for n in annexb_nals(pes.payload) if n[0] & 0x1F not in (7, 8, 9)]
    assert nals == carried


def test_wrong_codec_or_no_track_is_refused(av: AV) -> None:
    v, vp, a, ap = av
    with pytest.raises(MediaError):
        mux_segment(run(a, ap), None, sequence=0)
    with pytest.raises(MediaError):
        mux_segment(None, run(v, vp), sequence=0)
    with pytest.raises(ValueError, match="needs a video or an audio"):
        mux_segment(None, None, sequence=0)


def test_elementary_counters_run_0_to_15_and_end_at_15(av: AV) -> None:
    v, vp, a, ap = av
    for vr, ar in [(run(v, vp), run(a, ap)), (None, run(a, ap)), (run(v, vp), None)]:
        packets = parse_packets(mux_segment(vr, ar, sequence=3))
        for pid in (VIDEO_PID, AUDIO_PID):
            ccs = [p.cc for p in packets if p.pid == pid and p.has_payload]
            assert len(ccs) % 16 == 0
            assert ccs == [i % 16 for i in range(len(ccs))]
        check_continuity(packets)
        assert not any(p.di for p in packets)


def test_counter_padding_keeps_the_payload_intact(av: AV) -> None:
    v, vp, a, ap = av
    # Many sizes: each one needs a different number of extra packets.
    for stop in range(1, 12):
        packets = parse_packets(mux_segment(run(v, vp, 0, stop), run(a, ap, 0, stop), sequence=0))
        pes = parse_pes_list(packets, AUDIO_PID)
        assert [f for p in pes for _, f in adts_frames(p.payload)] == ap[:stop]
        vpes = parse_pes_list(packets, VIDEO_PID)
        assert len(vpes) == stop
        for pid in (VIDEO_PID, AUDIO_PID):
            assert sum(p.pid == pid and p.has_payload for p in packets) % 16 == 0


def test_consecutive_segments_form_one_continuous_stream(av: AV) -> None:
    v, vp, a, ap = av
    cuts_v = [0, 10, 20, 31]
    cuts_a = [0, 19, 38, 60]
    ts = b"".join(
        mux_segment(
            run(v, vp, cuts_v[k], cuts_v[k + 1]),
            run(a, ap, cuts_a[k], cuts_a[k + 1]),
            sequence=100 + k,
        )
        for k in range(3)
    )
    check_continuity(parse_packets(ts))


def test_tiny_pid_declares_its_counter_jump_and_still_ends_at_15() -> None:
    a, ap = aac_track(3, sizes=(2, 3))
    tiny = mux_segment(None, run(a, ap, 2, 3), sequence=1)
    packets = parse_packets(tiny)
    apk = [p for p in packets if p.pid == AUDIO_PID]
    assert sum(p.has_payload for p in apk) < 16
    assert apk[0].di
    assert apk[-1].cc == 15
    before = mux_segment(None, run(a, ap, 0, 2), sequence=0)
    after = mux_segment(None, run(a, ap, 0, 3), sequence=2)
    check_continuity(parse_packets(before + tiny + after))
    pes = parse_pes_list(packets, AUDIO_PID)
    assert [f for _, f in adts_frames(pes[0].payload)] == ap[2:3]


def test_pcr_on_every_video_pes_equals_its_dts_and_never_steps_back(av: AV) -> None:
    v, vp, a, ap = av
    packets = parse_packets(mux_segment(run(v, vp), run(a, ap), sequence=0))
    for i, p in enumerate(parse_pes_list(packets, VIDEO_PID)):
        assert p.first.pcr == v90(v, i)[1]
    pcrs = [p.pcr for p in packets if p.pcr is not None]
    assert all(p.pid == VIDEO_PID for p in packets if p.pcr is not None)
    assert pcrs == sorted(pcrs)
    # The first packet after PAT/PMT carries a PCR, on the PCR PID.
    assert packets[2].pcr is not None


def test_audio_only_segment_puts_pcr_on_audio_within_100_ms() -> None:
    a, ap = aac_track(100)
    packets = parse_packets(mux_segment(None, run(a, ap), sequence=0))
    pes = parse_pes_list(packets, AUDIO_PID)
    assert all(p.first.pcr == p.pts for p in pes)
    pcrs = [p.pcr for p in packets if p.pcr is not None]
    assert max(b - a for a, b in pairwise(pcrs)) <= PCR_INTERVAL


def test_slow_video_gets_pcr_only_packets_between_its_frames() -> None:
    v, vp = avc_track(4, gop=4, frame=6400)  # 2 fps
    a, ap = aac_track(100)
    packets = parse_packets(mux_segment(run(v, vp), run(a, ap), sequence=0))
    pcr_only = [p for p in packets if p.pcr is not None and not p.has_payload]
    assert pcr_only
    assert all(p.pid == VIDEO_PID for p in pcr_only)
    pcrs = [p.pcr for p in packets if p.pcr is not None]
    assert pcrs == sorted(pcrs)
    # An audio PES spans up to 5 frames (~107 ms), so that is the granularity of the gaps; the
    # first gap is before the audio starts, when there is nothing to carry a PCR.
    assert max(b - a for a, b in pairwise(pcrs[1:])) <= PCR_INTERVAL + 5 * 1920
    check_continuity(packets)


def test_audio_pes_carry_adts_frames_with_correct_length_and_pts(av: AV) -> None:
    v, vp, a, ap = av
    packets = parse_packets(mux_segment(run(v, vp), run(a, ap), sequence=0))
    pes = parse_pes_list(packets, AUDIO_PID)
    i = 0
    for p in pes:
        assert p.stream_id == 0xC0
        assert p.packet_length > 0
        assert p.dts is None
        assert p.pts == to_90k(a.pts(i), a.timescale) + PTS_OFFSET
        frames = adts_frames(p.payload)
        assert 1 <= len(frames) <= AUDIO_FRAMES_PER_PES
        for h, f in frames:
            assert h[2] == 0x4C and h[3] >> 6 == 2  # LC, 48 kHz, 2 channels
            assert f == ap[i]
            i += 1
    assert i == len(ap)
    assert len(pes) == -(-len(ap) // AUDIO_FRAMES_PER_PES)


def test_pes_are_interleaved_in_decode_order(av: AV) -> None:
    v, vp, a, ap = av
    packets = parse_packets(mux_segment(run(v, vp), run(a, ap), sequence=0))
    where = {id(p): i for i, p in enumerate(packets)}
    starts = []
    for pid in (VIDEO_PID, AUDIO_PID):
        for p in parse_pes_list(packets, pid):
            starts.append((where[id(p.first)], p.dts if p.dts is not None else p.pts, pid))
    order = [(t, pid) for _, t, pid in sorted(starts)]
    assert [t for t, _ in order] == sorted(t for t, _ in order)
    assert {pid for _, pid in order} == {VIDEO_PID, AUDIO_PID}
    # Audio and video really alternate rather than following each other in blocks.
    switches = sum(1 for x, y in pairwise(order) if x[1] != y[1])
    assert switches > 10


def test_interleaving_compares_times_exactly_across_timescales() -> None:
    # Video at 30000/1001 in timescale 30000 vs audio at 44.1 kHz: no float rounding.
    v, vp = avc_track(30, timescale=30000, frame=1001, pts_shift=0)
    a, ap = aac_track(43, timescale=44100, pts_shift=0)
    cfg = AacConfig(2, 44100, 4, 2, b"", 0, 0)
    a = Track(2, Kind.AUDIO, 44100, "eng", cfg, b"", 0, a.samples)
    packets = parse_packets(mux_segment(run(v, vp), run(a, ap), sequence=0))
    where = {id(p): i for i, p in enumerate(packets)}
    seq = []
    for pid, track in ((VIDEO_PID, v), (AUDIO_PID, a)):
        pes = parse_pes_list(packets, pid)
        i = 0
        for p in pes:
            seq.append((where[id(p.first)], Fraction(track.samples.dts[i], track.timescale)))
            i += 1 if pid == VIDEO_PID else len(adts_frames(p.payload))
    times = [t for _, t in sorted(seq)]
    assert times == sorted(times)


def test_timestamps_wrap_at_33_bits() -> None:
    start = ((1 << 33) // 90000 - 11) * 12800  # PTS_OFFSET and 1.7 s before the wrap
    v, vp = avc_track(50, pts_shift=start)
    packets = parse_packets(mux_segment(run(v, vp), None, sequence=0))
    pes = parse_pes_list(packets, VIDEO_PID)
    for i, p in enumerate(pes):
        pts, dts = v90(v, i)
        assert p.pts == pts & MASK33
        assert p.first.pcr == dts & MASK33
    assert any(v90(v, i)[0] > MASK33 for i in range(50))


def test_negative_composition_offset_never_puts_dts_after_pts() -> None:
    v, vp = avc_track(4, gop=4, pts_shift=0)
    cto = array("i", [0, -512, 0, 0])
    s = v.samples
    idx = SampleIndex(
        dts=s.dts, duration=s.duration, cto=cto, size=s.size, offset=s.offset,
        keyframes=s.keyframes,
    )  # fmt: skip
    track = Track(1, Kind.VIDEO, v.timescale, "und", v.codec, b"", 0, idx)
    packets = parse_packets(mux_segment(run(track, vp), None, sequence=0))
    for p in parse_pes_list(packets, VIDEO_PID):
        assert p.dts is None or p.dts <= p.pts
    pcrs = [p.pcr for p in packets if p.pcr is not None]
    assert pcrs == sorted(pcrs)


def test_to_90k_rounds_half_up_exactly() -> None:
    assert to_90k(1, 180000) == 1  # 0.5 -> 1
    assert to_90k(1, 180001) == 0
    assert to_90k(-1, 180000) == 0  # -0.5 -> 0
    assert to_90k(1001, 30000) == 3003
    assert to_90k(1024, 44100) == 2090  # 2089.795...
    assert to_90k(-1024, 48000) == -1920


# --- ADTS -------------------------------------------------------------------------------------


def test_adts_header_parses_back() -> None:
    h = adts.header(adts.header_prefix(AAC_LC), 371)
    assert len(h) == 7
    assert h[0] == 0xFF and h[1] & 0xF6 == 0xF0 and h[1] & 1  # sync, MPEG-4, no CRC
    assert h[2] >> 6 == 1  # profile = object_type - 1
    assert h[2] >> 2 & 0xF == 3  # 48 kHz
    assert (h[2] & 1) << 2 | h[3] >> 6 == 2
    assert (h[3] & 3) << 11 | h[4] << 3 | h[5] >> 5 == 378
    assert (h[5] & 0x1F) << 6 | h[6] >> 2 == 0x7FF  # VBR buffer fullness
    assert h[6] & 3 == 0  # one raw data block


def test_adts_he_aac_signals_lc_with_the_core_rate() -> None:
    for aot in (5, 29):
        cfg = AacConfig(aot, 24000, 6, 2, b"", 0, 0)
        h = adts.header(adts.header_prefix(cfg), 100)
        assert h[2] >> 6 == 1
        assert h[2] >> 2 & 0xF == 6


def test_adts_explicit_rate_maps_to_nearest_index_or_fails() -> None:
    near = AacConfig(2, 48010, 15, 2, b"", 0, 0)
    assert adts.sampling_index(near) == 3
    with pytest.raises(MediaError):
        adts.sampling_index(AacConfig(2, 40000, 15, 2, b"", 0, 0))


@pytest.mark.parametrize(
    "cfg",
    [AacConfig(42, 48000, 3, 2, b"", 0, 0), AacConfig(2, 48000, 3, 0, b"", 0, 0)],
    ids=["usac", "pce-channels"],
)
def test_adts_refuses_what_it_cannot_signal(cfg: AacConfig) -> None:
    with pytest.raises(MediaError):
        adts.header_prefix(cfg)


def test_adts_refuses_frames_longer_than_13_bits() -> None:
    prefix = adts.header_prefix(AAC_LC)
    adts.header(prefix, 8191 - 7)
    with pytest.raises(MediaError):
        adts.header(prefix, 8191 - 6)


# --- sizes ------------------------------------------------------------------------------------


def test_size_bound_is_exact_for_4_byte_nal_lengths(av: AV) -> None:
    v, vp, a, ap = av
    for vr, ar in [(run(v, vp), run(a, ap)), (None, run(a, ap)), (run(v, vp, 0, 3), None)]:
        actual = len(mux_segment(vr, ar, sequence=0))
        assert segment_size_bound(vr, ar) == actual
        vs = (vr.track, vr.start, vr.stop) if vr else None
        asp = SampleSpan(ar.track, ar.start, ar.stop) if ar else None
        assert segment_size_bound(vs, asp) == actual


@pytest.mark.parametrize(("nls", "aud"), [(1, False), (2, False), (4, True)])
def test_size_bound_is_an_upper_bound_otherwise(nls: int, aud: bool) -> None:
    v, vp = avc_track(31, nls=nls, with_aud=aud, sizes=(2, 200))
    a, ap = aac_track(60)
    for stop in (1, 5, 31):
        vr, ar = run(v, vp, 0, stop), run(a, ap, 0, min(60, 2 * stop))
        assert segment_size_bound(vr, ar) >= len(mux_segment(vr, ar, sequence=0))


# --- real media -------------------------------------------------------------------------------


@dataclass
class Source:
    path: Path
    data: bytes
    video: Track
    audio: Track
    vcuts: list[int]
    acuts: list[int]

    def payloads(self, t: Track, start: int, stop: int) -> list[bytes]:
        s = t.samples
        return [self.data[s.offset[i] : s.offset[i] + s.size[i]] for i in range(start, stop)]

    def runs(self, k: int) -> tuple[Run, Run]:
        v0, v1 = self.vcuts[k], self.vcuts[k + 1]
        a0, a1 = self.acuts[k], self.acuts[k + 1]
        return (
            Run(self.video, v0, v1, self.payloads(self.video, v0, v1)),
            Run(self.audio, a0, a1, self.payloads(self.audio, a0, a1)),
        )


@pytest.fixture(scope="module")
def source(media_dir: Path) -> Source:
    parse = pytest.importorskip("origin.core.mp4.parse").parse_bytes
    path = make_mp4(media_dir / "ts_source.mp4", seconds=6.0, gop=50, bframes=2)
    data = path.read_bytes()
    movie = parse(data)
    v, a = movie.video()[0], movie.audio()[0]
    vcuts = [*v.samples.keyframes, len(v.samples)]
    assert len(vcuts) == 4, "expected 3 GOPs"
    acuts = [0]
    for k in vcuts[1:-1]:
        t = Fraction(v.pts(k), v.timescale)
        acuts.append(next(i for i in range(len(a.samples)) if Fraction(a.pts(i), a.timescale) >= t))
    acuts.append(len(a.samples))
    return Source(path, data, v, a, vcuts, acuts)


def write_segments(src: Source, tmp: Path, kind: str) -> list[Path]:
    paths = []
    for k in range(3):
        vr, ar = src.runs(k)
        vr_ = None if kind == "audio" else vr
        ar_ = None if kind == "video" else ar
        ts = mux_segment(vr_, ar_, sequence=k)
        assert segment_size_bound(vr_, ar_) >= len(ts)
        path = tmp / f"{kind}{k}.ts"
        path.write_bytes(ts)
        paths.append(path)
    return paths


def ffprobe_streams(path: Path) -> list[str]:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "stream=codec_name", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return sorted(s["codec_name"] for s in json.loads(out)["streams"])


def source_times(src: Source, stream: str) -> list[tuple[int, int]]:
    """The source's (pts, dts) per packet in decode order, per ffprobe, in 90 kHz + offset."""
    track = src.video if stream == "v" else src.audio
    rows = probe_frames(str(src.path), stream)
    ts = track.timescale
    return [
        (to_90k(int(r["pts"]), ts) + PTS_OFFSET, to_90k(int(r["dts"]), ts) + PTS_OFFSET)
        for r in rows
    ]


def ts_times(path: Path, stream: str) -> list[tuple[int, int]]:
    return [(int(r["pts"]), int(r["dts"])) for r in probe_frames(str(path), stream)]


@pytest.mark.parametrize("kind", ["av", "audio", "video"])
def test_each_real_segment_alone_has_the_source_timestamps(
    source: Source, tmp_path: Path, kind: str
) -> None:
    paths = write_segments(source, tmp_path, kind)
    want = {"av": ["aac", "h264"], "audio": ["aac"], "video": ["h264"]}[kind]
    vtimes = source_times(source, "v")
    atimes = source_times(source, "a")
    for k, path in enumerate(paths):
        assert ffprobe_streams(path) == want
        if kind != "audio":
            v0, v1 = source.vcuts[k], source.vcuts[k + 1]
            assert ts_times(path, "v") == vtimes[v0:v1]
        if kind != "video":
            a0, a1 = source.acuts[k], source.acuts[k + 1]
            assert ts_times(path, "a") == atimes[a0:a1]


def ffmpeg_log(path: Path, level: str) -> str:
    proc = subprocess.run(
        [FFMPEG, "-nostdin", "-v", level, "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def count_frames(path: Path, stream: str) -> int:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-count_frames", "-select_streams", stream, "-show_entries",
         "stream=nb_read_frames", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    (s,) = json.loads(out)["streams"]
    return int(s["nb_read_frames"])


@pytest.mark.parametrize("kind", ["av", "audio", "video"])
def test_concatenated_real_segments_decode_cleanly_with_all_frames(
    source: Source, tmp_path: Path, kind: str
) -> None:
    paths = write_segments(source, tmp_path, kind)
    joined = tmp_path / "all.ts"
    joined.write_bytes(b"".join(p.read_bytes() for p in paths))
    assert ffmpeg_log(joined, "error").strip() == ""
    warnings = ffmpeg_log(joined, "warning")
    assert "Continuity check" not in warnings
    assert "corrupt" not in warnings.lower()
    check_continuity(parse_packets(joined.read_bytes()))
    if kind != "audio":
        assert (
            count_frames(joined, "v") == count_frames(source.path, "v") == len(source.video.samples)
        )
    if kind != "video":
        # TS has no edit list: the AAC priming frame the MP4 trims is decoded too.
        assert count_frames(joined, "a") == len(source.audio.samples)
        assert count_frames(source.path, "a") == len(source.audio.samples) - 1


def test_size_bound_on_real_media_is_exact_and_padding_is_small(source: Source) -> None:
    for k in range(3):
        vr, ar = source.runs(k)
        ts = mux_segment(vr, ar, sequence=k)
        assert segment_size_bound(vr, ar) == len(ts)
        packets = parse_packets(ts)
        for pid in (VIDEO_PID, AUDIO_PID):
            ccs = [p.cc for p in packets if p.pid == pid and p.has_payload]
            assert ccs[-1] == 15
        # 300 kbit/s: per-PES headers, last-packet stuffing and up to 2 x 15 counter-padding
        # packets weigh more than they do at real bitrates.
        payload = sum(len(d) for d in (*vr.data, *ar.data))
        assert len(ts) < payload * 1.25


def test_negative_composition_offsets_move_dts_earlier_by_the_video_delay() -> None:
    # CMAF (trun v1) B-frames: the keyframe's offset is 0, the B-frames' negative; without the
    # delay a DTS would be clamped to its PTS and run backwards.
    v, vp = avc_track(10, gop=10)
    shifted = SampleIndex(
        dts=v.samples.dts,
        duration=v.samples.duration,
        cto=array("i", [c - 1024 for c in v.samples.cto]),
        size=v.samples.size,
        offset=v.samples.offset,
        keyframes=v.samples.keyframes,
    )
    track = Track(1, Kind.VIDEO, v.timescale, "und", v.codec, b"", 0, shifted)
    delay = max(0, -min(shifted.cto))
    seg = mux_segment(run(track, vp), None, sequence=0, video_delay=delay)
    pes = parse_pes_list(parse_packets(seg), VIDEO_PID)
    dts = [p.dts if p.dts is not None else p.pts for p in pes]
    assert dts == sorted(dts) and len(set(dts)) == len(dts)
    assert all(d <= p.pts for d, p in zip(dts, pes, strict=True))
    assert [p.pts for p in pes] == [
        to_90k(track.samples.dts[i] + track.samples.cto[i], 12800) + PTS_OFFSET for i in range(10)
    ]
    bound = mpegts.segment_size_bound((track, 0, 10), None, video_delay=delay)
    assert bound >= len(seg)
