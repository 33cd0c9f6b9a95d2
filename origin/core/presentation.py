"""The presentation model: an asset indexed once (renditions, segment boundaries, URL times and
bandwidths), everything per asset that can be known before a request.

:func:`prepare` checks what the writers rely on (:mod:`origin.core.validate`), so an asset that
prepares builds every manifest and segment.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial

from origin.core import urls, validate
from origin.core.crypto import padded_size
from origin.core.errors import MediaError, NotFoundError, describe
from origin.core.mux import encrypted, fmp4, ts_sizes
from origin.core.segmenter import Segmentation, cut_at, cut_audio, cut_video, without_empty
from origin.core.track import Kind, Movie, Track


@dataclass(frozen=True, slots=True)
class Rendition:
    """One served track: its id in URLs (a bitrate), source file and segmentation."""

    id: int
    file: int  # index into the asset's file list
    track: Track
    seg: Segmentation
    # Segment k spans times[k]..times[k+1] in URL_TIMESCALE units; fragment URLs, DASH S@t and
    # Smooth c@t are these values for every protocol.
    times: tuple[int, ...] = ()
    by_time: Mapping[int, int] = field(default_factory=dict)
    fps: Fraction = Fraction(0)  # video: computed once, manifests built per request need it
    # How fMP4 writes the timing: computed once (O(samples)), not per segment request.
    edit: fmp4.Edit = field(default_factory=fmp4.Edit)

    @property
    def kind(self) -> Kind:
        return self.track.kind


def _to_url_time(t: int, timescale: int) -> int:
    return max(0, (t * urls.URL_TIMESCALE + timescale // 2) // timescale)


def _with_times(r: Rendition) -> Rendition:
    """Attach URL times: video segments start at their keyframe's presentation time (the DASH
    S@t: the fMP4 earliest presentation time, its edit list applied, PTO 0); audio segments at
    their fMP4 ``tfdt`` (the decode time, delayed by a late start): unlike the presentation time
    under an AAC priming edit it is never negative, and Smooth's tfxd carries it."""
    ts, s = r.seg.timescale, r.track.samples
    edit = fmp4.edit_of(r.track)
    if r.kind is Kind.VIDEO:
        raw = list(r.seg.times)
    else:
        lead = edit.lead
        end = s.dts[-1] + s.duration[-1] + lead
        raw = [s.dts[i] + lead if i < len(s) else end for i in r.seg.starts[:-1]] + [end]
    times = tuple(_to_url_time(t, ts) for t in raw)
    by_time = {t: k for k, t in enumerate(times[:-1])}
    fps = frame_rate(r.track) if r.kind is Kind.VIDEO else Fraction(0)
    return Rendition(r.id, r.file, r.track, r.seg, times, by_time, fps, edit)


@dataclass(frozen=True, slots=True)
class Bandwidth:
    peak: int  # bit/s of the largest segment over its duration
    average: int


@dataclass(frozen=True, slots=True)
class Presentation:
    name: str
    target: Fraction
    video: tuple[Rendition, ...]  # by ascending bitrate
    audio: Rendition | None  # cut at video[0]'s boundaries (or alone for audio-only assets)
    muxed_audio: Mapping[int, Segmentation]  # audio cut at each video rendition's boundaries
    # Per rendition; computed on first use (Deferred), the rest of the asset at load.
    ts_bandwidth: Mapping[tuple[str, int], Bandwidth]
    cmaf_bandwidth: Mapping[tuple[str, int], Bandwidth]
    # CMAF under Common Encryption: each segment grown by its senc/saiz/saio boxes.
    cenc_bandwidth: Mapping[tuple[str, int], Bandwidth] = field(default_factory=dict)

    @property
    def duration(self) -> Fraction:
        tracks = [r.track for r in self.video] + ([self.audio.track] if self.audio else [])
        return max(Fraction(t.duration, t.timescale) for t in tracks)

    def rendition(self, track: str, rid: int) -> Rendition:
        if track == "video":
            for r in self.video:
                if r.id == rid:
                    return r
        elif self.audio is not None and self.audio.id == rid:
            return self.audio
        raise NotFoundError(f"no {track} rendition {rid}")


def frame_rate(track: Track) -> Fraction:
    """Frames per second from the most common sample duration (robust to a short last frame)."""
    if len(track.samples) == 0:
        return Fraction(0)
    durations = track.samples.duration
    n = len(durations)
    # A duration most samples have is the most common one, found without counting them all.
    common = next((d for d in (durations[n // 2], durations[0]) if 2 * durations.count(d) > n), 0)
    if not common:
        common, _ = Counter(durations).most_common(1)[0]
    return Fraction(track.timescale, common) if common else Fraction(0)


def _unique_ids(bitrates: Sequence[int]) -> list[int]:
    """Bitrates as URL ids, nudged up by 1 bit/s where two renditions would collide."""
    seen: set[int] = set()
    out = []
    for bitrate in bitrates:
        b = max(bitrate, 1)
        while b in seen:
            b += 1
        seen.add(b)
        out.append(b)
    return out


def prepare(
    name: str, movies: Sequence[Movie], target: Fraction, *, names: Sequence[str] = ()
) -> Presentation:
    """Index an asset: every video track is a rendition; the first audio track is the audio.

    Everything the writers will rely on is checked here (:mod:`origin.core.validate`): an asset
    that prepares builds every manifest and segment. ``names`` (the files, for messages)
    default to "file N".
    """
    try:
        return _prepare(name, movies, target, names)
    except MediaError:
        raise
    except (ArithmeticError, LookupError, ValueError, struct.error) as e:
        # A validation is missing: still refuse this asset only, with what went wrong.
        raise MediaError(f"cannot index the asset: {describe(e)}") from e


def _prepare(
    name: str, movies: Sequence[Movie], target: Fraction, names: Sequence[str]
) -> Presentation:
    def where(i: int) -> str:
        return f"{names[i] if i < len(names) else f'file {i + 1}'}: "

    videos = [(i, t) for i, m in enumerate(movies) for t in m.video()]
    audios = [(i, t) for i, m in enumerate(movies) for t in m.audio()]
    if not videos and not audios:
        raise MediaError("no H.264 video or AAC audio track in any file")
    for i, t in [*videos, *audios[:1]]:
        validate.check_track(t, where(i))
    videos.sort(key=lambda it: it[1].bitrate())
    ids = _unique_ids([t.bitrate() for _, t in videos])
    video = tuple(
        _with_times(Rendition(rid, i, t, cut_video(t, target)))
        for rid, (i, t) in zip(ids, videos, strict=True)
    )
    for r in video:
        validate.check_times(r.times, f"{where(r.file)}track {r.track.track_id}")
    audio: Rendition | None = None
    muxed: dict[int, Segmentation] = {}
    if audios:
        ai, at = audios[0]
        aseg = cut_at(at, video[0].seg) if video else cut_audio(at, target)
        for r in video:
            muxed[r.id] = aseg if r.seg.times == video[0].seg.times else cut_at(at, r.seg)
        # Served alone (CMAF, DASH, Smooth, the TS audio-only variant) every segment needs a
        # sample; muxed into TS video segments the audio may be absent from some.
        alone = without_empty(aseg, len(at.samples))
        audio = _with_times(Rendition(max(at.bitrate(), 1), ai, at, alone))
        validate.check_times(audio.times, f"{where(ai)}track {at.track_id}")
    pres = Presentation(name, target, video, audio, muxed, {}, {})
    return Presentation(
        name,
        target,
        video,
        audio,
        muxed,
        Deferred(partial(_ts_bandwidths, pres)),
        Deferred(partial(_cmaf_bandwidths, pres)),
        Deferred(partial(_cmaf_bandwidths, pres, protected=True)),
    )


class Deferred(Mapping[tuple[str, int], Bandwidth]):
    """Bandwidths computed on first use, then kept: the first master playlist or MPD of an
    asset pays for them (a few ms for a 60 s ladder, a few hundred for a 2-hour title), not
    every asset at start-up. Nothing they compute can fail on an asset that prepared."""

    __slots__ = ("_compute", "_value")

    def __init__(self, compute: Callable[[], dict[tuple[str, int], Bandwidth]]) -> None:
        self._compute: Callable[[], dict[tuple[str, int], Bandwidth]] | None = compute
        self._value: dict[tuple[str, int], Bandwidth] | None = None

    def _get(self) -> dict[tuple[str, int], Bandwidth]:
        if self._value is None:
            assert self._compute is not None
            self._value = self._compute()
            self._compute = None  # drops what it held
        return self._value

    def __getitem__(self, key: tuple[str, int]) -> Bandwidth:
        return self._get()[key]

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return f"Deferred({self._value!r})" if self._value is not None else "Deferred(...)"


def _bandwidth(sizes: Sequence[int], seg: Segmentation) -> Bandwidth:
    # +16: AES-128 padding adds up to one block; the figures must hold for encrypted segments.
    # ceil(bits / seconds) in integers: the same as over Fractions, without one per segment.
    ts, times = seg.timescale, seg.times
    peak = 0
    for k, size in enumerate(sizes):
        d = times[k + 1] - times[k]
        if d > 0:
            peak = max(peak, -(-padded_size(size) * 8 * ts // d))
    total = times[-1] - times[0]
    avg = -(-sum(map(padded_size, sizes)) * 8 * ts // total) if total > 0 else 0
    return Bandwidth(peak, avg)


def _ts_bandwidths(p: Presentation) -> dict[tuple[str, int], Bandwidth]:
    # Every segment's mpegts.segment_size_bound, from running sums over the sample tables.
    sums = ts_sizes.SizeSums()
    out: dict[tuple[str, int], Bandwidth] = {}
    for r in p.video:
        aseg = p.muxed_audio.get(r.id)
        a = (p.audio.track, aseg.starts) if p.audio and aseg else None
        sizes = ts_sizes.segment_size_bounds(
            (r.track, r.seg.starts), a, video_delay=r.edit.raise_by, sums=sums
        )
        out["video", r.id] = _bandwidth(sizes, r.seg)
    if p.audio:
        au = p.audio
        sizes = ts_sizes.segment_size_bounds(None, (au.track, au.seg.starts), sums=sums)
        out["audio", au.id] = _bandwidth(sizes, au.seg)
    return out


def _cmaf_bandwidths(
    p: Presentation, *, protected: bool = False
) -> dict[tuple[str, int], Bandwidth]:
    out: dict[tuple[str, int], Bandwidth] = {}
    for r in [*p.video, *([p.audio] if p.audio else [])]:
        sizes = []
        video = r.kind is Kind.VIDEO
        for k in range(len(r.seg)):
            start, stop = r.seg.bounds(k)
            size = fmp4.media_segment_size(r.track, start, stop)
            if protected:
                size += encrypted.aux_size_bound(stop - start, video=video)
            sizes.append(size)
        out[r.kind.value, r.id] = _bandwidth(sizes, r.seg)
    return out
