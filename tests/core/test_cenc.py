"""Common Encryption (ISO/IEC 23001-7), sans-IO: the encrypted segments decrypt, with the
independent reference decryptor of tests/support/cenc_decrypt.py (``cryptography``, one context
per sample or subsample, block by block), to the clear segments' samples byte for byte, for
cenc and cbcs, video and audio, with and without B-frames, CMAF and Smooth (PIFF); slice
headers end where ffmpeg's own H.264 parser says; IVs never repeat under a key."""

from __future__ import annotations

import itertools
import re
import subprocess
import uuid
from array import array
from fractions import Fraction
from pathlib import Path

import pytest

from origin.core import pipeline, urls
from origin.core.crypto.cenc import SampleCipher, protected_ranges, runs
from origin.core.crypto.subsamples import MAX_SUBSAMPLES, SubsampleMap
from origin.core.mp4 import parse_bytes
from origin.core.mp4.avc import parse_parameter_sets, slice_header_size
from origin.core.mp4.defs import SYSTEM_COMMON
from origin.core.mux import encrypted
from origin.core.track import AvcConfig
from origin.core.urls import Format
from tests.support import cenc_decrypt as ref
from tests.support.media import make_mp4

KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
KID = uuid.UUID("0f1e2d3c-4b5a-4697-8877-665544332211")
CENC, CBCS = pipeline.Scheme.CENC, pipeline.Scheme.CBCS


@pytest.fixture(scope="module")
def no_bframes_mp4(media_dir: Path) -> Path:
    return make_mp4(media_dir / "no_bframes.mp4", bframes=0, extra=("-profile:v", "baseline"))


def presentation(path: Path) -> tuple[pipeline.Presentation, bytes]:
    data = path.read_bytes()
    return pipeline.prepare("a", [parse_bytes(data)], Fraction(2)), data


def segments(
    p: pipeline.Presentation, data: bytes, fmt: Format | None, kind: str
) -> list[tuple[pipeline.SegmentRef, bytes]]:
    r = p.video[0] if kind == "video" else p.audio
    assert r is not None
    out = []
    for k in range(len(r.seg)):
        sref = pipeline.SegmentRef(fmt, kind, r.id, k)
        out.append(
            (sref, pipeline.segment_bytes(p, sref, lambda s: data[s.offset : s.offset + s.size]))
        )
    return out


def protect(
    p: pipeline.Presentation, sref: pipeline.SegmentRef, clear: bytes, scheme: pipeline.Scheme
) -> tuple[bytes, encrypted.TrackProtection]:
    r = p.rendition(sref.track, sref.rendition)
    smooth = sref.format is None
    prot = pipeline.track_protection(scheme, KID.bytes, r.track, None, smooth=smooth)
    sets = pipeline.track_parameter_sets(r.track)
    smap = pipeline.subsample_map(r.track, sets, clear, nal_length_size=4 if smooth else None)
    body = pipeline.protected_body(
        sref, clear, cipher=SampleCipher(KEY), protection=prot, smap=smap, names=("a", KID)
    )
    whole = bytes(body.whole())
    assert len(whole) == len(body)
    return whole, prot


@pytest.mark.parametrize("scheme", [CENC, CBCS])
@pytest.mark.parametrize("kind", ["video", "audio"])
@pytest.mark.parametrize("source", ["bframes_mp4", "no_bframes_mp4"])
def test_cmaf_segments_decrypt_to_the_clear_samples(
    request: pytest.FixtureRequest, source: str, kind: str, scheme: pipeline.Scheme
) -> None:
    p, data = presentation(request.getfixturevalue(source))
    r = p.video[0] if kind == "video" else p.audio
    assert r is not None
    prot = pipeline.track_protection(scheme, KID.bytes, r.track, None)
    init = pipeline.protected_init(
        r.track, r.edit, prot, [encrypted.pssh(SYSTEM_COMMON, [KID.bytes])]
    )
    tenc = ref.read_tenc(init)
    assert tenc.kid == KID.bytes and tenc.scheme == scheme.value
    if scheme is CENC:
        assert tenc.iv_size == 16
    else:
        assert tenc.iv_size == 0 and len(tenc.constant_iv) == 16
        assert (tenc.crypt, tenc.skip) == ((1, 9) if kind == "video" else (0, 0))
    for sref, clear in segments(p, data, Format.DASH_CSF, kind):
        enc, _ = protect(p, sref, clear, scheme)
        assert ref.decrypt_fragment(enc, KEY, tenc) == ref.clear_samples(clear)
        assert ref.clear_samples(enc) != ref.clear_samples(clear)  # something was encrypted


@pytest.mark.parametrize("kind", ["video", "audio"])
def test_smooth_fragments_decrypt_with_8_byte_piff_ivs(bframes_mp4: Path, kind: str) -> None:
    p, data = presentation(bframes_mp4)
    # What a PIFF client builds from the manifest: cenc, 8-byte IVs, the key id of the header.
    tenc = ref.Tenc("cenc", KID.bytes, 8)
    for sref, clear in segments(p, data, None, kind):
        enc, prot = protect(p, sref, clear, CENC)
        assert prot.iv_size == 8
        assert not ref.find(enc, b"senc") and not ref.find(enc, b"saiz")
        assert ref.decrypt_fragment(enc, KEY, tenc) == ref.clear_samples(clear)


def test_video_subsamples_keep_nal_and_slice_headers_clear_and_encrypt_whole_blocks(
    bframes_mp4: Path,
) -> None:
    p, data = presentation(bframes_mp4)
    r = p.video[0]
    codec = r.track.codec
    assert isinstance(codec, AvcConfig)
    sets = parse_parameter_sets(codec.sps, codec.pps)
    nls = codec.nal_length_size
    for _, clear in segments(p, data, Format.DASH_CMAF, "video"):
        smap = pipeline.subsample_map(r.track, sets, clear)
        k = 0
        for sample, n in zip(ref.clear_samples(clear), smap.counts, strict=True):
            assert 0 < n <= MAX_SUBSAMPLES
            pos = 0
            for c, e in zip(smap.clear[k : k + n], smap.protected[k : k + n], strict=True):
                assert e % 16 == 0  # cenc video: whole blocks (§10.2)
                if e:
                    # The protected part starts after a slice's header: walk back to its NAL.
                    unit_end = pos + c + e
                    head = pos
                    while True:
                        size = int.from_bytes(sample[head : head + nls], "big")
                        if head + nls + size >= unit_end:
                            break
                        head += nls + size
                    unit = sample[head + nls : head + nls + size]
                    assert unit[0] & 0x1F in (1, 5)
                    assert pos + c - (head + nls) >= slice_header_size(unit, sets)
                pos += c + e
            assert pos == len(sample)
            k += n


def _trace_header_ends(path: Path) -> list[int]:
    """Where ffmpeg's trace_headers says each slice header ends (bytes, NAL header included)."""
    out = subprocess.run(
        ["ffmpeg", "-v", "trace", "-nostdin", "-i", str(path), "-map", "0:v", "-c", "copy",
         "-bsf:v", "trace_headers", "-f", "null", "-"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stderr  # fmt: skip
    ends: list[int] = []
    in_slice, last = False, 0
    line = re.compile(r"\]\s+(\d+)\s+(\S+)\s+([01]+) = ")
    for text in out.splitlines():
        if "Slice Header" in text:
            in_slice, last = True, 0
            continue
        m = line.search(text)
        if in_slice and m and m[2] != "cabac_alignment_one_bit":
            last = int(m[1]) + len(m[3])
            continue
        if in_slice and (not m or m[2] == "cabac_alignment_one_bit"):
            ends.append((last + 7) // 8)
            in_slice = False
    if in_slice:
        ends.append((last + 7) // 8)
    return ends


@pytest.mark.parametrize("source", ["bframes_mp4", "no_bframes_mp4"])
def test_slice_header_sizes_agree_with_ffmpeg(request: pytest.FixtureRequest, source: str) -> None:
    path: Path = request.getfixturevalue(source)
    movie = parse_bytes(path.read_bytes())
    (track,) = movie.video()
    codec = track.codec
    assert isinstance(codec, AvcConfig)
    sets = parse_parameter_sets(codec.sps, codec.pps)
    data = path.read_bytes()
    ours = []
    s = track.samples
    for i in range(len(s)):
        sample = data[s.offset[i] : s.offset[i] + s.size[i]]
        pos = 0
        while pos < len(sample):
            n = int.from_bytes(sample[pos : pos + codec.nal_length_size], "big")
            unit = sample[pos + codec.nal_length_size : pos + codec.nal_length_size + n]
            if unit[0] & 0x1F in (1, 5):
                ours.append(slice_header_size(unit, sets))
            pos += codec.nal_length_size + n
    theirs = _trace_header_ends(path)
    assert len(ours) == len(theirs) > 50
    assert ours == theirs


def test_cenc_counter_blocks_never_repeat_across_segments_renditions_and_tracks(
    media_dir: Path, bframes_mp4: Path
) -> None:
    second = make_mp4(media_dir / "cenc_second.mp4", size="480x270", audio=False)
    p = pipeline.prepare(
        "a", [parse_bytes(bframes_mp4.read_bytes()), parse_bytes(second.read_bytes())], Fraction(2)
    )
    files = [bframes_mp4.read_bytes(), second.read_bytes()]
    used: list[tuple[int, int]] = []  # [first, last] counter block of each sample
    tenc = ref.Tenc("cenc", KID.bytes, 16)
    for r in (*p.video, p.audio):
        assert r is not None
        for k in range(len(r.seg)):
            sref = pipeline.SegmentRef(Format.DASH_CSF, r.kind.value, r.id, k)
            clear = pipeline.segment_bytes(
                p, sref, lambda s: files[s.file][s.offset : s.offset + s.size]
            )
            enc, _ = protect(p, sref, clear, CENC)
            ((senc, _),) = ref.find(enc, b"senc")
            aux = ref._aux(enc, senc, False, 16)
            smap = pipeline.subsample_map(r.track, pipeline.track_parameter_sets(r.track), clear)
            sizes = [len(x) for x in ref.clear_samples(clear)]
            ranges, firsts = protected_ranges(sizes, smap)
            for i, (iv, _) in enumerate(aux):
                n = sum(size for _, size in ranges[firsts[i] : firsts[i + 1]])
                first = int.from_bytes(iv, "big")
                used.append((first, first + max(0, -(-n // 16) - 1)))
            assert ref.decrypt_fragment(enc, KEY, tenc) == ref.clear_samples(clear)
    used.sort()
    for (_, end), (start, _) in itertools.pairwise(used):
        assert start > end, "two samples share counter blocks"


def test_the_same_segment_encrypts_to_the_same_bytes(bframes_mp4: Path) -> None:
    p, data = presentation(bframes_mp4)
    (sref, clear), *_ = segments(p, data, Format.DASH_CSF, "video")
    assert protect(p, sref, clear, CENC)[0] == protect(p, sref, clear, CENC)[0]


def test_init_segment_has_an_encrypted_sample_entry_with_the_original_format(
    bframes_mp4: Path,
) -> None:
    p, _ = presentation(bframes_mp4)
    for r, entry, original in ((p.video[0], b"encv", b"avc1"), (p.audio, b"enca", b"mp4a")):
        assert r is not None
        prot = pipeline.track_protection(CENC, KID.bytes, r.track, None)
        init = pipeline.protected_init(
            r.track, r.edit, prot, [encrypted.pssh(SYSTEM_COMMON, [KID.bytes])]
        )
        assert ref.find(init, entry) and not ref.find(init, original)
        ((frma, _),) = ref.find(init, b"frma")
        assert init[frma + 8 : frma + 12] == original
        ((pssh, _),) = ref.find(init, b"pssh")
        assert init[pssh + 8] == 1  # version 1: with key ids
        assert init[pssh + 12 : pssh + 28] == SYSTEM_COMMON
        assert init[pssh + 32 : pssh + 48] == KID.bytes
        # The clear init's other boxes are all still there.
        clear = pipeline.build_segment(
            p,
            pipeline.SegmentRef(Format.DASH_CSF, r.kind.value, r.id, urls.INIT),
            pipeline.ReadPlan((), ()),
            [],
        )
        kinds = [
            k
            for k, _, _ in ref.walk(init)
            if k not in {b"sinf", b"frma", b"schm", b"schi", b"tenc", b"pssh", entry}
        ]
        assert kinds == [k for k, _, _ in ref.walk(clear) if k != original]


def test_a_fragment_with_many_slices_fits_saiz_by_leaving_the_smallest_clear(
    media_dir: Path,
) -> None:
    # 720p has 45 macroblock rows: x264 makes 45 slices a picture, more than saiz can list.
    sliced = make_mp4(
        media_dir / "sliced.mp4",
        seconds=2,
        size="1280x720",
        audio=False,
        extra=("-x264-params", "slices=45"),
    )
    p, data = presentation(sliced)
    r = p.video[0]
    for sref, clear in segments(p, data, Format.DASH_CSF, "video"):
        smap = pipeline.subsample_map(r.track, pipeline.track_parameter_sets(r.track), clear)
        assert max(smap.counts) == MAX_SUBSAMPLES
        enc, prot = protect(p, sref, clear, CENC)
        assert ref.decrypt_fragment(
            enc, KEY, ref.read_tenc(pipeline.protected_init(r.track, r.edit, prot, []))
        ) == ref.clear_samples(clear)


@pytest.mark.parametrize("scheme", [CENC, CBCS])
def test_announced_cenc_bandwidths_hold_for_the_encrypted_segments(
    bframes_mp4: Path, scheme: pipeline.Scheme
) -> None:
    p, data = presentation(bframes_mp4)
    for kind in ("video", "audio"):
        r = p.video[0] if kind == "video" else p.audio
        assert r is not None
        declared = p.cenc_bandwidth[kind, r.id]
        assert declared.peak > p.cmaf_bandwidth[kind, r.id].peak
        for k, (sref, clear) in enumerate(segments(p, data, Format.DASH_CSF, kind)):
            enc, _ = protect(p, sref, clear, scheme)
            seconds = Fraction(r.seg.times[k + 1] - r.seg.times[k], r.seg.timescale)
            assert len(enc) * 8 / seconds <= declared.peak


@pytest.mark.parametrize("iv_size", [8, 16])
def test_samples_with_nothing_to_protect_stay_as_they_are(iv_size: int) -> None:
    # Found by the fuzzer: damaged NAL lengths leave every byte of a fragment clear.
    smap = SubsampleMap(array("H", [1, 1]), array("I", [10, 20]), array("I", [0, 0]))
    plan = runs([10, 20], smap, scheme="cenc", base_iv=bytes(16), iv_size=iv_size)
    assert plan.ranges == [] and [len(iv) for iv in plan.ivs] == [iv_size] * 2
    src = memoryview(bytes(range(30)))
    dst = bytearray(src) + bytes(16)
    SampleCipher(KEY).cenc(src, memoryview(dst), plan)
    assert dst[:30] == src
