"""Live segments from a :class:`ChannelView`: init segments, HLS TS, CMAF (HLS fMP4 and DASH)
and Smooth fragments, muxed exactly as VOD by :mod:`origin.core.mux`.

A published :class:`LiveSegment` never changes, and neither may the bytes served for it: a CDN
caches them for long. Two rules keep it so:

* HLS TS video segments carry the audio segment of the same ``number`` (the same grid interval).
  While the audio stream is connected and has not yet reached that number, the video segment is
  :class:`NotYetAvailable` (and not listed, :mod:`origin.core.live.manifests`): muxing it now
  without its audio would change its bytes once the audio arrives. Audio that is gone (slid out
  of its window, a gap, or its stream not connected) is left out.
* A live Smooth fragment carries a ``tfrf`` naming the next fragment (dash.js needs one in every
  fragment, look-ahead 1), so it is served only once its successor exists; the newest fragment
  is :class:`NotYetAvailable` until then. The last fragment of an ended channel gets an empty
  ``tfrf`` (nothing follows).

Lookups are by URL time (100 ns): later than the newest segment start is :class:`NotYetAvailable`
(404, max-age 1), earlier than the window's first is :class:`SlidOut` (410), a time inside the
window naming no segment start is a plain :class:`NotFoundError`.
"""

from __future__ import annotations

from bisect import bisect_left
from operator import attrgetter

from origin.core import urls
from origin.core.errors import NotFoundError, NotYetAvailable, SlidOut
from origin.core.live.model import ChannelView, LiveRendition, LiveSegment
from origin.core.mux import Run, fmp4, mpegts, smooth
from origin.core.plan import SegmentRef
from origin.core.track import Kind
from origin.core.urls import Format

__all__ = [
    "NotYetAvailable",
    "SlidOut",
    "find_segment",
    "init_segment",
    "media_segment",
    "muxed_audio",
    "rendition",
    "segment_ref",
]

_TIME = attrgetter("time")
_NUMBER = attrgetter("number")


def rendition(view: ChannelView, track: str, rid: int) -> LiveRendition:
    r = view.rendition(track, rid)
    if r is None:
        raise NotFoundError(f"channel {view.name} has no {track} rendition {rid}")
    return r


def find_segment(r: LiveRendition, time: int) -> int:
    """The index in ``r.segments`` of the segment starting at URL time ``time``."""
    segs = r.segments
    if time > segs[-1].time:
        raise NotYetAvailable(f"no {r.kind.value} segment at time {time} yet")
    if time < segs[0].time:
        raise SlidOut(f"the {r.kind.value} segment at time {time} has left the window")
    k = bisect_left(segs, time, key=_TIME)
    if segs[k].time != time:
        raise NotFoundError(f"no {r.kind.value} segment starts at time {time}")
    return k


def muxed_audio(view: ChannelView, number: int) -> LiveSegment | None:
    """The audio segment an HLS TS video segment ``number`` carries (None: without audio).

    Raises NotYetAvailable while the audio stream is connected and has not reached ``number``.
    """
    a = view.audio
    if a is None:
        return None
    if a.connected and number > a.segments[-1].number:
        raise NotYetAvailable(f"segment {number} waits for its audio")
    k = bisect_left(a.segments, number, key=_NUMBER)
    if k < len(a.segments) and a.segments[k].number == number:
        return a.segments[k]
    return None


def _run(seg: LiveSegment) -> Run:
    """The muxers' input: the segment's samples as slices of one view of its payload."""
    s = seg.track.samples
    data = memoryview(seg.payload)
    return Run(
        seg.track, 0, len(s), [data[o : o + n] for o, n in zip(s.offset, s.size, strict=True)]
    )


def segment_ref(
    view: ChannelView, fmt: Format | None, track: str, rid: int, time: int
) -> SegmentRef:
    """What :func:`origin.core.encryption.encrypt_segment` needs: ``index`` (and so the
    sequence-number IV) is the segment's channel-wide ``number``; urls.INIT for an init."""
    r = rendition(view, track, rid)
    if time == urls.INIT:
        return SegmentRef(fmt, track, r.id, urls.INIT)
    return SegmentRef(fmt, track, r.id, r.segments[find_segment(r, time)].number)


def init_segment(view: ChannelView, track: str, rid: int) -> bytes:
    """The CMAF header (HLS EXT-X-MAP, DASH init) of a rendition; its edit is fixed for the
    channel's life, so this never changes under a playing client."""
    r = rendition(view, track, rid)
    return fmp4.init_segment(r.track, r.edit)


def media_segment(view: ChannelView, fmt: Format | None, track: str, rid: int, time: int) -> bytes:
    """The clear segment of ``track``/``rid`` starting at URL time ``time`` in ``fmt`` (None:
    Smooth Streaming)."""
    r = rendition(view, track, rid)
    if time == urls.INIT:
        if fmt is None or fmt is Format.HLS_TS:
            raise NotFoundError("MPEG-TS and Smooth Streaming have no initialization segment")
        return init_segment(view, track, rid)
    k = find_segment(r, time)
    seg = r.segments[k]
    if fmt is None:
        return _smooth(view, r, k)
    if fmt is not Format.HLS_TS:  # HLS fMP4 and DASH share the CMAF segments
        return fmp4.media_segment(_run(seg), sequence=seg.number + 1, edit=r.edit)
    if r.kind is Kind.VIDEO:
        audio = muxed_audio(view, seg.number)
        return mpegts.mux_segment(
            _run(seg),
            _run(audio) if audio else None,
            sequence=seg.number,
            video_delay=r.edit.raise_by,
        )
    return mpegts.mux_segment(None, _run(seg), sequence=seg.number)


def _smooth(view: ChannelView, r: LiveRendition, k: int) -> bytes:
    seg = r.segments[k]
    if k + 1 < len(r.segments):
        nxt = r.segments[k + 1]
        look_ahead: tuple[tuple[int, int], ...] = ((nxt.time, nxt.duration),)
    elif view.ended:
        look_ahead = ()
    else:
        raise NotYetAvailable(f"fragment {seg.time} is served once its successor exists")
    return smooth.smooth_fragment(
        _run(seg),
        sequence=seg.number + 1,
        time=seg.time,
        track_id=1 if r.kind is Kind.VIDEO else 2,
        tfrf=look_ahead,
    )
