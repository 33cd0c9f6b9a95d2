"""The one facade the service calls: prepare an asset once, then build manifests and segments.

Only this module knows the whole chain (index → segmenter → muxer → manifest). Everything per
asset that can be known before a request is computed in :func:`prepare`: segment boundaries,
codec strings, per-segment sizes and so bandwidths. A segment request is then: :func:`plan_reads`
(which byte ranges of which files), the service reads them, :func:`build_segment` muxes them.
"""

from __future__ import annotations

import itertools
import math
import struct
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from origin.core import urls, validate
from origin.core.crypto import padded_size
from origin.core.errors import MediaError, NotFoundError, describe
from origin.core.manifest import dash, hls, smooth
from origin.core.mux import Run, fmp4, mpegts
from origin.core.segmenter import Segmentation, cut_at, cut_audio, cut_video, without_empty
from origin.core.track import AacConfig, AvcConfig, Kind, Movie, Track
from origin.core.urls import Format, Options

# Ranges of one file closer than this are read as one: a segment's video and audio samples are
# interleaved in chunks, and one larger read beats several small ones.
READ_GAP = 64 * 1024


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
    ts_bandwidth: Mapping[tuple[str, int], Bandwidth]
    cmaf_bandwidth: Mapping[tuple[str, int], Bandwidth]

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
    common, _ = Counter(track.samples.duration).most_common(1)[0]
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
        name, target, video, audio, muxed, _ts_bandwidths(pres), _cmaf_bandwidths(pres)
    )


def _bandwidth(sizes: Sequence[int], seg: Segmentation) -> Bandwidth:
    # +16: AES-128 padding adds up to one block; the figures must hold for encrypted segments.
    peak = 0
    for k, size in enumerate(sizes):
        d = seg.duration(k)
        if d > 0:
            peak = max(peak, math.ceil(padded_size(size) * 8 / d))
    total = Fraction(seg.times[-1] - seg.times[0], seg.timescale)
    avg = math.ceil(sum(padded_size(s) for s in sizes) * 8 / total) if total > 0 else 0
    return Bandwidth(peak, avg)


def _ts_bandwidths(p: Presentation) -> dict[tuple[str, int], Bandwidth]:
    out: dict[tuple[str, int], Bandwidth] = {}
    for r in p.video:
        aseg = p.muxed_audio.get(r.id)
        sizes = []
        for k in range(len(r.seg)):
            v = (r.track, *r.seg.bounds(k))
            a = (p.audio.track, *aseg.bounds(k)) if p.audio and aseg else None
            sizes.append(mpegts.segment_size_bound(v, a))
        out["video", r.id] = _bandwidth(sizes, r.seg)
    if p.audio:
        au = p.audio
        sizes = [
            mpegts.segment_size_bound(None, (au.track, *au.seg.bounds(k)))
            for k in range(len(au.seg))
        ]
        out["audio", au.id] = _bandwidth(sizes, au.seg)
    return out


def _cmaf_bandwidths(p: Presentation) -> dict[tuple[str, int], Bandwidth]:
    out: dict[tuple[str, int], Bandwidth] = {}
    for r in [*p.video, *([p.audio] if p.audio else [])]:
        sizes = [fmp4.media_segment_size(r.track, *r.seg.bounds(k)) for k in range(len(r.seg))]
        out[r.kind.value, r.id] = _bandwidth(sizes, r.seg)
    return out


# ---------------------------------------------------------------------------------------------
# Playlists


def _with_query(uri: str, query: str) -> str:
    """``uri`` carrying ``query`` (already encoded), e.g. a viewer's token for native players."""
    if not query:
        return uri
    return uri + ("&" if "?" in uri else "?") + query


def master_playlist(p: Presentation, options: Options, *, base: str = "", query: str = "") -> str:
    """The HLS multivariant playlist for ``options.format``; ``query`` goes on every child URI."""
    fmt = options.format or Format.HLS_TS
    cmaf = fmt is Format.HLS_CMAF
    bandwidths = p.cmaf_bandwidth if cmaf else p.ts_bandwidth
    variants: list[hls.Variant] = []
    media: list[hls.AudioRendition] = []
    group = "audio" if cmaf and p.audio else None
    if p.audio and cmaf:
        media.append(
            hls.AudioRendition(
                group_id="audio",
                name=hls.language_tag(p.audio.track.language) or "audio",
                uri=_with_query(base + urls.media_uri(p.audio.id, "audio", options), query),
                language=hls.language_tag(p.audio.track.language),
                channels=p.audio.track.channels,
            )
        )
    audio_bw = bandwidths["audio", p.audio.id] if p.audio else Bandwidth(0, 0)
    for r in p.video:
        bw = bandwidths["video", r.id]
        codecs = [r.track.codec_string]
        if p.audio:
            codecs.append(p.audio.track.codec_string)
        extra = audio_bw if cmaf else Bandwidth(0, 0)
        variants.append(
            hls.Variant(
                uri=_with_query(base + urls.media_uri(r.id, "video", options), query),
                bandwidth=bw.peak + extra.peak,
                average_bandwidth=bw.average + extra.average,
                codecs=codecs,
                resolution=_display_size(r.track),
                frame_rate=float(r.fps),
                audio_group=group,
            )
        )
    if p.audio and (options.audio_only or not p.video):
        variants.append(
            hls.Variant(
                uri=_with_query(base + urls.media_uri(p.audio.id, "audio", options), query),
                bandwidth=audio_bw.peak,
                average_bandwidth=audio_bw.average,
                codecs=[p.audio.track.codec_string],
                audio_group=group,
            )
        )
    return hls.master_playlist(variants, media)


def _display_size(t: Track) -> tuple[int, int]:
    w, h = t.width, t.height
    num, den = t.par
    if num and den and num != den:
        w = round(w * num / den)
    return w, h


def media_playlist(
    p: Presentation,
    track: str,
    rid: int,
    options: Options,
    *,
    key: hls.Key | None,
    base: str = "",
    query: str = "",
    segment_query: str = "",
) -> str:
    """A VOD media playlist of one rendition (TS: video with muxed audio, or audio alone).

    ``query`` goes on the EXT-X-MAP URI, ``segment_query`` on every segment URI (the key URI is
    the caller's, complete).
    """
    r = p.rendition(track, rid)
    cmaf = options.format is Format.HLS_CMAF
    segments = [
        hls.Segment(
            r.seg.duration(k),
            _with_query(base + urls.fragment_uri(track, r.times[k], options), segment_query),
        )
        for k in range(len(r.seg))
    ]
    map_uri = None
    if cmaf:
        map_uri = _with_query(base + urls.fragment_uri(track, urls.INIT, options), query)
    return hls.media_playlist(segments, key=key, map_uri=map_uri)


def _timeline_values(r: Rendition) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(starts, durations) of a rendition's segments in URL_TIMESCALE units."""
    t = r.times
    return t[:-1], tuple(b - a for a, b in itertools.pairwise(t))


def _shared_times(renditions: Sequence[Rendition]) -> bool:
    return len({r.times for r in renditions}) == 1


def _sar(track: Track) -> str:
    num, den = track.par
    g = math.gcd(num, den) or 1
    return f"{num // g}:{den // g}"


DASH_PROFILES = {
    Format.DASH_CSF: (dash.LIVE_PROFILE,),
    Format.DASH_CMAF: (dash.CMAF_PROFILE, dash.LIVE_PROFILE),
}


def dash_manifest(p: Presentation, options: Options, *, base: str = "") -> str:
    """A static MPD: one video Adaptation Set with every rendition, one audio set."""
    fmt = options.format
    assert fmt in DASH_PROFILES
    sets: list[dash.AdaptationSet] = []
    if p.video:
        shared = _shared_times(p.video)
        reps = []
        for r in p.video:
            starts, durations = _timeline_values(r)
            reps.append(
                dash.Representation(
                    id=str(r.id),
                    bandwidth=p.cmaf_bandwidth["video", r.id].peak,
                    codecs=r.track.codec_string,
                    width=r.track.width,
                    height=r.track.height,
                    frame_rate=r.fps,
                    sar=_sar(r.track),
                    timeline=None
                    if shared
                    else dash.Timeline(urls.URL_TIMESCALE, starts, durations),
                )
            )
        init, media = urls.dash_templates("video", options)
        starts, durations = _timeline_values(p.video[0])
        sets.append(
            dash.AdaptationSet(
                content_type="video",
                representations=tuple(reps),
                media=base + media,
                initialization=base + init,
                timeline=dash.Timeline(urls.URL_TIMESCALE, starts, durations) if shared else None,
                segment_alignment=shared,
                # stss marks IDR pictures for AVC (ISO/IEC 14496-15), and every segment starts on
                # one: SAP type 1.
                start_with_sap=True,
            )
        )
    if p.audio:
        a = p.audio
        starts, durations = _timeline_values(a)
        init, media = urls.dash_templates("audio", options)
        sets.append(
            dash.AdaptationSet(
                content_type="audio",
                representations=(
                    dash.Representation(
                        id=str(a.id),
                        bandwidth=p.cmaf_bandwidth["audio", a.id].peak,
                        codecs=a.track.codec_string,
                        sample_rate=a.track.sample_rate,
                        channels=a.track.channels,
                    ),
                ),
                media=base + media,
                initialization=base + init,
                timeline=dash.Timeline(urls.URL_TIMESCALE, starts, durations),
                lang=hls.language_tag(a.track.language),
                segment_alignment=True,
                start_with_sap=True,
                role="main",
            )
        )
    return dash.mpd(
        sets,
        duration=p.duration,
        min_buffer_time=max(Fraction(2), p.target),
        profiles=DASH_PROFILES[fmt],
    )


def _avc(track: Track) -> AvcConfig:
    if not isinstance(track.codec, AvcConfig):
        raise MediaError(f"track {track.track_id} is not H.264")
    return track.codec


class UnsupportedError(ValueError):
    """The asset cannot be expressed in the requested protocol (HTTP 409 with the reason)."""


def smooth_manifest(p: Presentation) -> str:
    """The Smooth Streaming client manifest (MS-SSTR): one video and one audio StreamIndex."""
    streams: list[smooth.Stream] = []
    if p.video:
        if not _shared_times(p.video):
            # A StreamIndex has one chunk timeline for all its QualityLevels.
            raise UnsupportedError(
                "Smooth Streaming needs every video rendition cut at the same times, and this "
                "asset's keyframes are not aligned across renditions"
            )
        starts, durations = _timeline_values(p.video[0])
        levels = tuple(
            smooth.VideoLevel(
                bitrate=r.id,
                width=r.track.width,
                height=r.track.height,
                codec_private_data=smooth.avc_codec_private_data(_avc(r.track)),
            )
            for r in p.video
        )
        streams.append(smooth.Stream("video", levels, starts, durations))
    if p.audio:
        a = p.audio
        assert isinstance(a.track.codec, AacConfig)
        starts, durations = _timeline_values(a)
        level = smooth.AudioLevel(
            bitrate=a.id,
            sampling_rate=a.track.sample_rate,
            channels=a.track.channels,
            codec_private_data=smooth.aac_codec_private_data(a.track.codec),
            fourcc=smooth.aac_fourcc(a.track.codec),
        )
        streams.append(
            smooth.Stream(
                "audio", (level,), starts, durations, language=hls.language_tag(a.track.language)
            )
        )
    duration = round(p.duration * urls.URL_TIMESCALE)
    # No `r`: dash.js and ExoPlayer read it as a count, Shaka as DASH repeats; t+d is unambiguous.
    return smooth.manifest(streams, duration=duration)


# ---------------------------------------------------------------------------------------------
# Segments


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """One addressable segment: ``index`` is -1 (urls.INIT) for an initialization segment."""

    format: Format | None  # None: Smooth Streaming
    track: str
    rendition: int
    index: int

    @property
    def sequence(self) -> int:
        """The media sequence number (EXT-X-MEDIA-SEQUENCE starts at 0)."""
        return self.index


def resolve(p: Presentation, path: urls.FragmentPath) -> SegmentRef:
    """Map a fragment URL to a segment, or raise NotFoundError."""
    fmt = path.options.format
    r = p.rendition(path.track, path.rendition)
    if path.time == urls.INIT:
        if fmt is None or fmt is Format.HLS_TS:
            raise NotFoundError("MPEG-TS and Smooth Streaming have no initialization segment")
        return SegmentRef(fmt, path.track, r.id, urls.INIT)
    k = r.by_time.get(path.time)
    if k is None:
        raise NotFoundError(f"no {path.track} fragment at time {path.time}")
    return SegmentRef(fmt, path.track, r.id, k)


@dataclass(frozen=True, slots=True)
class Span:
    file: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """Byte ranges to read, and where each run's samples sit in them."""

    spans: tuple[Span, ...]
    runs: tuple[tuple[Track, int, int, tuple[tuple[int, int, int], ...]], ...]
    # per run: track, start, stop, per sample (span index, offset in span, size)


def _runs(p: Presentation, ref: SegmentRef) -> list[tuple[int, Track, int, int]]:
    """(file, track, start, stop) of what segment ``ref`` contains."""
    r = p.rendition(ref.track, ref.rendition)
    if ref.index == urls.INIT:
        return []
    out = [(r.file, r.track, *r.seg.bounds(ref.index))]
    if ref.format is Format.HLS_TS and ref.track == "video" and p.audio is not None:
        aseg = p.muxed_audio[r.id]
        out.append((p.audio.file, p.audio.track, *aseg.bounds(ref.index)))
    return out


def plan_reads(p: Presentation, ref: SegmentRef) -> ReadPlan:
    items: list[tuple[int, int, int, int, int]] = []  # file, offset, size, run, sample
    runs = _runs(p, ref)
    for n, (file, track, start, stop) in enumerate(runs):
        s = track.samples
        for i in range(start, stop):
            items.append((file, s.offset[i], s.size[i], n, i - start))
    items.sort()
    spans: list[Span] = []
    where: list[list[tuple[int, int, int]]] = [
        [(0, 0, 0)] * (stop - start) for _, _, start, stop in runs
    ]
    cur_file, cur_start, cur_end = -1, 0, 0
    for file, off, size, n, j in items:
        if file != cur_file or off > cur_end + READ_GAP:
            if cur_file >= 0:
                spans.append(Span(cur_file, cur_start, cur_end - cur_start))
            cur_file, cur_start, cur_end = file, off, off + size
        else:
            cur_end = max(cur_end, off + size)
        where[n][j] = (len(spans), off - cur_start, size)
    if cur_file >= 0:
        spans.append(Span(cur_file, cur_start, cur_end - cur_start))
    return ReadPlan(
        tuple(spans),
        tuple((t, a, b, tuple(w)) for (_, t, a, b), w in zip(runs, where, strict=True)),
    )


def build_segment(
    p: Presentation, ref: SegmentRef, plan: ReadPlan, chunks: Sequence[bytes]
) -> bytes:
    """Mux a clear segment from the bytes of ``plan.spans`` (same order)."""
    r = p.rendition(ref.track, ref.rendition)
    if ref.index == urls.INIT:
        return fmp4.init_segment(r.track, r.edit)
    if len(chunks) != len(plan.spans):
        raise ValueError("one chunk per planned span is required")
    views = [memoryview(c) for c in chunks]
    for span, view in zip(plan.spans, views, strict=True):
        if len(view) < span.size:
            raise MediaError("source file is shorter than its index says")
    runs = [
        Run(track, start, stop, [views[si][o : o + n] for si, o, n in where])
        for track, start, stop, where in plan.runs
    ]
    if ref.format is None:
        return fmp4.smooth_fragment(
            runs[0],
            sequence=ref.index + 1,
            time=r.times[ref.index],
            track_id=1 if r.kind is Kind.VIDEO else 2,
        )
    if ref.format is not Format.HLS_TS:  # HLS fMP4 and DASH share the CMAF segments
        return fmp4.media_segment(runs[0], sequence=ref.index + 1, edit=r.edit)
    if ref.track == "video":
        audio = runs[1] if len(runs) > 1 and len(runs[1]) else None
        return mpegts.mux_segment(runs[0], audio, sequence=ref.index)
    return mpegts.mux_segment(None, runs[0], sequence=ref.index)


Reader = Callable[[Span], bytes]


def segment_bytes(p: Presentation, ref: SegmentRef, read: Reader) -> bytes:
    """Plan, read through ``read`` and build: for tools and tests that hold files in memory."""
    plan = plan_reads(p, ref)
    return build_segment(p, ref, plan, [read(s) for s in plan.spans])
