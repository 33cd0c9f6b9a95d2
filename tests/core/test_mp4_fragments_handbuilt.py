"""Fragmented MP4 parsing on hand-built files: offset rules, defaults, timing, errors, scale."""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable

import pytest

from origin.core.errors import MediaError
from origin.core.mp4 import drive, parse_bytes, parse_movie
from tests.support.mp4_build import (
    CTO,
    DURATION,
    FLAGS,
    FTYP,
    NON_SYNC,
    SIZE,
    SYNC,
    box,
    elst,
    empty_tables,
    fragment,
    full,
    init,
    payload,
    sample_bytes,
    simple_video,
    tfdt,
    tfhd,
    tfxd,
    trak,
    trex,
    trun,
    u32,
    u64,
)


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
