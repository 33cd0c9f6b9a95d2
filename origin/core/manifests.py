"""Manifest adapters: a :class:`Presentation` described to the HLS, DASH and Smooth builders
(:mod:`origin.core.manifest`), with this origin's URLs. Manifests never see media bytes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

from origin.core import urls
from origin.core.encryption import Scheme, hls_key
from origin.core.errors import MediaError
from origin.core.manifest import dash, hls, smooth
from origin.core.manifest.common import language_tag
from origin.core.mp4.codecs import aac_codec_private_data, aac_fourcc, avc_codec_private_data
from origin.core.presentation import Bandwidth, Presentation, Rendition
from origin.core.track import AacConfig, AvcConfig, Kind, Track
from origin.core.urls import Format, Options


def with_query(uri: str, query: str) -> str:
    """``uri`` carrying ``query`` (already encoded), e.g. a viewer's token for native players."""
    if not query:
        return uri
    return uri + ("&" if "?" in uri else "?") + query


@dataclass(frozen=True, slots=True)
class Level:
    """One rendition as the manifests describe it, VOD or live: URL id, codec template, frame
    rate and the bandwidth measured for the requested format (TS or CMAF)."""

    id: int
    track: Track
    fps: Fraction
    bandwidth: Bandwidth

    @property
    def kind(self) -> Kind:
        return self.track.kind


def master_playlist(
    p: Presentation,
    options: Options,
    *,
    base: str = "",
    query: str = "",
    session_keys: Sequence[hls.Key] = (),
    common: bool = False,
) -> str:
    """The HLS multivariant playlist for ``options.format``; ``query`` goes on every child URI;
    ``session_keys``: EXT-X-SESSION-KEY (the media playlists' keys, complete URIs); ``common``:
    the segments are under Common Encryption (their bandwidths count the aux boxes)."""
    cmaf = options.format is Format.HLS_CMAF
    bandwidths = p.ts_bandwidth
    if cmaf:
        bandwidths = p.cenc_bandwidth if common else p.cmaf_bandwidth

    def level(r: Rendition) -> Level:
        return Level(r.id, r.track, r.fps, bandwidths[r.kind.value, r.id])

    audio = level(p.audio) if p.audio else None
    keys = [replace(k, uri=with_query(k.uri, query)) for k in session_keys]
    return hls_master(
        [level(r) for r in p.video], audio, options, base=base, query=query, session_keys=keys
    )


def hls_master(
    video: Sequence[Level],
    audio: Level | None,
    options: Options,
    *,
    base: str,
    query: str,
    session_keys: Sequence[hls.Key] = (),
) -> str:
    """The one multivariant playlist rule, VOD and live: TS variants carry their muxed audio in
    their own bandwidth, CMAF variants add the audio group's; an audio-only variant with
    ``audio-only`` (the default) or when there is no video."""
    cmaf = options.format is Format.HLS_CMAF
    variants: list[hls.Variant] = []
    media: list[hls.AudioRendition] = []
    group = "audio" if cmaf and audio else None
    if audio and cmaf:
        media.append(
            hls.AudioRendition(
                group_id="audio",
                name=language_tag(audio.track.language) or "audio",
                uri=with_query(base + urls.media_uri(audio.id, "audio", options), query),
                language=language_tag(audio.track.language),
                channels=audio.track.channels,
            )
        )
    audio_bw = audio.bandwidth if audio else Bandwidth(0, 0)
    for r in video:
        bw = r.bandwidth
        codecs = [r.track.codec_string]
        if audio:
            codecs.append(audio.track.codec_string)
        extra = audio_bw if cmaf else Bandwidth(0, 0)
        variants.append(
            hls.Variant(
                uri=with_query(base + urls.media_uri(r.id, "video", options), query),
                bandwidth=bw.peak + extra.peak,
                average_bandwidth=bw.average + extra.average,
                codecs=codecs,
                resolution=_display_size(r.track),
                frame_rate=float(r.fps),
                audio_group=group,
            )
        )
    if audio and (options.audio_only or not video):
        variants.append(
            hls.Variant(
                uri=with_query(base + urls.media_uri(audio.id, "audio", options), query),
                bandwidth=audio_bw.peak,
                average_bandwidth=audio_bw.average,
                codecs=[audio.track.codec_string],
                audio_group=group,
            )
        )
    return hls.master_playlist(variants, media, session_keys=session_keys)


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
    key_uri: str | None = None,
    iv: bytes | None = None,
    scheme: Scheme = Scheme.AES_128,
    extra_keys: Sequence[hls.Key] = (),
    base: str = "",
    query: str = "",
    segment_query: str = "",
    signature: str = "",
) -> str:
    """A VOD media playlist of one rendition (TS: video with muxed audio, or audio alone).

    With ``key_uri`` (the key service's, complete) the segments are encrypted with ``scheme``:
    an EXT-X-KEY (:func:`origin.core.encryption.hls_key`) with ``iv`` (AES-128: the asset's
    fixed IV; None: the media sequence number, left implicit). ``query`` goes on the EXT-X-MAP
    and key URIs, ``segment_query`` on every segment URI; ``signature`` (a signed segment URL
    parameter) on the segment and EXT-X-MAP URIs.
    """
    r = p.rendition(track, rid)
    segment_query = "&".join(q for q in (segment_query, signature) if q)
    cmaf = options.format is Format.HLS_CMAF
    segments = [
        hls.Segment(
            r.seg.duration(k),
            with_query(base + urls.fragment_uri(track, r.times[k], options), segment_query),
        )
        for k in range(len(r.seg))
    ]
    map_uri = None
    if cmaf:
        map_query = "&".join(q for q in (query, signature) if q)
        map_uri = with_query(base + urls.fragment_uri(track, urls.INIT, options), map_query)
    keys: list[hls.Key] = []
    if key_uri is not None:
        keys.append(hls_key(scheme, with_query(key_uri, query), iv))
    return hls.media_playlist(segments, key=[*keys, *extra_keys], map_uri=map_uri)


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


def dash_manifest(
    p: Presentation,
    options: Options,
    *,
    base: str = "",
    signature: str = "",
    protection: Sequence[dash.ContentProtection] = (),
) -> str:
    """A static MPD: one video Adaptation Set with every rendition, one audio set;
    ``signature`` (a signed segment URL parameter) on its segment templates; ``protection``:
    the ContentProtection descriptors of every set (:mod:`origin.core.drm`)."""
    fmt = options.format
    assert fmt in DASH_PROFILES

    bandwidths = p.cenc_bandwidth if protection else p.cmaf_bandwidth

    def described(r: Rendition) -> tuple[Level, dash.Timeline]:
        level = Level(r.id, r.track, r.fps, bandwidths[r.kind.value, r.id])
        return level, dash.Timeline(urls.URL_TIMESCALE, *_timeline_values(r))

    sets = [
        replace(
            adaptation_set([described(r) for r in renditions], options, base, signature),
            content_protection=tuple(protection),
        )
        for renditions in (p.video, (p.audio,) if p.audio else ())
        if renditions
    ]
    return dash.mpd(
        sets,
        duration=p.duration,
        min_buffer_time=max(Fraction(2), p.target),
        profiles=DASH_PROFILES[fmt],
    )


def adaptation_set(
    levels: Sequence[tuple[Level, dash.Timeline]], options: Options, base: str, query: str = ""
) -> dash.AdaptationSet:
    """The set of one kind's levels, VOD or live: one shared timeline when they are cut alike,
    else one per Representation."""
    first = levels[0][0]
    kind = first.kind
    shared = len({tl for _, tl in levels}) == 1
    reps = tuple(_representation(lv, None if shared else tl) for lv, tl in levels)
    init, media = urls.dash_templates(kind.value, options)
    audio = kind is Kind.AUDIO
    return dash.AdaptationSet(
        content_type=kind.value,
        representations=reps,
        media=with_query(base + media, query),
        initialization=with_query(base + init, query),
        timeline=levels[0][1] if shared else None,
        lang=language_tag(first.track.language) if audio else None,
        segment_alignment=shared,
        # stss marks IDR pictures for AVC (ISO/IEC 14496-15), and every segment starts on one:
        # SAP type 1.
        start_with_sap=True,
        role="main" if audio else None,
    )


def _representation(lv: Level, timeline: dash.Timeline | None) -> dash.Representation:
    """Video fields for video, audio fields for audio; the others keep their defaults."""
    t = lv.track
    video = lv.kind is Kind.VIDEO
    return dash.Representation(
        id=str(lv.id),
        bandwidth=lv.bandwidth.peak,
        codecs=t.codec_string,
        width=t.width if video else 0,
        height=t.height if video else 0,
        frame_rate=lv.fps if video else None,
        sar=_sar(t) if video else None,
        sample_rate=0 if video else t.sample_rate,
        channels=0 if video else t.channels,
        timeline=timeline,
    )


def _avc(track: Track) -> AvcConfig:
    if not isinstance(track.codec, AvcConfig):
        raise MediaError(f"track {track.track_id} is not H.264")
    return track.codec


class UnsupportedError(ValueError):
    """The asset cannot be expressed in the requested protocol (HTTP 409 with the reason)."""


_SMOOTH = Options()


def smooth_manifest(
    p: Presentation,
    *,
    signature: str = "",
    options: Options = _SMOOTH,
    protection: tuple[str, str] | None = None,
) -> str:
    """The Smooth Streaming client manifest (MS-SSTR): one video and one audio StreamIndex;
    ``signature`` (a signed segment URL parameter) on their fragment URL templates, with
    ``options`` (an explicit ``encryption=``); ``protection``: its ``<Protection>`` header."""
    if p.video and not _shared_times(p.video):
        raise UnsupportedError(
            "Smooth Streaming needs every video rendition cut at the same times, and this "
            "asset's keyframes are not aligned across renditions"
        )
    streams: list[smooth.Stream] = []
    if p.video:
        streams.append(
            smooth_video(
                [r.track for r in p.video], [r.id for r in p.video], *_timeline_values(p.video[0])
            )
        )
    if p.audio:
        streams.append(smooth_audio(p.audio.track, p.audio.id, *_timeline_values(p.audio)))
    if options.encryption is not None:
        suffix = options.suffix()
        streams = [
            replace(s, url=s.url_template.replace("})", "}," + suffix + ")")) for s in streams
        ]
    if signature:
        streams = [replace(s, url=with_query(s.url_template, signature)) for s in streams]
    duration = round(p.duration * urls.URL_TIMESCALE)
    # No `r`: dash.js and ExoPlayer read it as a count, Shaka as DASH repeats; t+d is unambiguous.
    return smooth.manifest(streams, duration=duration, protection=protection)


def smooth_video(
    tracks: Sequence[Track],
    ids: Sequence[int],
    starts: tuple[int, ...],
    durations: tuple[int, ...],
) -> smooth.Stream:
    """The video StreamIndex: one QualityLevel per rendition (a StreamIndex has one chunk
    timeline for all its QualityLevels)."""
    levels = tuple(
        smooth.VideoLevel(
            bitrate=rid,
            width=t.width,
            height=t.height,
            codec_private_data=avc_codec_private_data(_avc(t)),
        )
        for t, rid in zip(tracks, ids, strict=True)
    )
    return smooth.Stream("video", levels, starts, durations)


def smooth_audio(
    track: Track, rid: int, starts: tuple[int, ...], durations: tuple[int, ...]
) -> smooth.Stream:
    """The audio StreamIndex of one AAC rendition."""
    if not isinstance(track.codec, AacConfig):
        raise MediaError(f"track {track.track_id} is not AAC")
    level = smooth.AudioLevel(
        bitrate=rid,
        sampling_rate=track.sample_rate,
        channels=track.channels,
        codec_private_data=aac_codec_private_data(track.codec),
        fourcc=aac_fourcc(track.codec),
    )
    return smooth.Stream(
        "audio", (level,), starts, durations, language=language_tag(track.language)
    )
