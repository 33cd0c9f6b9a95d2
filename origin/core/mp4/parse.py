"""MP4 file → :class:`Movie`: top-level walk (sans-IO), ``moov`` → tracks.

The walk is a generator in the style of nginx-vod's VOD_AGAIN: it yields :class:`Need`
(offset, size) and is sent the bytes. It asks for box headers and the whole ``moov`` only, never
for ``mdat`` payload, so a file with ``moov`` at the end costs a few small reads. In a fragmented
file (``moov`` has ``mvex``) it also reads each ``moof``, which :mod:`.fragments` turns into the
same columns.

The sample tables become columns in :mod:`.tables`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Generator
from dataclasses import dataclass, fields, replace
from functools import partial
from typing import NamedTuple, TypeVar

from origin.core.errors import MediaError, describe
from origin.core.index import SampleIndex, empty_index
from origin.core.mp4.boxes import (
    HEADER_MAX,
    BoxHeader,
    Reader,
    child_map,
    children,
    plausible_type,
    read_header,
    require,
    span,
)
from origin.core.mp4.codecs import parse_asc, parse_avcc, parse_esds
from origin.core.mp4.fragments import Defaults, Fragments, parse_mvex
from origin.core.mp4.tables import sample_index
from origin.core.track import AacConfig, AvcConfig, Kind, Movie, Track

T = TypeVar("T")

# What a real MP4/MOV may start with; anything else is "not an MP4" rather than "corrupt".
FIRST_BOX_TYPES = frozenset(
    {"ftyp", "styp", "moov", "mdat", "free", "skip", "wide", "pdin", "uuid", "sidx", "moof",
     "meta", "junk", "pnot"}
)  # fmt: skip

_HANDLERS = {"vide": Kind.VIDEO, "soun": Kind.AUDIO}
_VIDEO_ENTRIES = frozenset({"avc1", "avc3"})
_AUDIO_ENTRIES = frozenset({"mp4a"})
_ENCRYPTED_ENTRIES = frozenset({"encv", "enca"})
_VISUAL_ENTRY_SIZE = 78  # SampleEntry(8) + VisualSampleEntry fields(70), then child boxes
_AUDIO_ENTRY_SIZE = 28  # SampleEntry(8) + AudioSampleEntry fields(20), then child boxes
# QuickTime sound description versions 1 and 2 append fields before the child boxes.
_QT_AUDIO_EXTRA = {0: 0, 1: 16, 2: 36}


class Need(NamedTuple):
    """A request from the parser: send back ``size`` bytes of the file from ``offset``."""

    offset: int
    size: int


# --------------------------------------------------------------------------- sans-IO driving


class _Cache:
    """The last block read; the surplus of a read-ahead answers later requests without a read."""

    __slots__ = ("data", "file_size", "offset")

    def __init__(self, file_size: int) -> None:
        self.file_size = file_size
        self.offset = 0
        self.data = b""

    def fetch(self, offset: int, size: int, ahead: int = 0) -> Generator[Need, bytes, bytes]:
        """``size`` bytes at ``offset``; on a miss, also ask for up to ``ahead`` bytes after."""
        start = offset - self.offset
        if start >= 0 and start + size <= len(self.data):
            return self.data[start : start + size]
        data = yield Need(offset, max(size, min(size + ahead, self.file_size - offset)))
        if len(data) < size:
            raise MediaError(
                f"truncated file: wanted {size} bytes at offset {offset}, got {len(data)}"
            )
        if len(data) > size:
            self.offset, self.data = offset, data
            return data[:size]
        return data


def parse_movie(file_size: int) -> Generator[Need, bytes, Movie]:
    """Parse an MP4 of ``file_size`` bytes; yields :class:`Need` and is sent the bytes.

    The reader may return more than asked (read-ahead; the surplus is used for later needs)
    but not less: a short read means a truncated file.

    A progressive file costs a header read per top-level box and one read of the ``moov``. In a
    fragmented file the parser reads ahead itself: each ``moof`` is read together with the
    ``mdat`` header after it, and the header read after an ``mdat`` asks for as many bytes as
    the previous fragment's boxes took (plus a margin), so that in the steady state a fragment
    (``styp``/``sidx``/``moof``/``mdat`` header) costs one read.
    """
    if file_size <= 0:
        raise MediaError("empty file: not an MP4")
    cache = _Cache(file_size)
    pos = 0
    moov: _Moov | None = None
    frags: Fragments | None = None
    ahead = 0  # header read-ahead, fragmented files only
    meta_start = 0  # where the current fragment's boxes start (the previous mdat's end)
    last_moof = -1
    while pos < file_size:
        avail = file_size - pos
        if avail < 8:
            raise MediaError(f"truncated file: {avail} stray bytes at offset {pos}")
        head = yield from cache.fetch(pos, min(HEADER_MAX, avail), ahead)
        raw_type = head[4:8]
        if pos == 0 and raw_type.decode("latin-1") not in FIRST_BOX_TYPES:
            raise MediaError(f"not an MP4 file: it starts with {head[:8]!r}")
        if not plausible_type(raw_type):
            raise MediaError(f"corrupt file: no box header at offset {pos}")
        box = read_header(head, 0, avail)
        if box.size > avail:
            tail = ""
            if frags is not None:  # a fragmented file cut short is most likely still being written
                moof_at = pos if box.type == "moof" or last_moof < 0 else last_moof
                tail = (
                    f": the last fragment (moof at offset {moof_at}) is incomplete, perhaps the "
                    "file is still being written"
                )
            raise MediaError(
                f"truncated file: box '{box.type}' at offset {pos} needs {box.size} bytes, "
                f"{avail} remain{tail}"
            )
        if box.type == "moov":
            if moov is not None:
                raise MediaError("more than one moov box")
            data = yield from cache.fetch(pos, box.size)
            moov = _guarded(partial(_parse_moov, data, file_size), "moov", pos)
            if moov.trex is not None:
                frags = Fragments(moov.trex, moov.fragment_tracks(), file_size)
                ahead = _FIRST_AHEAD
                meta_start = pos + box.size
        elif box.type == "moof":
            if frags is None:
                where = "before the moov" if moov is None else "but the moov has no mvex"
                raise MediaError(f"moof box at offset {pos} {where}")
            data = yield from cache.fetch(pos, box.size, HEADER_MAX)
            _guarded(partial(frags.add_moof, data, pos), "moof", pos)
            last_moof = pos
        elif box.type == "mdat" and frags is not None:
            meta = pos + box.header_size - meta_start
            ahead = min(meta + meta // 4 + 64, _MAX_AHEAD)
            meta_start = pos + box.size
        pos += box.size
    if moov is None:
        raise MediaError("no moov box: not an MP4 file, or its index is missing")
    return _guarded(partial(moov.movie, frags), "moov", 0)


def _guarded(parse: Callable[[], T], box: str, offset: int) -> T:
    """``parse()``, with an unexpected exception on malformed data turned into a refusal of
    this file (the box and the error named), so it can never escape the loading of one asset.
    The checks in the parser raise MediaError themselves; this is the net under them."""
    try:
        return parse()
    except MediaError:
        raise
    except (ArithmeticError, LookupError, ValueError, struct.error) as e:
        raise MediaError(f"corrupt box '{box}' at offset {offset}: {describe(e)}") from e


# A fragmented file's first fragment: what styp + sidx + moof usually fit in.
_FIRST_AHEAD = 4096
# Bound on the adaptive read-ahead (a huge sidx or moof is read on its own instead).
_MAX_AHEAD = 1 << 20


def drive(gen: Generator[Need, bytes, T], read: Callable[[int, int], bytes]) -> T:
    """Run a sans-IO parser to completion, answering each :class:`Need` with ``read``."""
    try:
        need = next(gen)
        while True:
            need = gen.send(read(need.offset, need.size))
    except StopIteration as done:
        result: T = done.value
        return result


def parse_bytes(data: bytes) -> Movie:
    """Parse an MP4 held in memory."""
    view = memoryview(data)
    return drive(parse_movie(len(data)), lambda offset, size: bytes(view[offset : offset + size]))


# --------------------------------------------------------------------------- moov


@dataclass(frozen=True, slots=True)
class _TrackHeader:
    """Everything about a track except its samples."""

    track_id: int
    kind: Kind
    timescale: int
    language: str
    codec: AvcConfig | AacConfig
    stsd: bytes
    pts_shift: int
    width: int = 0
    height: int = 0
    par: tuple[int, int] = (1, 1)
    sample_rate: int = 0
    channels: int = 0

    def with_samples(self, samples: SampleIndex) -> Track:
        # Every header field is a Track field of the same name.
        return Track(samples=samples, **{f: getattr(self, f) for f in _HEADER_FIELDS})


_HEADER_FIELDS = tuple(f.name for f in fields(_TrackHeader))
_MP4_EPOCH = 2_082_844_800  # ISO/IEC 14496-12 times count seconds from 1904-01-01 UTC
_SANE_TIMES = (631_152_000, 4_102_444_800)  # 1990-01-01 .. 2100-01-01


@dataclass(frozen=True, slots=True)
class _Moov:
    timescale: int
    tracks: tuple[tuple[_TrackHeader, SampleIndex], ...]
    trex: dict[int, Defaults] | None  # None: not fragmented (no mvex)
    modified: float | None = None  # mvhd

    def fragment_tracks(self) -> dict[int, tuple[SampleIndex, bool]]:
        return {h.track_id: (index, h.kind is Kind.AUDIO) for h, index in self.tracks}

    def movie(self, frags: Fragments | None) -> Movie:
        if frags is None:
            tracks = tuple(h.with_samples(index) for h, index in self.tracks)
            return Movie(self.timescale, tracks, fragmented=False, modified=self.modified)
        indexes = frags.indexes()
        tracks = tuple(
            replace(h, pts_shift=h.pts_shift - rebase).with_samples(index)
            for h, _ in self.tracks
            for index, rebase in [indexes[h.track_id]]
        )
        return Movie(self.timescale, tracks, fragmented=True, modified=self.modified)


def parse_header_moov(buf: bytes) -> tuple[tuple[Track, ...], dict[int, Defaults]]:
    """A live stream's or CMAF header's ``moov`` (``buf``: the whole box): its tracks, with no
    samples, and the ``trex`` defaults its fragments use.

    Tracks of another codec (HEVC, text...) are left out rather than refused: an ingest stream
    carries what the encoder has, and the origin serves what it can of it.
    """
    timescale, boxes, _ = _mvhd(buf)
    headers = _traks(buf, boxes, timescale, skip_unsupported=True)
    mvex = next((b for b in boxes if b.type == "mvex"), None)
    if mvex is None:
        raise MediaError("moov has no mvex: not a fragmented stream")
    return tuple(h.with_samples(empty_index()) for h, _ in headers), parse_mvex(buf, mvex)


def _mvhd(buf: bytes) -> tuple[int, list[BoxHeader], float | None]:
    """The movie timescale, the moov's children and the modification time the muxer recorded
    (Unix seconds; None when it wrote none, 0, or one outside 1990..2100)."""
    moov = read_header(buf, 0, len(buf))
    boxes = list(children(buf, moov.payload, moov.end))
    mvhd = next((b for b in boxes if b.type == "mvhd"), None)
    if mvhd is None:
        raise MediaError("moov has no mvhd")
    r = Reader(buf, mvhd)
    version, _ = r.full()
    if version == 1:
        r.skip(8)
        modified = r.u64()
    else:
        r.skip(4)
        modified = r.u32()
    timescale = r.u32()
    if timescale == 0:
        raise MediaError("mvhd timescale is 0")
    unix = modified - _MP4_EPOCH
    return timescale, boxes, float(unix) if _SANE_TIMES[0] < unix < _SANE_TIMES[1] else None


def _traks(
    buf: bytes, boxes: list[BoxHeader], timescale: int, *, skip_unsupported: bool = False
) -> list[tuple[_TrackHeader, BoxHeader]]:
    headers = [
        parsed
        for trak in boxes
        if trak.type == "trak"
        and (parsed := _parse_trak(buf, trak, timescale, skip_unsupported)) is not None
    ]
    if not headers:
        raise MediaError("no audio or video track" + (" we serve" if skip_unsupported else ""))
    return headers


def _parse_moov(buf: bytes, file_size: int) -> _Moov:
    timescale, boxes, modified = _mvhd(buf)
    headers = _traks(buf, boxes, timescale)
    mvex = next((b for b in boxes if b.type == "mvex"), None)
    # In a fragmented file the stbl tables are usually empty; any samples they do hold come
    # before the fragments' (see fragments.py).
    tracks = tuple(
        (header, sample_index(buf, stbl, file_size, header.track_id)) for header, stbl in headers
    )
    trex = parse_mvex(buf, mvex) if mvex is not None else None
    return _Moov(timescale, tracks, trex, modified)


def _parse_trak(
    buf: bytes, trak: BoxHeader, movie_timescale: int, skip_unsupported: bool = False
) -> tuple[_TrackHeader, BoxHeader] | None:
    """The track's header and its ``stbl``; None for tracks that are neither video nor audio
    (and, with ``skip_unsupported``, for those of a codec we do not serve)."""
    tb = child_map(buf, *span(trak))
    r = Reader(buf, require(tb, "tkhd", "trak"))
    version, _ = r.full()
    r.skip(16 if version == 1 else 8)
    track_id = r.u32()
    where = f"track {track_id}"
    mdia = child_map(buf, *span(require(tb, "mdia", where)))
    hdlr = Reader(buf, require(mdia, "hdlr", where))
    hdlr.skip(8)  # version/flags, pre_defined
    kind = _HANDLERS.get(hdlr.raw(4).decode("latin-1"))
    if kind is None:
        return None  # text, hint, metadata, timecode...: not ours to serve
    # tkhd's 16.16 size is the fallback when the sample entry says 0.
    r.skip(12 if version == 1 else 8)  # reserved, duration
    r.skip(8 + 2 + 2 + 2 + 2 + 36)  # reserved, layer, alternate_group, volume, reserved, matrix
    tk_width, tk_height = r.u32() >> 16, r.u32() >> 16

    r = Reader(buf, require(mdia, "mdhd", where))
    version, _ = r.full()
    r.skip(16 if version == 1 else 8)
    timescale = r.u32()
    if timescale == 0:
        raise MediaError(f"{where}: mdhd timescale is 0")
    r.skip(8 if version == 1 else 4)  # duration
    language = _language(r.u16())

    minf = child_map(buf, *span(require(mdia, "minf", where)))
    stbl = require(minf, "stbl", where)
    stsd = require(child_map(buf, *span(stbl)), "stsd", where)
    pts_shift = 0
    edts = tb.get("edts")
    elst = child_map(buf, *span(edts)).get("elst") if edts is not None else None
    if elst is not None:
        pts_shift = _pts_shift(buf, elst, movie_timescale, timescale)

    entry = _sample_entry(buf, stsd, where)
    if skip_unsupported and entry.type not in _VIDEO_ENTRIES | _AUDIO_ENTRIES:
        return None
    if entry.type in _ENCRYPTED_ENTRIES:
        raise MediaError(f"unsupported codec '{entry.type}' in {where} (encrypted)")
    if entry.type not in (_VIDEO_ENTRIES if kind is Kind.VIDEO else _AUDIO_ENTRIES):
        raise MediaError(f"unsupported codec '{entry.type}' in {where}")
    make = partial(
        _TrackHeader,
        track_id=track_id,
        kind=kind,
        timescale=timescale,
        language=language,
        stsd=bytes(buf[stsd.offset : stsd.end]),
        pts_shift=pts_shift,
    )
    if kind is Kind.VIDEO:
        avc, width, height, par = _video(buf, entry, where)
        return make(codec=avc, width=width or tk_width, height=height or tk_height, par=par), stbl
    aac, sample_rate, channels = _audio(buf, entry, where)
    return make(codec=aac, sample_rate=sample_rate, channels=channels), stbl


def _language(code: int) -> str:
    """mdhd's packed ISO 639-2/T code: three 5-bit letters, each offset by 0x60."""
    letters = ((code >> 10) & 0x1F, (code >> 5) & 0x1F, code & 0x1F)
    # 0 and values below 0x400 (QuickTime's Macintosh language codes) carry no ISO code.
    if code < 0x400 or not all(1 <= c <= 26 for c in letters):
        return "und"
    return "".join(chr(0x60 + c) for c in letters)


def _pts_shift(buf: bytes, elst: BoxHeader, movie_timescale: int, timescale: int) -> int:
    """Presentation offset from an edit list, in the media timescale.

    Leading empty edits (media_time -1) delay presentation by their duration; the first normal
    edit's media_time is where presentation starts. Later edits, and edit rates, are ignored:
    a packager streams the media timeline, it does not re-cut it.
    """
    r = Reader(buf, elst)
    version, _ = r.full()
    shift = 0
    for _ in range(r.u32()):
        if version == 1:
            duration, media_time = r.u64(), r.i64()
        else:
            duration, media_time = r.u32(), r.i32()
        r.skip(4)  # media_rate
        if media_time == -1:
            shift += (duration * timescale + movie_timescale // 2) // movie_timescale
            continue
        return shift - media_time
    return shift


def _sample_entry(buf: bytes, stsd: BoxHeader, where: str) -> BoxHeader:
    r = Reader(buf, stsd)
    r.full()
    count = r.u32()
    if count > 1:
        raise MediaError(f"{where}: {count} sample descriptions (only one is supported)")
    entry = next(children(buf, r.pos, stsd.end), None)
    if count == 0 or entry is None:
        raise MediaError(f"{where}: stsd has no sample entry")
    return entry


def _config(parse: Callable[[bytes], T], buf: bytes, box: BoxHeader, where: str) -> T:
    """A codec configuration box's payload parsed, its errors located at the track."""
    try:
        return parse(buf[box.payload : box.end])
    except MediaError as e:
        raise MediaError(f"{where}: {e}") from None


def _video(buf: bytes, entry: BoxHeader, where: str) -> tuple[AvcConfig, int, int, tuple[int, int]]:
    r = Reader(buf, entry)
    r.skip(8 + 16)  # SampleEntry, pre_defined/reserved
    width, height = r.u16(), r.u16()
    r.skip(_VISUAL_ENTRY_SIZE - 8 - 20)
    boxes = child_map(buf, r.pos, entry.end)
    avcc = boxes.get("avcC")
    if avcc is None:
        raise MediaError(f"{where}: '{entry.type}' sample entry has no avcC")
    codec = _config(parse_avcc, buf, avcc, where)
    par = (1, 1)
    pasp = boxes.get("pasp")
    if pasp is not None:
        p = Reader(buf, pasp)
        h, v = p.u32(), p.u32()
        if h and v:
            par = (h, v)
    return codec, width, height, par


def _audio(buf: bytes, entry: BoxHeader, where: str) -> tuple[AacConfig, int, int]:
    """(config, output sample rate, channels) of an ``mp4a`` entry."""
    r = Reader(buf, entry)
    r.skip(8)  # SampleEntry
    qt_version = r.u16()
    r.skip(6)  # revision, vendor
    entry_channels = r.u16()
    extra = _QT_AUDIO_EXTRA.get(qt_version)
    if extra is None:
        raise MediaError(f"{where}: unknown sound description version {qt_version}")
    r.skip(_AUDIO_ENTRY_SIZE - 8 - 10 + extra)
    boxes = child_map(buf, r.pos, entry.end)
    esds = boxes.get("esds")
    if esds is None and "wave" in boxes:  # QuickTime wraps esds in a 'wave' atom
        esds = child_map(buf, *span(boxes["wave"])).get("esds")
    if esds is None:
        raise MediaError(f"{where}: 'mp4a' sample entry has no esds")
    codec = _config(parse_esds, buf, esds, where)
    channels = codec.channels or entry_channels  # channel_config 0: the layout is in a PCE
    return codec, parse_asc(codec.asc).output_rate, channels
