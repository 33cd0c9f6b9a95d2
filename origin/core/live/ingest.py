"""One ingest byte stream (an encoder's POST/PUT body) → :class:`Header` s and :class:`Chunk` s.

Sans-IO and incremental: :meth:`StreamParser.feed` takes whatever bytes arrived and returns the
events they complete, so a fragment reaches players as soon as its ``mdat``'s last byte does.
Bytes wait in one ``bytearray`` read through a cursor and compacted once per feed; a box the
parser does not need (``free``, ``sidx``, ``mfra``...) is discarded as it streams past.

What real encoders send (measured with ffmpeg 5.1, Lavf 59.27; see the tests):

* ``-f ismv -movflags isml+frag_keyframe http://HOST/ch.isml/Streams(s1)``: one ``POST`` (``-method
  PUT`` makes it a ``PUT``) for the whole output, ``Transfer-Encoding: chunked``, ``Connection:
  close``, ``Icy-MetaData: 1``, no Content-Type; the body is byte for byte the file ffmpeg would
  write. ``ftyp``, a ``uuid`` live server manifest box (SMIL with ``systemBitrate`` and
  ``trackID`` per track), ``moov`` (timescale 10 MHz for every track, ``mvex``, no ``btrt``), then
  one ``moof`` + ``mdat`` per track per fragment (video and audio alternate), ending with an
  ``mfra``. Fragments carry no ``tfdt``: their time is in a ``tfxd``; the first audio ``tfxd``
  is negative (-213333 = 1024 samples of AAC priming at 48 kHz) while video starts at 0. Every
  video ``moof`` starts with a keyframe (one fragment per GOP); ``trun`` carries durations, sizes
  and composition offsets, the first sample's flags apart.
* With ``http://user:pass@HOST/...`` ffmpeg first POSTs without credentials but with ``Expect:
  100-continue``, and sends no body until answered; on a 401 with ``WWW-Authenticate: Basic``
  it retries with ``Authorization: Basic`` (and no Expect). ``-auth_type basic`` sends them on
  the first request. ``-headers "Authorization: Bearer X"`` works on an ismv output too. (aiohttp
  answers ``100 Continue`` in the route's ``expect_handler``, before any middleware or handler:
  refusing before the body takes an ``expect_handler`` that checks the credential.)
* ffmpeg warns "Track 1 starts with a nonzero dts -213333, while the moov already has been
  written" (the negative audio tfxd); the stream is fine.
* ``-f dash -method PUT -streaming 1 -ldash 0``: a chunked ``PUT`` per file:
  ``init-stream{n}.m4s`` (``ftyp`` + ``moov``, one track each), then ``chunk-stream{n}-{k:05}.m4s``
  (``styp`` then one ``moof`` + ``mdat`` per frame), the MPD re-PUT between segments.
  ``-f hls -hls_segment_type fmp4 -method PUT``: ``init.mp4`` (both tracks), ``x{k}.m4s``
  (``styp``, ``sidx`` per track, one ``moof`` with a ``traf`` per track), the playlist re-PUT.
"""

from __future__ import annotations

import re
import struct
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import TypeVar

from origin.core.errors import IngestError, IngestTooLarge, MediaError, describe
from origin.core.index import SampleIndex
from origin.core.live.model import Chunk, StreamTrack
from origin.core.mp4.boxes import Reader, children, plausible_type, read_header
from origin.core.mp4.fragments import Defaults, Fragments
from origin.core.mp4.parse import FIRST_BOX_TYPES, parse_header_moov
from origin.core.track import AacConfig, Kind, Track

T = TypeVar("T")

# ffmpeg's ISML "live server manifest" box (Smooth live ingest, before the moov).
ISML_MANIFEST_UUID = bytes.fromhex("A5D40B30E81411DDBA2F0800200C9A66")

# Boxes held whole until complete; every other box is skipped as it streams past.
_HELD = frozenset({"moov", "moof", "uuid"})
# What a stream may start with (a CMAF segment POST may open with prft or emsg).
_FIRST_BOX_TYPES = FIRST_BOX_TYPES | {"prft", "emsg"}
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class Header:
    """A stream's ``moov`` (its CMAF header): the tracks it announces, with the ``trex``
    defaults its fragments rely on (pass both to the parser of a later segment POST)."""

    tracks: tuple[StreamTrack, ...]
    defaults: Mapping[int, Defaults]


Event = Header | Chunk


_STYP_MAX = 1024  # a styp is read for its brands only when this small


class StreamParser:
    """Incremental parser of one ingest stream: ``ftyp`` + ``moov``, then ``moof`` + ``mdat``.

    ``tracks`` (and ``defaults``): a header received before, in another request (DASH-IF CMAF
    ingest POSTs the header and each segment separately); then the stream may start at a
    ``moof``. One :class:`Chunk` is emitted per served track of each ``moof`` (one ``traf``, in
    every encoder seen). Errors are :class:`IngestError` naming the box and its stream offset;
    after one, the parser refuses further input. A feed whose bytes complete events before a
    bad box returns those events and sets :attr:`error`; the next call raises it.
    """

    def __init__(
        self,
        *,
        max_box: int = 64 << 20,
        tracks: Sequence[StreamTrack] | None = None,
        defaults: Mapping[int, Defaults] | None = None,
    ) -> None:
        self._max_box = max_box
        self._buf = bytearray()
        self._start = 0  # cursor into _buf: bytes before it are consumed
        self._offset = 0  # stream offset of _buf[0]
        self._skip = 0  # bytes of a skipped box still to discard
        self._skipping = ""  # its type, for an error at close
        self._moof: tuple[int, bytes] | None = None  # a moof waiting for its mdat
        self._bitrates: dict[int, int] = {}  # from the ISML manifest box
        self._failed: IngestError | None = None
        self._tracks: tuple[StreamTrack, ...] | None = None
        self._frags: Fragments | None = None
        self._ended = False
        if tracks is not None:
            given = tuple(tracks)
            trex = dict(defaults or {})
            for t in given:
                trex.setdefault(t.track.track_id, Defaults(1, 0, 0, 0))
            self._use(given, trex)

    @property
    def tracks(self) -> tuple[StreamTrack, ...] | None:
        return self._tracks

    @property
    def ended(self) -> bool:
        """The stream signalled its end: an ``mfra`` (AMS ingest, ffmpeg) or a segment with the
        ``lmsg`` brand (DASH-IF ingest). A body that just stops is not an end: the encoder
        may reconnect."""
        return self._ended

    @property
    def error(self) -> IngestError | None:
        """Why the stream was refused, if it was (feed and close raise it from then on)."""
        return self._failed

    def feed(self, data: bytes | memoryview) -> list[Event]:
        """Take the next bytes of the stream; return the events they complete."""
        if self._failed is not None:
            raise self._failed
        events: list[Event] = []
        view = memoryview(data)
        if self._skip:  # the rest of a skipped box: discard without buffering
            n = min(self._skip, len(view))
            self._skip -= n
            self._offset += n
            view = view[n:]
        self._buf += view
        try:
            while self._step(events):
                pass
        except IngestError as e:
            self._failed = e
            if not events:
                raise
            return events  # what came before the bad box is good: the error is raised next
        if self._start:
            del self._buf[: self._start]
            self._offset += self._start
            self._start = 0
        return events

    def close(self) -> None:
        """The end of the body: every box must be complete and every ``moof`` have its mdat."""
        if self._failed is not None:
            raise self._failed
        left = len(self._buf) - self._start
        at = self._offset + self._start
        if self._skip:
            raise self._fail(
                f"stream ends inside box '{self._skipping}' ({self._skip} bytes short)"
            )
        if 0 < left < 8:
            raise self._fail(f"stream ends with {left} stray bytes at offset {at}")
        if left:
            kind = bytes(self._buf[self._start + 4 : self._start + 8]).decode("latin-1")
            raise self._fail(f"stream ends inside box '{kind}' at offset {at} ({left} bytes of it)")
        if self._moof is not None:
            raise self._fail(f"stream ends after the moof at offset {self._moof[0]}: no mdat")

    # ------------------------------------------------------------------ the box walk

    def _fail(self, message: str, large: bool = False) -> IngestError:
        self._failed = (IngestTooLarge if large else IngestError)(message)
        return self._failed

    def _step(self, events: list[Event]) -> bool:
        """Handle the box at the cursor if its bytes are here; whether to look at the next."""
        buf, pos = self._buf, self._start
        avail = len(buf) - pos
        at = self._offset + pos
        if avail < 8:
            return False
        raw = bytes(buf[pos + 4 : pos + 8])
        kind = raw.decode("latin-1")
        if at == 0 and kind not in _FIRST_BOX_TYPES:
            raise self._fail(f"not an MP4 stream: it starts with {bytes(buf[pos : pos + 8])!r}")
        if not plausible_type(raw):
            raise self._fail(f"no box header at stream offset {at}")
        size, header = int(_U32.unpack_from(buf, pos)[0]), 8
        if size == 1:
            if avail < 16:
                return False
            size, header = int(_U64.unpack_from(buf, pos + 8)[0]), 16
        elif size == 0:
            raise self._fail(f"box '{kind}' at stream offset {at} runs to the end of the stream")
        if size < header:
            raise self._fail(f"box '{kind}' at stream offset {at} has invalid size {size}")
        if size > self._max_box:
            raise self._fail(
                f"box '{kind}' at stream offset {at} is {size} bytes, over the "
                f"{self._max_box}-byte limit",
                large=True,
            )
        if self._moof is not None and kind != "mdat":
            raise self._fail(
                f"moof at stream offset {self._moof[0]} is followed by '{kind}', not mdat"
            )
        if kind == "moof" and self._tracks is None:
            raise self._fail(f"moof at stream offset {at} before any moov")
        if kind == "mfra":
            self._ended = True  # what an encoder writes last (ffmpeg; AMS: an empty one)
        elif kind == "styp" and size <= _STYP_MAX:
            if avail < size:
                return False
            # DASH-IF ingest: the last segment of a track carries the 'lmsg' brand.
            brands = bytes(buf[pos + header : pos + size])
            if any(brands[k : k + 4] == b"lmsg" for k in range(0, len(brands) - 3, 4)):
                self._ended = True
        if kind not in _HELD and not (kind == "mdat" and self._moof is not None):
            # Skipped: styp, ftyp, free, skip, sidx, prft, emsg, mfra, a lone mdat, unknown.
            n = min(size, avail)
            self._start = pos + n
            self._skip, self._skipping = size - n, kind
            return n == size
        if avail < size:
            return False
        self._start = pos + size
        if kind == "mdat":
            moof_at, moof = self._moof or (0, b"")
            self._moof = None
            # Samples are copied straight out of the buffer: one copy per chunk. The views
            # are released before the buffer is compacted.
            with memoryview(buf) as whole, whole[pos : pos + size] as mdat:
                found = self._guard(lambda: self._chunks(moof, mdat, header), "moof", moof_at)
            events.extend(found)
            return True
        box = bytes(buf[pos : pos + size])
        if kind == "moov":
            events.append(self._guard(lambda: self._header(box), "moov", at))
        elif kind == "moof":
            self._moof = (at, box)
        elif box[header : header + 16] == ISML_MANIFEST_UUID and size <= _SMIL_MAX:
            self._bitrates = self._guard(lambda: _smil_bitrates(box[header + 20 :]), "uuid", at)
        return True

    def _guard(self, parse: Callable[[], T], box: str, at: int) -> T:
        """``parse()``, its errors (and any unexpected one on malformed data) named by box."""
        try:
            return parse()
        except IngestError:
            raise
        except MediaError as e:
            raise self._fail(f"{box} at stream offset {at}: {e}") from None
        except (ArithmeticError, LookupError, ValueError, struct.error) as e:
            raise self._fail(f"corrupt {box} at stream offset {at}: {describe(e)}") from None

    def _use(self, tracks: tuple[StreamTrack, ...], trex: dict[int, Defaults]) -> None:
        self._tracks = tracks
        audio = {t.track.track_id: (t.track.samples, t.track.kind is Kind.AUDIO) for t in tracks}
        self._frags = Fragments(trex, audio, 0)

    # ------------------------------------------------------------------ boxes → events

    def _header(self, moov: bytes) -> Header:
        tracks, trex = parse_header_moov(moov)
        announced = tuple(
            StreamTrack(t, self._bitrates.get(t.track_id) or _bitrate(t)) for t in tracks
        )
        self._use(announced, trex)
        return Header(announced, trex)

    def _chunks(self, moof: bytes, mdat: memoryview, header: int) -> list[Chunk]:
        """The moof's samples, per served track, with their bytes cut out of the mdat."""
        frags = self._frags
        assert frags is not None  # a moof is only held once tracks are known
        # Coordinates: the moof at 0, its mdat right after (where data offsets point).
        data_start = len(moof) + header
        frags.add_moof(moof, 0, data_end=len(moof) + len(mdat))
        out = []
        for tid, index in frags.take().items():
            if len(index.offset) == 0:
                continue
            first = min(index.offset)
            if first < data_start:
                raise MediaError(
                    f"track {tid}: a trun points at byte {first}, before the mdat data"
                )
            out.append(_chunk(tid, index, mdat, len(moof)))
        return out


def _chunk(track_id: int, index: SampleIndex, mdat: memoryview, mdat_at: int) -> Chunk:
    """A chunk whose payload is its samples' bytes (``index.offset`` count from ``mdat_at``)."""
    sizes, where = index.size, index.offset
    offsets = array("Q", accumulate(sizes, initial=0))
    end = offsets.pop()
    start = where[0] - mdat_at
    if where == array("Q", accumulate(sizes, initial=where[0]))[:-1]:
        payload = bytes(mdat[start : start + end])  # the usual case: one run, one copy
    else:  # runs out of decode order or apart: copy sample by sample
        payload = b"".join(
            [mdat[o - mdat_at : o - mdat_at + s] for o, s in zip(where, sizes, strict=True)]
        )
    samples = SampleIndex(
        dts=index.dts, duration=index.duration, cto=index.cto, size=sizes,
        offset=offsets, keyframes=index.keyframes,
    )  # fmt: skip
    return Chunk(track_id, samples, payload)


def _bitrate(track: Track) -> int:
    """What the sample entry declares: ``btrt`` (video or audio), else the AAC ``esds``."""
    stsd = track.stsd
    try:
        entry = read_header(stsd, 16, len(stsd))
        skip = 78 if track.kind is Kind.VIDEO else 28
        for box in children(stsd, entry.payload + skip, entry.end):
            if box.type == "btrt":
                r = Reader(stsd, box)
                r.skip(8)  # bufferSizeDB, maxBitrate
                return r.u32()
    except MediaError:
        pass
    return track.codec.avg_bitrate if isinstance(track.codec, AacConfig) else 0


_SMIL_MAX = 1 << 16  # a manifest box is ~1.5 KB; a bigger one is not worth a regex's time
_SMIL_TRACK = re.compile(
    r"<(?:video|audio)\b[^>]*?systemBitrate=\"(\d+)\"(.*?)</(?:video|audio)>", re.S
)
_SMIL_ID = re.compile(r"name=\"trackID\"\s+value=\"(\d+)\"")


def _smil_bitrates(payload: bytes) -> dict[int, int]:
    """``systemBitrate`` per ``trackID`` in an ISML live server manifest (its SMIL text)."""
    text = payload.decode("utf-8", "replace")
    out = {}
    for bitrate, body in _SMIL_TRACK.findall(text):
        found = _SMIL_ID.search(body)
        if found:
            out[int(found.group(1))] = int(bitrate)
    return out
