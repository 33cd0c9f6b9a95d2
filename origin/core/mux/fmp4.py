"""Fragmented MP4 / CMAF writer: one init segment per track and ``styp + moof + mdat`` fragments.

One small function per box (ISO/IEC 14496-12), as shaka-packager does; the moof's size is computed
from the sample count before any of its bytes are written, because ``trun.data_offset`` has to
point past it. The same boxes serve HLS fMP4 now and DASH / Smooth later:

* :func:`fragment_of` describes samples ``start:stop`` of a track as a :class:`Fragment` (plain
  columns); :func:`moof` takes extra traf boxes through ``traf_extra``.
* :mod:`origin.core.mux.smooth` writes the same columns re-timed to 10 MHz as Smooth Streaming
  fragments, with the box primitives of this module.
* :func:`segment_header` is everything of a media segment except the payload, so a caller can send
  the samples straight from the source file (:func:`media_segment_size` is its length + payload).

Timing: presentation time of sample ``i`` is ``track.pts(i) = dts + cto + pts_shift``, and both
kinds write it the same way (:func:`edit_of`): a negative shift (the B-frame delay of video, the
AAC priming of audio) is an ``elst`` in the init segment whose ``media_time`` trims it, as the
source's own edit list says, with the source's non-negative composition offsets in ``trun`` v0
(ISO/IEC 23000-19 7.5.13 a and b, as shaka-packager writes it); a positive shift (a track that
starts late) delays ``tfdt``. A source with negative offsets (``ctts``/``trun`` v1) has them
raised to non-negative ones, and the edit trims as much more. Not signed ``trun`` v1 offsets with
the shift baked in (CMAF's other option): libavformat (Debian 12's ffmpeg 5.1) reads negative
offsets in a fragmented file as a pts shift by the largest of them, so it played such video a
frame late, whereas a first edit with ``media_time`` >= 0 is applied by libavformat and by
Chromium's MSE parser (so under hls.js, dash.js and Shaka, which hand fMP4 to MSE as it is).
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

from origin.core.mp4.defs import (
    I32_MAX,
    I32_MIN,
    SYNC_SAMPLE_FLAGS,
    TFHD_DEFAULT_BASE_IS_MOOF,
    TFHD_DEFAULT_FLAGS,
    TFHD_OPTIONAL,
    TRUN_CTO,
    TRUN_DATA_OFFSET,
    TRUN_DURATION,
    TRUN_SAMPLE_FLAGS,
    TRUN_SIZE,
    U32_MAX,
    U64_MAX,
)
from origin.core.mux.run import Run
from origin.core.track import Kind, Track

__all__ = [
    "Edit",
    "Fragment",
    "edit_of",
    "fragment_of",
    "init_segment",
    "media_segment",
    "media_segment_size",
    "moof",
    "moof_size",
    "segment_header",
]

if array("I").itemsize != 4 or array("i").itemsize != 4:  # pragma: no cover - exotic ABIs only
    raise ImportError("origin.core.mux.fmp4 needs 4-byte array('I') and array('i')")

_LITTLE = sys.byteorder == "little"

# ftyp: 'iso6' because the fragments use tfdt (an iso6 feature) and, for a source with negative
# composition offsets, trun v1 (iso4+); 'cmfc' because each file is one CMAF track (ISO/IEC
# 23000-19): one track per init, one moof/traf/trun per fragment, tfdt present,
# default-base-is-moof, no base_data_offset, at most one elst entry (7.5.13). 'isom'/'mp41' are
# left out: trun v1 is not part of plain isom and there is no MPEG-4 Systems IOD that mp41 implies.
_FTYP_BRANDS = (b"iso6", b"cmfc")
# styp: 'msdh' (DASH media segment, ISO/IEC 23009-1 6.3.4.2) plus the CMAF segment/fragment brands.
# Not 'msix': that promises a sidx, which these segments do not carry. A run that does not start on
# a sync sample is only a CMAF chunk, so it says 'cmfl' instead of claiming to be a segment.
_STYP_SEGMENT = (b"msdh", b"cmfs", b"cmff")
_STYP_CHUNK = (b"msdh", b"cmfl")

# Bytes 0 and 1 of the big-endian flags word, indexed by the 0/1 sync byte of the sample index.
_DEPENDS_ON_BYTE = bytes.maketrans(b"\x00\x01", b"\x01\x02")
_NON_SYNC_BYTE = bytes.maketrans(b"\x00\x01", b"\x01\x00")

_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
_HEADER = struct.Struct(">I4s")
_FULL_HEADER = struct.Struct(">I4sI")


# --- box primitives ---------------------------------------------------------------------------


def _box(kind: bytes, *parts: bytes | bytearray | memoryview) -> bytes:
    size = 8 + sum(len(p) for p in parts)
    return b"".join((_HEADER.pack(size, kind), *parts))


def _full_box(
    kind: bytes, version: int, flags: int, *parts: bytes | bytearray | memoryview
) -> bytes:
    size = 12 + sum(len(p) for p in parts)
    return b"".join((_FULL_HEADER.pack(size, kind, (version << 24) | flags), *parts))


def _brands_box(kind: bytes, major: bytes, brands: Iterable[bytes]) -> bytes:
    return _box(kind, major, b"\x00\x00\x00\x00", *brands)


def _brands_size(brands: tuple[bytes, ...]) -> int:
    return 16 + 4 * len(brands)


# --- timing --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edit:
    """How a track's timing is written, in the track timescale (all >= 0; lead or trim is 0).

    ``trim``: the init's single edit ``media_time`` (presentation starts that far into the media:
    the B-frame delay, AAC priming). ``lead``: added to every ``tfdt`` (the track starts late).
    ``raise_by``: added to every composition offset so that none is negative. Presentation time
    = ``tfdt`` + decode offset + ``cto + raise_by`` - ``trim`` = ``dts + cto + pts_shift``.
    """

    lead: int = 0
    trim: int = 0
    raise_by: int = 0


def edit_of(track: Track) -> Edit:
    """The one rule for placing a track's presentation in fMP4 (HLS fMP4, DASH).

    O(samples) (the least composition offset): compute it once per track, at load.
    """
    raise_by = max(0, -min(track.samples.cto, default=0))
    excess = raise_by - track.pts_shift  # = trim - lead
    return Edit(lead=max(0, -excess), trim=max(0, excess), raise_by=raise_by)


# --- init segment ------------------------------------------------------------------------------


def init_segment(
    track: Track, edit: Edit | None = None, *, stsd: bytes | None = None, moov_extra: bytes = b""
) -> bytes:
    """``ftyp`` + ``moov`` for one track with no samples (the HLS ``EXT-X-MAP``, DASH init).

    ``edit``: the track's :func:`edit_of`, precomputed (computed here when ``None``). ``stsd``
    replaces the source's (an encrypted sample entry, :mod:`~origin.core.mux.encrypted`);
    ``moov_extra`` goes at the end of the moov (``pssh`` boxes).
    """
    if track.stsd[4:8] != b"stsd" or len(track.stsd) != _HEADER.unpack_from(track.stsd)[0]:
        raise ValueError("track.stsd must be one whole stsd box")
    if not 0 < track.track_id < U32_MAX or track.timescale <= 0:
        raise ValueError("track_id and timescale must be positive 32-bit values")
    edit = edit_of(track) if edit is None else edit
    moov = _moov(track, edit, stsd or track.stsd, moov_extra)
    return _brands_box(b"ftyp", _FTYP_BRANDS[0], _FTYP_BRANDS) + moov


def _moov(track: Track, edit: Edit, stsd: bytes, extra: bytes) -> bytes:
    # The movie timescale is the track's: the audio edit list is then exact, with no rounding.
    # Durations are 0 and there is no mehd: the init must not depend on which fragments exist
    # (the same bytes serve every playlist, and players take the duration from the manifest).
    trak = _trak(track, edit, stsd)
    return _box(b"moov", _mvhd(track), trak, _box(b"mvex", _trex(track.track_id)), extra)


def _mvhd(track: Track) -> bytes:
    return _full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, track.timescale, 0),  # created, modified, timescale, duration
        struct.pack(">IH10x", 0x00010000, 0x0100),  # rate 1.0, volume 1.0
        _MATRIX,
        bytes(24),  # pre_defined
        struct.pack(">I", track.track_id + 1),  # next_track_ID
    )


def _trak(track: Track, edit: Edit, stsd: bytes) -> bytes:
    return _box(b"trak", _tkhd(track), _edts(edit.trim), _mdia(track, stsd))


def _tkhd(track: Track) -> bytes:
    if track.kind is Kind.VIDEO:
        num, den = track.par
        # Display size: the coded width stretched by the pixel aspect ratio.
        width = track.width * num / den if num > 0 and den > 0 else float(track.width)
        size = struct.pack(">II", round(width * 65536), track.height << 16)
        volume = 0
    else:
        size = bytes(8)
        volume = 0x0100
    return _full_box(
        b"tkhd",
        0,
        0x000003,  # track_enabled | track_in_movie
        struct.pack(">IIIII", 0, 0, track.track_id, 0, 0),  # times, ID, reserved, duration
        struct.pack(">8xhhH2x", 0, 0, volume),  # layer, alternate_group, volume
        _MATRIX,
        size,
    )


def _edts(trim: int) -> bytes:
    if trim == 0:
        return b""
    # One edit from `trim` to the end (duration 0: the fragments are unknown here). Never an empty
    # edit for a late start: Chromium ignores those (it applies only a first media_time >= 0),
    # so that delay goes into tfdt instead.
    return _box(b"edts", _elst([(0, trim)]))


def _elst(edits: list[tuple[int, int]]) -> bytes:
    """Edits as ``(segment_duration, media_time)``, media_rate 1.0."""
    fits_v0 = all(d <= U32_MAX and I32_MIN <= m <= I32_MAX for d, m in edits)
    entry = struct.Struct(">Iih" if fits_v0 else ">Qqh")
    rows = [entry.pack(d, m, 1) + b"\x00\x00" for d, m in edits]
    return _full_box(b"elst", 0 if fits_v0 else 1, 0, struct.pack(">I", len(edits)), *rows)


def _mdia(track: Track, stsd: bytes) -> bytes:
    return _box(b"mdia", _mdhd(track), _hdlr(track.kind), _minf(track, stsd))


def _mdhd(track: Track) -> bytes:
    times = struct.pack(">IIII", 0, 0, track.timescale, 0)
    return _full_box(b"mdhd", 0, 0, times, struct.pack(">HH", _language(track.language), 0))


def _language(code: str) -> int:
    """ISO 639-2/T packed as three 5-bit letters (14496-12 8.4.2.3); ``und`` if not 3 a-z."""
    if len(code) != 3 or not all("a" <= c <= "z" for c in code):
        code = "und"
    return ((ord(code[0]) - 0x60) << 10) | ((ord(code[1]) - 0x60) << 5) | (ord(code[2]) - 0x60)


def _hdlr(kind: Kind) -> bytes:
    handler, name = (b"vide", b"VideoHandler") if kind is Kind.VIDEO else (b"soun", b"SoundHandler")
    return _full_box(b"hdlr", 0, 0, b"\x00\x00\x00\x00", handler, bytes(12), name, b"\x00")


def _minf(track: Track, stsd: bytes) -> bytes:
    if track.kind is Kind.VIDEO:
        header = _full_box(
            b"vmhd", 0, 1, bytes(8)
        )  # graphicsmode copy, opcolor 0; flags 1 required
    else:
        header = _full_box(b"smhd", 0, 0, bytes(4))  # balance 0
    dinf = _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1)))
    return _box(b"minf", header, dinf, _stbl(stsd))


def _stbl(stsd: bytes) -> bytes:
    # The source's stsd verbatim keeps every codec detail (avcC, pasp, colr, btrt, esds) intact.
    return _box(
        b"stbl",
        stsd,
        _full_box(b"stts", 0, 0, bytes(4)),
        _full_box(b"stsc", 0, 0, bytes(4)),
        _full_box(b"stsz", 0, 0, bytes(8)),  # sample_size 0, sample_count 0
        _full_box(b"stco", 0, 0, bytes(4)),
    )


def _trex(track_id: int) -> bytes:
    # description index 1; duration, size and flags are always given by tfhd/trun.
    return _full_box(b"trex", 0, 0, struct.pack(">IIIII", track_id, 1, 0, 0, 0))


# --- fragments ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fragment:
    """What one ``traf`` says about consecutive samples, in the timescale it is written in.

    ``sync`` (one 0/1 byte per sample) asks for per-sample flags; ``None`` means every sample is a
    sync sample, said once by the tfhd default. ``offsets`` are composition offsets, written by
    ``trun`` version 0 when none is negative and version 1 (signed) otherwise; ``None`` writes none.
    """

    track_id: int
    base_time: int  # tfdt baseMediaDecodeTime
    durations: array[int]  # 'I'
    sizes: array[int]  # 'I'
    sync: bytes | None = None
    offsets: array[int] | None = None  # 'i'

    def __post_init__(self) -> None:
        n = len(self.durations)
        if n == 0:
            raise ValueError("a fragment needs at least one sample")
        if len(self.sizes) != n or (self.sync is not None and len(self.sync) != n):
            raise ValueError("fragment columns differ in length")
        if self.offsets is not None and len(self.offsets) != n:
            raise ValueError("fragment columns differ in length")
        if not 0 <= self.base_time <= U64_MAX:
            raise ValueError(f"decode time {self.base_time} does not fit tfdt")

    def __len__(self) -> int:
        return len(self.durations)

    @property
    def tfhd_flags(self) -> int:
        return _tfhd_flags(per_sample_flags=self.sync is not None)

    @property
    def trun_flags(self) -> int:
        return _trun_flags(per_sample_flags=self.sync is not None, offsets=self.offsets is not None)

    @property
    def trun_version(self) -> int:
        """1 only when an offset is negative: v0 offsets are unsigned (14496-12 8.8.8)."""
        return 1 if self.offsets is not None and min(self.offsets) < 0 else 0


def _tfhd_flags(*, per_sample_flags: bool) -> int:
    flags = TFHD_DEFAULT_BASE_IS_MOOF
    if not per_sample_flags:
        flags |= TFHD_DEFAULT_FLAGS
    return flags


def _trun_flags(*, per_sample_flags: bool, offsets: bool) -> int:
    flags = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE
    if per_sample_flags:
        flags |= TRUN_SAMPLE_FLAGS
    if offsets:
        flags |= TRUN_CTO
    return flags


def fragment_of(track: Track, start: int, stop: int, edit: Edit | None = None) -> Fragment:
    """Samples ``start:stop`` of ``track`` as written in HLS/DASH fragments (track timescale).

    ``edit``: the track's :func:`edit_of`, precomputed (computed here when ``None``).
    """
    _check_range(track, start, stop)
    s = track.samples
    durations = _u32(s.duration[start:stop])
    sizes = _u32(s.size[start:stop])
    edit = edit_of(track) if edit is None else edit
    base = s.dts[start] + edit.lead
    if base < 0:
        raise ValueError(f"negative decode time {base} cannot be written in tfdt")
    if track.kind is Kind.VIDEO:
        # The source's own offsets (raised if negative): the init's edit list applies pts_shift.
        offsets = _raised(s.cto[start:stop], edit.raise_by)
        return Fragment(track.track_id, base, durations, sizes, s.sync_flags[start:stop], offsets)
    if any(s.cto[start:stop]):
        raise ValueError("audio with composition offsets is not supported")
    return Fragment(track.track_id, base, durations, sizes)


def _check_range(track: Track, start: int, stop: int) -> None:
    if not 0 <= start < stop <= len(track.samples):
        raise ValueError(f"bad sample range {start}:{stop} of {len(track.samples)} samples")


def _u32(col: array[int]) -> array[int]:
    return col if col.typecode == "I" else array("I", col)


def _raised(cto: array[int], by: int) -> array[int]:
    if by == 0 and cto.typecode == "i":
        return cto
    try:
        return array("i", map(by.__add__, cto))
    except OverflowError:
        raise ValueError("composition offset does not fit 32 bits") from None


def _tfhd_size(flags: int) -> int:
    return 16 + sum(size for bit, size in TFHD_OPTIONAL if flags & bit)


def _trun_size(flags: int, n: int) -> int:
    per_sample = 4 * bin(flags & 0xF00).count("1")
    return 20 + (4 if flags & 0x4 else 0) + n * per_sample  # 0x4 = first_sample_flags


def _traf_size(n: int, tfhd_flags: int, trun_flags: int, extra: int) -> int:
    return 8 + _tfhd_size(tfhd_flags) + 20 + _trun_size(trun_flags, n) + extra  # 20 = tfdt v1


def moof_size(fragment: Fragment, *, traf_extra: int = 0) -> int:
    """Exact size of :func:`moof` for this fragment (``traf_extra``: bytes added to the traf)."""
    n = len(fragment)
    return 8 + 16 + _traf_size(n, fragment.tfhd_flags, fragment.trun_flags, traf_extra)


def moof(
    fragment: Fragment, *, sequence: int, mdat_header_size: int = 8, traf_extra: bytes = b""
) -> bytes:
    """``moof`` whose trun points at the first payload byte of the ``mdat`` that follows it."""
    if not 0 <= sequence <= U32_MAX:
        raise ValueError(f"sequence number {sequence} does not fit 32 bits")
    size = moof_size(fragment, traf_extra=len(traf_extra))
    traf = _box(
        b"traf",
        _tfhd(fragment),
        _tfdt(fragment.base_time),
        _trun(fragment, data_offset=size + mdat_header_size),
        traf_extra,
    )
    out = _box(b"moof", _mfhd(sequence), traf)
    if len(out) != size:  # pragma: no cover - guards the size functions against drift
        raise AssertionError(f"moof is {len(out)} bytes, computed {size}")
    return out


def _mfhd(sequence: int) -> bytes:
    return _full_box(b"mfhd", 0, 0, struct.pack(">I", sequence))


def _tfhd(fragment: Fragment) -> bytes:
    return _tfhd_box(fragment.track_id, fragment.tfhd_flags)


def _tfhd_box(track_id: int, flags: int) -> bytes:
    fields = struct.pack(">I", track_id)
    if flags & TFHD_DEFAULT_FLAGS:
        fields += struct.pack(">I", SYNC_SAMPLE_FLAGS)
    return _full_box(b"tfhd", 0, flags, fields)


def _tfdt(base_time: int) -> bytes:
    return _full_box(b"tfdt", 1, 0, struct.pack(">Q", base_time))


def _trun(fragment: Fragment, *, data_offset: int) -> bytes:
    if data_offset > 0x7FFFFFFF:
        raise ValueError("moof too large for a 32-bit data_offset")
    head = struct.pack(">Ii", len(fragment), data_offset)
    entries = _trun_entries(fragment)
    return _full_box(b"trun", fragment.trun_version, fragment.trun_flags, head, entries)


def _trun_entries(fragment: Fragment) -> memoryview:
    """The per-sample table, big-endian, built column-wise in C (no per-sample packing)."""
    n = len(fragment)
    columns: list[array[int] | None] = [fragment.durations, fragment.sizes]
    flags_at = -1
    if fragment.sync is not None:
        flags_at = len(columns)
        columns.append(None)  # filled byte-wise below, after the byte swap
    if fragment.offsets is not None:
        # Same 32 bits, read as unsigned so they can share one array with the other columns.
        columns.append(array("I", fragment.offsets.tobytes()))
    width = len(columns)
    table = array("I", bytes(4 * width * n))
    for i, col in enumerate(columns):
        if col is not None:
            table[i::width] = col
    if _LITTLE:
        table.byteswap()
    raw = memoryview(table).cast("B")
    if fragment.sync is not None:
        stride = 4 * width
        raw[4 * flags_at :: stride] = fragment.sync.translate(_DEPENDS_ON_BYTE)
        raw[4 * flags_at + 1 :: stride] = fragment.sync.translate(_NON_SYNC_BYTE)
    return raw


# --- media segments ----------------------------------------------------------------------------


def _styp_brands(track: Track, start: int) -> tuple[bytes, ...]:
    return _STYP_SEGMENT if track.samples.is_sync(start) else _STYP_CHUNK


def _mdat_header(payload_size: int) -> bytes:
    if payload_size + 8 <= U32_MAX:
        return _HEADER.pack(payload_size + 8, b"mdat")
    return struct.pack(">I4sQ", 1, b"mdat", payload_size + 16)  # 64-bit largesize


def segment_header(
    track: Track, start: int, stop: int, *, sequence: int, edit: Edit | None = None
) -> bytes:
    """``styp + moof + mdat header`` for samples ``start:stop``; the payload follows it."""
    fragment = fragment_of(track, start, stop, edit)
    brands = _styp_brands(track, start)
    mdat_header = _mdat_header(track.samples.byte_size(start, stop))
    return b"".join(
        (
            _brands_box(b"styp", brands[0], brands),
            moof(fragment, sequence=sequence, mdat_header_size=len(mdat_header)),
            mdat_header,
        )
    )


def media_segment(run: Run, *, sequence: int, edit: Edit | None = None) -> bytes:
    """``styp + moof + mdat`` for the samples of ``run`` (one track); ``edit`` as for
    :func:`fragment_of`."""
    if len(run) == 0:
        raise ValueError("empty run")
    track = run.track
    _check_range(track, run.start, run.stop)
    sizes = track.samples.size[run.start : run.stop]
    if list(map(len, run.data)) != sizes.tolist():
        raise ValueError("payload sizes differ from the sample index")
    header = segment_header(track, run.start, run.stop, sequence=sequence, edit=edit)
    return b"".join((header, *run.data))


def media_segment_size(track: Track, start: int, stop: int) -> int:
    """Exact ``len(media_segment(...))`` from the index alone (for BANDWIDTH, Content-Length)."""
    _check_range(track, start, stop)
    n = stop - start
    video = track.kind is Kind.VIDEO  # as fragment_of: video has per-sample flags and offsets
    tfhd_flags = _tfhd_flags(per_sample_flags=video)
    trun_flags = _trun_flags(per_sample_flags=video, offsets=video)
    payload = track.samples.byte_size(start, stop)
    return (
        _brands_size(_styp_brands(track, start))
        + 8
        + 16
        + _traf_size(n, tfhd_flags, trun_flags, 0)
        + len(_mdat_header(payload))
        + payload
    )
