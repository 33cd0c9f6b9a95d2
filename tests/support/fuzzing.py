"""A seeded mutation fuzzer for the load → build path, shared by tests/core/test_fuzz.py and
scripts/fuzz.py.

A mutant is a good MP4 with one to three mutations aimed at one box of its index (``moov`` and
its descendants; ``moof``/``traf``/``tfhd``/``tfdt``/``trun``/``mfhd`` in fragmented files):
bit flips, random bytes, fields set to boundary values (0, 1, 2^31-1, 2^32-1, 2^63-1…), which find
overflow classes far sooner than flips, and box-size edits. Every mutant is a pure function of its
seed, so a finding replays with ``scripts/fuzz.py --replay SEED``.

The oracle (:func:`check`): the mutant is either refused at load with a :class:`MediaError`
(``parse_bytes`` or ``pipeline.prepare``), or every output builds: HLS master playlists
(TS/CMAF, with and without the audio-only variant), every media playlist with and without a key,
both DASH MPDs, the Smooth manifest (its 409 :class:`UnsupportedError` is allowed), every init
segment and every segment in TS, CMAF and Smooth. Anything else (another exception, a refusal
that only a catch-all produced, a run over the time or memory bound) is a finding.
"""

from __future__ import annotations

import contextlib
import random
import re
import resource
import signal
import struct
import subprocess
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import FrameType

import origin
from origin.core import pipeline, urls
from origin.core.crypto.cenc import SampleCipher
from origin.core.errors import MediaError
from origin.core.mp4 import parse_bytes
from origin.core.mux.fmp4 import Edit
from origin.core.track import Track
from origin.core.urls import Format, Options
from tests.support.media import FFMPEG
from tests.support.mp4_build import rewrite_moov, to_co64, to_stz2

TARGET = Fraction(2)  # segment duration: several segments per short input

# Boxes whose payload is a list of boxes, and where that list starts inside the payload.
_CONTAINERS = {
    "moov": 0, "trak": 0, "mdia": 0, "minf": 0, "stbl": 0, "edts": 0, "dinf": 0, "mvex": 0,
    "moof": 0, "traf": 0, "mfra": 0, "stsd": 8, "avc1": 78, "avc3": 78, "mp4a": 28, "wave": 0,
}  # fmt: skip
# Boxes that hold the index; mutations aim at these (not at ftyp, free or mdat payload).
_INDEX_ROOTS = frozenset({"moov", "moof"})

U32_BOUNDS = (0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 0x10000, 0xFFFF)
U64_BOUNDS = (0, 1, 2**31, 2**32, 2**32 - 1, 2**33, 2**53, 2**63 - 1, 2**63, 2**64 - 1)
U16_BOUNDS = (0, 1, 0x7FFF, 0x8000, 0xFFFF)
U8_BOUNDS = (0, 1, 2, 3, 0x7F, 0x80, 0xFE, 0xFF)


@dataclass(frozen=True, slots=True)
class Box:
    type: str
    offset: int
    size: int
    header: int  # 8 or 16

    @property
    def payload(self) -> int:
        return self.offset + self.header

    @property
    def end(self) -> int:
        return self.offset + self.size


def walk(data: bytes | bytearray, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """Every box under ``start:end`` (depth first), independent of the parser under test."""
    end = len(data) if end is None else end
    pos = start
    while end - pos >= 8:
        size, raw = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1 and end - pos >= 16:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        kind = raw.decode("latin-1")
        yield Box(kind, pos, size, header)
        skip = _CONTAINERS.get(kind)
        if skip is not None:
            yield from walk(data, pos + header + skip, pos + size)
        pos += size


def index_boxes(data: bytes) -> list[Box]:
    """The boxes a mutation may target: ``moov``/``moof`` and everything inside them."""
    out: list[Box] = []
    for top in _top(data):
        if top.type in _INDEX_ROOTS:
            out.append(top)
            out.extend(walk(data, top.payload, top.end))
    return out


def _top(data: bytes) -> Iterator[Box]:
    pos = 0
    while len(data) - pos >= 8:
        size, raw = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = len(data) - pos
        if size < header:
            return
        yield Box(raw.decode("latin-1"), pos, size, header)
        pos += size


# --------------------------------------------------------------------------- mutations

Mutation = Callable[[random.Random, bytearray, Box], str]


def _flip_bits(rng: random.Random, buf: bytearray, box: Box) -> str:
    n = rng.choice((1, 1, 2, 4))
    where = []
    for _ in range(n):
        pos = rng.randrange(box.payload, box.end) if box.size > box.header else box.offset
        bit = rng.randrange(8)
        buf[pos] ^= 1 << bit
        where.append(f"{pos - box.offset}.{bit}")
    return f"flip bits {','.join(where)} of {box.type}"


def _random_byte(rng: random.Random, buf: bytearray, box: Box) -> str:
    if box.size <= box.header:
        return "noop"
    pos = rng.randrange(box.payload, box.end)
    buf[pos] = rng.choice((*U8_BOUNDS, rng.randrange(256)))
    return f"byte {pos - box.offset} of {box.type} = {buf[pos]:#x}"


def _field_position(rng: random.Random, box: Box, width: int) -> int | None:
    """A field start in the payload, aligned to 4 from the payload start; early fields (FullBox
    header, counts, the first entries) more often than deep table entries."""
    room = box.size - box.header - width
    if room < 0:
        return None
    span = min(room, 48) if rng.random() < 0.6 else room
    return box.payload + rng.randrange(0, span // 4 + 1) * 4 if span >= 0 else None


def _boundary_value(rng: random.Random, buf: bytearray, box: Box) -> str:
    width, fmt, values = rng.choice(
        ((4, ">I", U32_BOUNDS), (4, ">I", U32_BOUNDS), (8, ">Q", U64_BOUNDS), (2, ">H", U16_BOUNDS))
    )
    pos = _field_position(rng, box, width)
    if pos is None:
        return "noop"
    value = rng.choice(values)
    if width == 4 and rng.random() < 0.3:  # near a real value: +-1, x2, negated
        old = struct.unpack_from(">I", buf, pos)[0]
        value = rng.choice((old + 1, old - 1, old * 2, -old, old << 8)) & 0xFFFFFFFF
    struct.pack_into(fmt, buf, pos, value)
    return f"{width * 8}-bit field at {pos - box.offset} of {box.type} = {value:#x}"


def _table_entry(rng: random.Random, buf: bytearray, box: Box) -> str:
    """One table entry (anywhere, also deep in a table) set to a boundary value."""
    room = box.size - box.header - 4
    if room < 16:
        return _boundary_value(rng, buf, box)
    pos = box.payload + 8 + rng.randrange(0, (room - 8) // 4 + 1) * 4
    pos = min(pos, box.end - 4)
    value = rng.choice(U32_BOUNDS)
    struct.pack_into(">I", buf, pos, value)
    return f"entry at {pos - box.offset} of {box.type} = {value:#x}"


def _box_size(rng: random.Random, buf: bytearray, box: Box) -> str:
    if box.header == 16:
        return "noop"
    size = rng.choice(
        (0, 1, 7, 8, box.size - 1, box.size + 1, box.size - 4, box.size + 4, box.size * 2,
         0xFFFFFFFF, 9, box.size // 2)
    )  # fmt: skip
    struct.pack_into(">I", buf, box.offset, size & 0xFFFFFFFF)
    return f"size of {box.type} = {size & 0xFFFFFFFF}"


def _version(rng: random.Random, buf: bytearray, box: Box) -> str:
    """A FullBox's version byte (v0 ↔ v1 changes every field's width)."""
    if box.size <= box.header:
        return "noop"
    buf[box.payload] = rng.choice((0, 1, 2, 0xFF))
    return f"version of {box.type} = {buf[box.payload]}"


MUTATIONS: tuple[tuple[str, Mutation, int], ...] = (
    ("flip", _flip_bits, 3),
    ("byte", _random_byte, 2),
    ("boundary", _boundary_value, 5),
    ("entry", _table_entry, 2),
    ("size", _box_size, 1),
    ("version", _version, 1),
)
_NAMES, _FNS, _WEIGHTS = zip(*MUTATIONS, strict=True)


def mutate(data: bytes, seed: int) -> tuple[bytes, list[str]]:
    """``data`` with 1-3 mutations chosen by ``seed`` (a pure function of both)."""
    rng = random.Random(seed)
    buf = bytearray(data)
    boxes = index_boxes(data)
    # Every box type as likely as every other: mvhd is as interesting as one of 600 truns.
    by_type: dict[str, list[Box]] = {}
    for b in boxes:
        by_type.setdefault(b.type, []).append(b)
    types = sorted(by_type)
    done = []
    resize = rng.random() < 0.2
    for _ in range(rng.choice((1, 1, 1, 2, 3)) - resize):
        box = rng.choice(by_type[rng.choice(types)])
        fn = rng.choices(_FNS, _WEIGHTS)[0]
        done.append(fn(rng, buf, box))
    if resize:  # last: it moves every byte after the box
        box = rng.choice(by_type[rng.choice(types)])
        buf, what = _resize(rng, buf, box, boxes)
        done.append(what)
    return bytes(buf), done


def _resize(
    rng: random.Random, buf: bytearray, box: Box, boxes: Sequence[Box]
) -> tuple[bytearray, str]:
    """Cut or insert bytes inside ``box`` and fix its and its ancestors' sizes, so the tree
    stays well-formed while the box's own fields run short or gain a tail. In a moov-last file
    the sample data does not move."""
    delta = rng.choice((-1, -2, -4, -8, -12, -16, -24, 1, 4, 8, 16))
    payload = box.size - box.header
    if delta < 0 and payload < -delta:
        return buf, "noop"
    # Where: the payload's end (a short box), or inside it (a field or table entry missing).
    end = box.end if rng.random() < 0.6 else box.payload + rng.randrange(0, payload + 1)
    if delta < 0:
        at = max(box.payload, end + delta)
        del buf[at : at - delta]
    else:
        at = end
        buf[at:at] = bytes(delta) if rng.random() < 0.5 else rng.randbytes(delta)
    for b in (box, *(a for a in boxes if a.offset < box.offset and box.end <= a.end)):
        if b.header == 16:
            struct.pack_into(">Q", buf, b.offset + 8, b.size + delta)
        else:
            struct.pack_into(">I", buf, b.offset, b.size + delta)
    return (
        buf,
        f"{'cut' if delta < 0 else 'insert'} {abs(delta)} bytes at {at - box.offset} of {box.type}",
    )


# --------------------------------------------------------------------------- the oracle


class Timeout(BaseException):
    """A mutant ran over its time budget (BaseException: nothing in the code may catch it)."""


@dataclass(slots=True)
class Outcome:
    kind: str  # "refused" | "built" | "finding"
    detail: str = ""  # refusal reason, or the finding's traceback
    outputs: int = 0


def _all_outputs(p: pipeline.Presentation, files: Sequence[bytes]) -> int:
    """Build every manifest, init segment and segment of ``p``; the number of outputs."""
    views = [memoryview(f) for f in files]
    n = 0
    for fmt in (Format.HLS_TS, Format.HLS_CMAF):
        for audio_only in (True, False):
            pipeline.master_playlist(p, Options(format=fmt, audio_only=audio_only))
            n += 1
    renditions = [("video", r) for r in p.video] + ([("audio", p.audio)] if p.audio else [])
    keys = ((None, None), ("https://keys.example/key?kid=1", None), ("k", bytes(16)))
    for fmt in (Format.HLS_TS, Format.HLS_CMAF):
        for track, r in renditions:
            for key_uri, iv in keys:
                options = Options(format=fmt)
                pipeline.media_playlist(p, track, r.id, options, key_uri=key_uri, iv=iv)
                n += 1
    for fmt in (Format.DASH_CSF, Format.DASH_CMAF):
        pipeline.dash_manifest(p, Options(format=fmt))
        n += 1
    with contextlib.suppress(pipeline.UnsupportedError):  # 409: not expressible in Smooth
        pipeline.smooth_manifest(p)
    n += 1
    for track, r in renditions:
        times = (urls.INIT, *r.times[:-1])
        for out in (Format.HLS_TS, Format.HLS_CMAF, Format.DASH_CSF, None):
            for t in times:
                if t == urls.INIT and out in (Format.HLS_TS, None):
                    continue
                if out is Format.DASH_CSF and t != urls.INIT:
                    continue  # DASH segments are the CMAF bytes (one writer): built above
                path = urls.FragmentPath(None, "a", r.id, track, t, Options(format=out))
                ref = pipeline.resolve(p, path)
                plan = pipeline.plan_reads(p, ref)
                chunks = [bytes(views[s.file][s.offset : s.offset + s.size]) for s in plan.spans]
                clear = pipeline.build_segment(p, ref, plan, chunks)
                n += 1 + _encrypted_outputs(r.track, ref, clear, r.edit)
    return n


_CIPHER = SampleCipher(bytes(16))
_KID = bytes(range(16))


def _encrypted_outputs(track: Track, ref: pipeline.SegmentRef, clear: bytes, edit: Edit) -> int:
    """The Common Encryption forms of one clear segment (the subsample map reads the damaged
    sample bytes: NAL lengths, slice headers); the number built."""
    if ref.format is Format.HLS_TS:
        return 0
    schemes = (pipeline.Scheme.CENC,) if ref.format is None else tuple(pipeline.Scheme)[1:]
    sets = pipeline.track_parameter_sets(track)
    n = 0
    for scheme in schemes:
        prot = pipeline.track_protection(scheme, _KID, track, None, smooth=ref.format is None)
        if ref.index == urls.INIT:
            # A damaged sample description cannot be rewritten: refused with the reason (503).
            with contextlib.suppress(MediaError):
                pipeline.protected_init(track, edit, prot, [])
        else:
            nls = 4 if ref.format is None else None
            smap = pipeline.subsample_map(track, sets, clear, nal_length_size=nls)
            body = pipeline.protected_body(
                ref, clear, cipher=_CIPHER, protection=prot, smap=smap, names=("a",)
            )
            if len(body.whole()) != len(body):
                raise AssertionError("an encrypted segment is not the size announced")
        n += 1
    return n


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Timeout("over the time budget")


def check(files: Sequence[bytes], *, seconds: float = 5.0) -> Outcome:
    """Run the oracle on one asset made of ``files`` (see the module docstring)."""
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        try:
            movies = [parse_bytes(f) for f in files]
            p = pipeline.prepare("fuzz", movies, TARGET)
        except MediaError as e:
            cause = e.__cause__ or e.__context__
            if cause is not None and not isinstance(cause, MediaError):
                # Refused, but only by a catch-all: a validation is missing.
                return Outcome("finding", "".join(traceback.format_exception(e)))
            return Outcome("refused", str(e))
        n = _all_outputs(p, files)
        return Outcome("built", outputs=n)
    except (Exception, Timeout, MemoryError, RecursionError) as e:
        return Outcome("finding", "".join(traceback.format_exception(e)))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def reason_class(reason: str) -> str:
    """A refusal message without its numbers, offsets and track ids: the reason's class."""
    reason = re.sub(r"\b0x[0-9a-fA-F]+\b|(?<![A-Za-z])-?\d+(\.\d+)?(e[+-]?\d+)?", "N", reason)
    return reason[:110]


# --------------------------------------------------------------------------- inputs

SAMPLE_DIR = Path(origin.__file__).parent / "sample"


def make_inputs(cache: Path, *, seconds: float | None = 4.0) -> list[tuple[str, bytes]]:
    """The shipped sample's smallest rendition, progressive (moov first and last, with
    co64/stz2 tables, audio only), fragmented (CMAF-style) and .ismv, cut to ``seconds`` so
    hundreds of mutants build in seconds; made once into ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    source = SAMPLE_DIR / "sample_240p.mp4"
    cut = ("-t", str(seconds)) if seconds else ()
    variants = {
        "progressive.mp4": ("-movflags", "+faststart"),
        "moov-last.mp4": (),  # resizing a box inside moov moves no sample data
        "fragmented.mp4": ("-movflags", "frag_keyframe+empty_moov+default_base_moof"),
        "smooth.ismv": ("-f", "ismv"),
        "audio-only.mp4": ("-vn", "-movflags", "+faststart"),  # cut without a video to follow
    }
    out = []
    for name, args in variants.items():
        path = cache / f"{seconds}-{name}"
        if not path.exists():
            tmp = path.with_suffix(".tmp" + path.suffix)
            subprocess.run(
                [FFMPEG, "-nostdin", "-v", "error", "-y", "-i", str(source), *cut,
                 "-c", "copy", *args, str(tmp)],
                check=True,
            )  # fmt: skip
            tmp.replace(path)
        out.append((name, path.read_bytes()))
    # The other table forms, rewritten from the moov-last copy: co64 chunk offsets, stz2 sizes.
    wide = rewrite_moov(rewrite_moov(dict(out)["moov-last.mp4"], to_co64(0)), to_stz2)
    out.append(("co64-stz2.mp4", wide))
    return out


# --------------------------------------------------------------------------- a run


def finding_class(detail: str) -> str:
    """Where and what a finding raised: the innermost origin frame and the exception line."""
    lines = detail.strip().splitlines()
    frames = [ln.strip() for ln in lines if ln.strip().startswith('File "') and "/origin/" in ln]
    where = frames[-1].split("/origin/", 1)[-1] if frames else "?"
    return f"{lines[-1][:100]} at {where}"


@dataclass(slots=True)
class Report:
    mutants: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    built: int = 0
    outputs: int = 0
    findings: list[tuple[int, str, list[str], str]] = field(default_factory=list)
    slowest: tuple[float, int] = (0.0, -1)  # seconds, seed

    @property
    def refusals(self) -> int:
        return sum(self.refused.values())


def mutant(inputs: Sequence[tuple[str, bytes]], seed: int) -> tuple[str, list[bytes], list[str]]:
    """The mutant of ``seed``: which input, the asset's files and what was done to them.

    One seed in four makes a two-rendition asset of the mutant and its original, so that what
    spans renditions (muxed audio cut at another rendition's times, Smooth's shared timeline,
    bitrate ids) is fuzzed too.
    """
    k = seed % (len(inputs) + 1)
    name, data = inputs[k % len(inputs)]
    out, done = mutate(data, seed)
    if k == len(inputs):
        return f"{name} + its original", [out, data], done
    return name, [out], done


class MemoryBound:
    """Caps the address space while fuzzing, so a huge allocation is a MemoryError finding
    instead of swapping the machine; restores the old limit on exit."""

    def __init__(self, extra_mb: int = 1024) -> None:
        self.extra = extra_mb * 1024 * 1024
        self.old: tuple[int, int] | None = None

    def __enter__(self) -> MemoryBound:
        try:
            with open("/proc/self/statm") as f:
                vm = int(f.read().split()[0]) * resource.getpagesize()
        except OSError:
            return self
        self.old = resource.getrlimit(resource.RLIMIT_AS)
        soft, hard = self.old
        limit = vm + self.extra
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        if soft == resource.RLIM_INFINITY or soft > limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            resource.setrlimit(resource.RLIMIT_AS, self.old)


def run(
    inputs: Sequence[tuple[str, bytes]],
    seeds: range,
    *,
    seconds: float = 5.0,
    progress: Callable[[Report], None] | None = None,
) -> Report:
    """Fuzz ``inputs`` with one mutant per seed."""
    report = Report()
    with MemoryBound():
        for seed in seeds:
            name, files, done = mutant(inputs, seed)
            start = time.perf_counter()
            out = check(files, seconds=seconds)
            report.slowest = max(report.slowest, (time.perf_counter() - start, seed))
            report.mutants += 1
            if out.kind == "refused":
                report.refused[reason_class(out.detail)] += 1
            elif out.kind == "built":
                report.built += 1
                report.outputs += out.outputs
            else:
                report.findings.append((seed, name, done, out.detail))
            if progress is not None and report.mutants % 1000 == 0:
                progress(report)
    return report
