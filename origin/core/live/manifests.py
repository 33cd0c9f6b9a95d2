"""Live manifests from a :class:`ChannelView`: HLS master and sliding-window media playlists,
dynamic DASH MPDs and live Smooth manifests, through the VOD adapters' shared rules
(:mod:`origin.core.manifests`) and the pure builders of :mod:`origin.core.manifest`.

URLs are the VOD grammar's: a segment's URL carries its channel time, so it, its sequence
number and (with the sequence-number IV) its encryption stay the same while the window slides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from fractions import Fraction

from origin.core import urls
from origin.core.errors import NotYetAvailable
from origin.core.live.model import ChannelView, LiveRendition, LiveSegment
from origin.core.live.segments import muxed_audio, rendition
from origin.core.manifest import dash, hls, smooth
from origin.core.manifests import (
    DASH_PROFILES,
    Level,
    adaptation_set,
    hls_master,
    smooth_audio,
    smooth_video,
    with_query,
)
from origin.core.presentation import Bandwidth
from origin.core.track import Kind
from origin.core.urls import Format, Options

__all__ = ["available_at", "dash_manifest", "master_playlist", "media_playlist", "smooth_manifest"]

# dash.js and Shaka re-request a dynamic MPD every minimumUpdatePeriod; half a segment learns a
# new segment at most half a segment after it is complete (the MPD's Cache-Control is as short).
# suggestedPresentationDelay: two segments behind the live edge (dash.js and Shaka aim there).
# With the newest segment up to one segment old when a player looks, that keeps players within
# three segments of the newest media; less than two leaves no room for a segment in flight.
UPDATE_PERIOD_SEGMENTS = Fraction(1, 2)
PRESENTATION_DELAY_SEGMENTS = 2
SMOOTH_LOOK_AHEAD = 1  # one next fragment per tfrf: a fragment's bytes never change over time


def _level(r: LiveRendition, *, ts: bool) -> Level:
    return Level(r.id, r.track, r.fps, r.bandwidth(ts=ts))


def master_playlist(view: ChannelView, options: Options, *, base: str = "", query: str = "") -> str:
    """The HLS multivariant playlist, as VOD; bandwidths measured over the window.

    TS video variants carry their muxed audio: the audio's TS figures are added to theirs (each
    an upper bound of its segments alone, so the sum bounds the muxed segments too).
    """
    ts = options.format is not Format.HLS_CMAF
    audio = _level(view.audio, ts=ts) if view.audio else None
    video = [_level(r, ts=ts) for r in view.video]
    if ts and audio:
        extra = audio.bandwidth
        video = [
            Level(
                v.id,
                v.track,
                v.fps,
                Bandwidth(v.bandwidth.peak + extra.peak, v.bandwidth.average + extra.average),
            )
            for v in video
        ]
    return hls_master(video, audio, options, base=base, query=query)


def _listed(view: ChannelView, r: LiveRendition, ts: bool) -> tuple[LiveSegment, ...]:
    """The segments a playlist lists: all, except the tail of TS video segments whose muxed
    audio has not arrived yet (:func:`origin.core.live.segments.muxed_audio`)."""
    if not (ts and r.kind is Kind.VIDEO):
        return r.segments
    for k, seg in enumerate(r.segments):
        try:
            muxed_audio(view, seg.number)
        except NotYetAvailable:
            return r.segments[:k]  # the rule only holds back numbers past the audio's newest
    return r.segments


def media_playlist(
    view: ChannelView,
    track: str,
    rid: int,
    options: Options,
    *,
    key_uri: str | None = None,
    iv: bytes | None = None,
    base: str = "",
    query: str = "",
    segment_query: str = "",
    signature: str = "",
    rotated_key_uri: Callable[[int], str] | None = None,
) -> str:
    """A live media playlist of one rendition's window (TS: video with muxed audio).

    EXT-X-MEDIA-SEQUENCE is the first listed segment's ``number``; DISCONTINUITY-SEQUENCE the
    discontinuities before it (its ``epoch``, less its own tag, which it keeps); every segment
    carries its PROGRAM-DATE-TIME. ``key_uri``, ``iv``, the queries and ``signature`` as for VOD.
    ``rotated_key_uri``: key rotation, the key URI of each segment number (an EXT-X-KEY where
    it changes) instead of one ``key_uri``.
    """
    r = rendition(view, track, rid)
    segment_query = "&".join(q for q in (segment_query, signature) if q)
    cmaf = options.format is Format.HLS_CMAF
    listed = _listed(view, r, not cmaf)
    if not listed:
        raise NotYetAvailable(f"channel {view.name}: no {track} segment complete yet")
    segments = [
        hls.Segment(
            seg.seconds,
            with_query(base + urls.fragment_uri(track, seg.time, options), segment_query),
            program_date_time=seg.wallclock,
            discontinuity=seg.discontinuity,
            key=(
                hls.Key(with_query(rotated_key_uri(seg.number), query), iv)
                if rotated_key_uri is not None
                else None
            ),
        )
        for seg in listed
    ]
    first = listed[0]
    map_uri = None
    if cmaf:
        map_query = "&".join(q for q in (query, signature) if q)
        map_uri = with_query(base + urls.fragment_uri(track, urls.INIT, options), map_query)
    key = hls.Key(with_query(key_uri, query), iv) if key_uri is not None else None
    return hls.live_media_playlist(
        segments,
        media_sequence=first.number,
        target=view.target,
        discontinuity_sequence=first.epoch - (1 if first.discontinuity else 0),
        ended=view.ended,
        key=key,
        map_uri=map_uri,
    )


def _timeline(segments: tuple[LiveSegment, ...]) -> dash.Timeline:
    return dash.Timeline(
        urls.URL_TIMESCALE,
        tuple(s.time for s in segments),
        tuple(s.duration for s in segments),
    )


def _end(view: ChannelView) -> int:
    return max(r.segments[-1].end for r in view.renditions())


def available_at(view: ChannelView, now: datetime) -> ChannelView | None:
    """The view as DASH players may see it at ``now``: a segment is available from
    availabilityStartTime + its end (ISO/IEC 23009-1 §5.3.9.5.3), so one an encoder pushed
    ahead of the wall clock (a burst, a backlog) waits for its time. None: nothing yet."""
    horizon = (now - view.availability_start) / timedelta(microseconds=1) * 10
    kept = []
    for r in view.renditions():
        segs = r.segments
        k = len(segs)
        while k and segs[k - 1].end > horizon:
            k -= 1
        kept.append(
            r if k == len(segs) else (dataclasses.replace(r, segments=segs[:k]) if k else None)
        )
    video = tuple(r for r in kept[: len(view.video)] if r is not None)
    audio = kept[-1] if view.audio is not None else None
    if not video and audio is None:
        return None
    return dataclasses.replace(view, video=video, audio=audio)


def next_available(view: ChannelView, now: datetime) -> datetime | None:
    """When :func:`available_at` next shows more of ``view`` than at ``now`` (the next pushed
    segment's availability time, floored to the microsecond so never late); None: never (every
    segment pushed is available)."""
    horizon = (now - view.availability_start) / timedelta(microseconds=1) * 10
    ends = [s.end for r in view.renditions() for s in r.segments if s.end > horizon]
    if not ends:
        return None
    return view.availability_start + timedelta(microseconds=min(ends) // 10)


def dash_manifest(
    view: ChannelView,
    options: Options,
    *,
    base: str = "",
    now: datetime,
    utc_timing_url: str,
    signature: str = "",
) -> str:
    """A dynamic MPD of the window: one Period from channel time 0 (S@t are channel times),
    UTCTiming http-iso at ``utc_timing_url``; ended: the builder's end of a live event.
    ``signature``: signed segment URLs, on the segment templates."""
    fmt = options.format
    if fmt not in DASH_PROFILES:
        raise ValueError(f"{fmt} is not a DASH format")
    sets = [
        adaptation_set(
            [(_level(r, ts=False), _timeline(r.segments)) for r in rs], options, base, signature
        )
        for rs in (view.video, (view.audio,) if view.audio else ())
        if rs
    ]
    d = view.segment_duration
    live = dash.Live(
        availability_start=view.availability_start,
        publish_time=now,
        minimum_update_period=d * UPDATE_PERIOD_SEGMENTS,
        time_shift_buffer_depth=view.window,
        suggested_presentation_delay=d * PRESENTATION_DELAY_SEGMENTS,
        utc_timing=(dash.UtcTiming(utc_timing_url, dash.UTC_HTTP_ISO),),
        ended=view.ended,
    )
    return dash.mpd(
        sets,
        duration=Fraction(_end(view), urls.URL_TIMESCALE) if view.ended else None,
        min_buffer_time=max(Fraction(2), d),
        profiles=DASH_PROFILES[fmt],
        live=live,
    )


def _smooth_chunks(view: ChannelView, rs: tuple[LiveRendition, ...]) -> list[tuple[int, int]]:
    """(t, d) of the fragments every level of a StreamIndex can serve now: on air, each
    rendition's newest is held back until its successor exists (its tfrf names it)."""
    common: set[tuple[int, int]] | None = None
    for r in rs:
        segs = r.segments if view.ended else r.segments[:-1]
        pairs = {(s.time, s.duration) for s in segs}
        common = pairs if common is None else common & pairs
    return sorted(common or ())


def smooth_manifest(view: ChannelView, *, signature: str = "") -> str:
    """The live Smooth manifest: IsLive, DVRWindowLength (the window), LookAheadFragmentCount 1;
    every fragment but each rendition's newest (held back, see above). Ended: on-demand with
    all fragments. NotYetAvailable while a stream has no fragment to list. ``signature``:
    signed segment URLs, on the fragment URL templates."""
    streams: list[smooth.Stream] = []
    chunks: list[list[tuple[int, int]]] = []
    for rs in (view.video, (view.audio,) if view.audio else ()):
        if not rs:
            continue
        c = _smooth_chunks(view, rs)
        if not c:
            raise NotYetAvailable(f"channel {view.name}: no Smooth fragment to list yet")
        starts, durations = tuple(t for t, _ in c), tuple(d for _, d in c)
        if rs[0].kind is Kind.VIDEO:
            streams.append(
                smooth_video([r.track for r in rs], [r.id for r in rs], starts, durations)
            )
        else:
            streams.append(smooth_audio(rs[0].track, rs[0].id, starts, durations))
        chunks.append(c)
    if signature:
        streams = [
            dataclasses.replace(s, url=with_query(s.url_template, signature)) for s in streams
        ]
    span = max(c[-1][0] + c[-1][1] for c in chunks) - min(c[0][0] for c in chunks)
    live = smooth.Live(
        dvr_window=round(view.window * urls.URL_TIMESCALE),
        look_ahead=SMOOTH_LOOK_AHEAD,
        ended=view.ended,
    )
    return smooth.manifest(streams, duration=span, live=live)
