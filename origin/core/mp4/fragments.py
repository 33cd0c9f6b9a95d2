"""Movie fragments (ISO/IEC 14496-12 §8.8; MS-SSTR for Smooth ``.ismv``) → sample columns.

A fragmented file's ``moov`` holds empty (or short) sample tables; the samples are described by
one ``moof`` per fragment. :class:`Fragments` is fed each ``moof`` whole, in file order, and
appends its runs to per-track columns, so the result is the same :class:`SampleIndex` a
progressive file gives. Each ``trun`` is expanded with array slicing and ``accumulate``: no
Python object per sample.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from itertools import accumulate, compress, count, repeat
from operator import add, and_, not_

from origin.core.errors import MediaError
from origin.core.index import SampleIndex
from origin.core.mp4.boxes import BoxHeader, Reader, children, read_header
from origin.core.mp4.defs import (
    I64_MAX,
    NON_SYNC_SAMPLE_FLAGS,
    TFHD_BASE_DATA_OFFSET,
    TFHD_DEFAULT_BASE_IS_MOOF,
    TFHD_DEFAULT_DURATION,
    TFHD_DEFAULT_FLAGS,
    TFHD_DEFAULT_SIZE,
    TFHD_DESCRIPTION_INDEX,
    TFHD_DURATION_IS_EMPTY,
    TFXD_UUID,
    TRUN_CTO,
    TRUN_DATA_OFFSET,
    TRUN_DURATION,
    TRUN_FIRST_FLAGS,
    TRUN_SAMPLE_FLAGS,
    TRUN_SIZE,
)


@dataclass(frozen=True, slots=True)
class Defaults:
    """A track's ``trex`` defaults, overridden per fragment by ``tfhd``."""

    description: int
    duration: int
    size: int
    flags: int


def parse_mvex(buf: bytes, mvex: BoxHeader) -> dict[int, Defaults]:
    """``trex`` defaults by track id."""
    out: dict[int, Defaults] = {}
    for box in children(buf, mvex.payload, mvex.end):
        if box.type == "trex":
            r = Reader(buf, box)
            r.full()
            track_id = r.u32()
            out[track_id] = Defaults(r.u32(), r.u32(), r.u32(), r.u32())
    return out


class _Columns:
    """One track's samples, moov's first, extended run by run."""

    __slots__ = ("audio", "cto", "dts", "duration", "keyframes", "next_dts", "offset", "size")

    def __init__(self, moov: SampleIndex, audio: bool) -> None:
        self.audio = audio
        self.dts = array("q", moov.dts)
        self.duration = array("I", moov.duration)
        self.cto = array("i", moov.cto)
        self.size = array("I", moov.size)
        self.offset = array("Q", moov.offset)
        self.keyframes = array("I", moov.keyframes)
        # Where a fragment without tfdt/tfxd starts: right after what came before.
        self.next_dts = moov.dts[-1] + moov.duration[-1] if len(moov) else 0

    def index(self) -> SampleIndex:
        return SampleIndex(
            dts=self.dts,
            duration=self.duration,
            cto=self.cto,
            size=self.size,
            offset=self.offset,
            keyframes=self.keyframes,
        )


class Fragments:
    """Accumulates the samples of every ``moof`` of a file, for the tracks being served."""

    def __init__(
        self, trex: dict[int, Defaults], moov: dict[int, tuple[SampleIndex, bool]], file_size: int
    ) -> None:
        """``moov``: per served track id, its moov samples and whether it is audio."""
        self._trex = trex
        self._file_size = file_size
        self._data_end = file_size  # where the current moof's sample data must end
        self._live = False  # the data end is the moof's mdat's (live ingest), not the file's
        self._tracks = {tid: _Columns(index, audio) for tid, (index, audio) in moov.items()}
        self.count = 0  # moof boxes seen

    def indexes(self) -> dict[int, tuple[SampleIndex, int]]:
        """Per track id: its samples, and how far their decode times were moved later.

        Decode times start at 0 or later, as in progressive files: a negative start (Smooth
        audio whose tfxd says -1024 samples of priming) is moved to 0, and the caller moves
        the presentation back by as much (``pts_shift``), as an edit list would.
        """
        out = {}
        for tid, cols in self._tracks.items():
            rebase = -cols.dts[0] if len(cols.dts) and cols.dts[0] < 0 else 0
            if rebase:
                if cols.next_dts + rebase > I64_MAX:
                    raise MediaError(f"track {tid}: fragment decode times span beyond 2^63")
                cols.dts = array("q", map(add, cols.dts, repeat(rebase)))
            out[tid] = (cols.index(), rebase)
        return out

    def take(self) -> dict[int, SampleIndex]:
        """The samples added since the last take, per track that has any, and forget them.

        Live ingest indexes one fragment at a time and must not keep a day of columns; where
        the next fragment without tfdt/tfxd starts (the end of these samples) is kept.
        """
        out = {}
        for tid, cols in self._tracks.items():
            if len(cols.dts):
                out[tid] = cols.index()
                cols.dts, cols.duration, cols.cto = array("q"), array("I"), array("i")
                cols.size, cols.offset, cols.keyframes = array("I"), array("Q"), array("I")
        return out

    def add_moof(self, buf: bytes, moof_offset: int, *, data_end: int | None = None) -> None:
        """Parse one whole ``moof`` box (``buf``) found at ``moof_offset`` in the file.

        ``data_end``: where its sample data must end (live ingest: the end of its ``mdat``,
        in the coordinates of ``moof_offset``); by default the end of the file.
        """
        self.count += 1
        self._live = data_end is not None
        self._data_end = self._file_size if data_end is None else data_end
        moof = read_header(buf, 0, len(buf))
        # With no explicit base, the first traf's data is based at the moof and each later
        # traf's at the end of the data of the one before (§8.8.7.1).
        implicit = moof_offset
        for traf in children(buf, moof.payload, moof.end):
            if traf.type == "traf":
                where = f"fragment {self.count}"
                if not self._live:  # live ingest names the moof's offset in the stream itself
                    where += f" (moof at offset {moof_offset})"
                implicit = self._traf(buf, traf, moof_offset, implicit, where)

    def _traf(
        self, buf: bytes, traf: BoxHeader, moof_offset: int, implicit: int, where: str
    ) -> int:
        """Append one traf's samples; returns the end of its data (the next traf's base)."""
        boxes = list(children(buf, traf.payload, traf.end))
        tfhd = next((b for b in boxes if b.type == "tfhd"), None)
        if tfhd is None:
            raise MediaError(f"{where}: traf has no tfhd")
        r = Reader(buf, tfhd)
        _, flags = r.full()
        track_id = r.u32()
        where = f"track {track_id}, {where}"
        cols = self._tracks.get(track_id)
        trex = self._trex.get(track_id)
        if trex is None:
            if cols is not None:
                raise MediaError(f"{where}: the track has no trex in moov/mvex")
            trex = Defaults(1, 0, 0, 0)  # a track we skip: only its data extent matters
        if flags & TFHD_BASE_DATA_OFFSET:
            base = r.u64()
        elif flags & TFHD_DEFAULT_BASE_IS_MOOF:
            base = moof_offset
        else:
            base = implicit
        description = r.u32() if flags & TFHD_DESCRIPTION_INDEX else trex.description
        duration = r.u32() if flags & TFHD_DEFAULT_DURATION else trex.duration
        size = r.u32() if flags & TFHD_DEFAULT_SIZE else trex.size
        sample_flags = r.u32() if flags & TFHD_DEFAULT_FLAGS else trex.flags
        if description > 1 and cols is not None:
            raise MediaError(f"{where}: sample description {description} (only one is supported)")

        start = self._start_time(buf, boxes)
        if cols is not None:
            if start is None:
                start = cols.next_dts
            elif start < cols.next_dts and len(cols.dts):
                raise MediaError(
                    f"{where}: starts at {start}, before the previous samples end "
                    f"({cols.next_dts}); overlapping fragments are not supported"
                )
            if flags & TFHD_DURATION_IS_EMPTY:
                cols.next_dts = start + duration  # a gap: no samples for this interval
        cursor = base
        for trun in boxes:
            if trun.type == "trun":
                start, cursor = self._trun(
                    buf, trun, base=base, cursor=cursor, start=start or 0,
                    defaults=(duration, size, sample_flags), cols=cols, where=where,
                )  # fmt: skip
        return cursor

    @staticmethod
    def _start_time(buf: bytes, boxes: list[BoxHeader]) -> int | None:
        """The traf's base media decode time: tfdt, else Smooth's tfxd, else None."""
        tfxd: int | None = None
        for box in boxes:
            if box.type == "tfdt":
                r = Reader(buf, box)
                version, _ = r.full()
                return r.u64() if version == 1 else r.u32()
            if box.type == "uuid" and tfxd is None:
                r = Reader(buf, box)
                if r.remaining >= 16 and r.raw(16) == TFXD_UUID:
                    version, _ = r.full()
                    # Signed: ffmpeg writes a negative time for audio with encoder priming.
                    tfxd = r.i64() if version == 1 else r.u32()
        return tfxd

    def _short(self, where: str) -> str:
        """A run past the data: a truncated file, or (live) a run outside its mdat."""
        return where if self._live else f"truncated file: {where}"

    def _holder(self) -> str:
        if self._live:
            return f"the {self._data_end} bytes of its moof and mdat"
        return f"a {self._file_size}-byte file"

    def _trun(
        self,
        buf: bytes,
        trun: BoxHeader,
        *,
        base: int,
        cursor: int,
        start: int,
        defaults: tuple[int, int, int],
        cols: _Columns | None,
        where: str,
    ) -> tuple[int, int]:
        """Append one run; returns (decode time after it, end of its data)."""
        r = Reader(buf, trun)
        _, flags = r.full()
        n = r.u32()
        # Without a data_offset a run continues right after the previous run of the traf.
        data = base + r.i32() if flags & TRUN_DATA_OFFSET else cursor
        first_flags = r.u32() if flags & TRUN_FIRST_FLAGS else None
        fields = [f for f in (TRUN_DURATION, TRUN_SIZE, TRUN_SAMPLE_FLAGS, TRUN_CTO) if flags & f]
        default_duration, default_size, default_flags = defaults
        # Nothing bounds n by the box size without per-sample fields: check it against the file
        # before allocating columns for it.
        limit = self._data_end
        if not fields and n > limit:
            raise MediaError(f"{where}: trun declares {n} samples")
        if TRUN_SIZE not in fields and n * default_size > limit:
            raise MediaError(
                f"{self._short(where)} declares {n} samples of {default_size} bytes, more "
                f"than {self._holder()} holds"
            )
        words = r.table("I", n * len(fields), 4)
        columns = {f: words[k :: len(fields)] for k, f in enumerate(fields)}

        sizes = columns.get(TRUN_SIZE) or array("I", [default_size]) * n
        if data < 0:
            raise MediaError(f"{where}: sample data lies outside the file (at offset {data})")
        offsets = array("Q", accumulate(sizes, initial=data))
        if offsets[-1] > limit:
            tail = "" if self._live else ": the file is incomplete, perhaps still being written"
            raise MediaError(
                f"{self._short(where)} refers to sample data up to byte {offsets[-1]} of "
                f"{self._holder()}{tail}"
            )
        end = offsets.pop()
        if cols is None:
            return start, end

        durations = columns.get(TRUN_DURATION) or array("I", [default_duration]) * n
        if start + sum(durations) > I64_MAX:
            raise MediaError(f"{where}: decode times pass 2^63 (tfdt {start})")
        dts = array("q", accumulate(durations, initial=start))
        next_dts = dts.pop()
        ctos = columns.get(TRUN_CTO)
        # trun v0 offsets are unsigned by the spec, but as for ctts both versions are read
        # signed (as ffmpeg does).
        cto = array("i", ctos.tobytes()) if ctos is not None else array("i", bytes(4 * n))

        first = len(cols.dts)
        cols.dts.extend(dts)
        cols.duration.extend(durations)
        cols.cto.extend(cto)
        cols.size.extend(sizes)
        cols.offset.extend(offsets)
        cols.next_dts = next_dts
        numbers = range(first, first + n)
        per_sample = columns.get(TRUN_SAMPLE_FLAGS)
        if cols.audio:
            cols.keyframes.extend(numbers)  # every audio access unit is a sync sample
        elif per_sample is not None:
            # Per-sample flags win over first_sample_flags, as in ffmpeg.
            sync = map(not_, map(and_, per_sample, repeat(NON_SYNC_SAMPLE_FLAGS)))
            cols.keyframes.extend(compress(count(first), sync))
        else:
            head = default_flags if first_flags is None else first_flags
            if n and not head & NON_SYNC_SAMPLE_FLAGS:
                cols.keyframes.append(first)
            if not default_flags & NON_SYNC_SAMPLE_FLAGS:
                cols.keyframes.extend(numbers[1:])
        return next_dts, end
