"""DASH MPDs (ISO/IEC 23009-1, DASH-IF IOP), built from a plain description of the presentation.

One Period, one ``SegmentTemplate`` with a ``SegmentTimeline`` per Adaptation Set (or per
Representation when their timelines differ), ``$RepresentationID$`` / ``$Time$`` addressing.
Written through ``xml.etree`` so every attribute is escaped; children follow the order of the
schema's sequences (DASH-MPD.xsd), which validating parsers and some players insist on.

Static (VOD) by default; with ``live`` a dynamic MPD (ISO/IEC 23009-1 §5.4, DASH-IF IOP live
services with SegmentTimeline): the timeline lists the time-shift window only, its S@t stay media
times of the one timeline that began at the Period's start, and UTCTiming lets players sync their
clocks to the origin's.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction

from origin.core.manifest.common import runs

__all__ = [
    "AUDIO_CHANNEL_SCHEME",
    "CMAF_PROFILE",
    "LIVE_PROFILE",
    "NAMESPACE",
    "UTC_HTTP_ISO",
    "UTC_HTTP_XSDATE",
    "AdaptationSet",
    "ContentProtection",
    "Live",
    "Representation",
    "Timeline",
    "UtcTiming",
    "date_time",
    "frame_rate",
    "iso_duration",
    "mpd",
]

NAMESPACE = "urn:mpeg:dash:schema:mpd:2011"
LIVE_PROFILE = "urn:mpeg:dash:profile:isoff-live:2011"
CMAF_PROFILE = "urn:mpeg:dash:profile:cmaf:2019"  # ISO/IEC 23009-1 §8.12
AUDIO_CHANNEL_SCHEME = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"
ROLE_SCHEME = "urn:mpeg:dash:role:2011"
_MIME = {"video": "video/mp4", "audio": "audio/mp4"}
# UTCTiming schemes (ISO/IEC 23009-1 §5.8.5.7) whose value is a URL answering with the time:
UTC_HTTP_ISO = "urn:mpeg:dash:utc:http-iso:2014"  # an ISO 8601 date-time in the body
UTC_HTTP_XSDATE = "urn:mpeg:dash:utc:http-xsdate:2014"  # an xs:dateTime in the body
_UTC_HTTP_SCHEMES = (UTC_HTTP_ISO, UTC_HTTP_XSDATE)


@dataclass(frozen=True, slots=True)
class Timeline:
    """Segments as start times and durations in ``timescale`` units (media time)."""

    timescale: int
    starts: tuple[int, ...]
    durations: tuple[int, ...]
    presentation_time_offset: int = 0

    def __post_init__(self) -> None:
        if self.timescale <= 0:
            raise ValueError("timescale must be positive")
        if not self.starts or len(self.starts) != len(self.durations):
            raise ValueError("a timeline needs one duration per start, and at least one")
        if min(self.durations) <= 0 or min(self.starts) < 0 or self.presentation_time_offset < 0:
            raise ValueError("segment times must be >= 0 and durations > 0")

    @property
    def end(self) -> int:
        return self.starts[-1] + self.durations[-1]


@dataclass(frozen=True, slots=True)
class Representation:
    """One Representation; video fields are left 0/None for audio and the other way round."""

    id: str
    bandwidth: int  # peak bit/s (with minBufferTime, DASH's leaky bucket)
    codecs: str  # RFC 6381
    width: int = 0
    height: int = 0
    frame_rate: Fraction | None = None
    sar: str | None = None  # e.g. "1:1"
    sample_rate: int = 0
    channels: int = 0
    timeline: Timeline | None = None  # None: the Adaptation Set's


# Namespaces of Common Encryption signalling (ISO/IEC 23001-7 §11, DASH-IF IOP 7, PlayReady).
CENC_NAMESPACE = "urn:mpeg:cenc:2013"
DASHIF_NAMESPACE = "https://dashif.org/CPS"
CLEARKEY_NAMESPACE = "http://dashif.org/guidelines/clearKey"
PLAYREADY_NAMESPACE = "urn:microsoft:playready"
MP4_PROTECTION_SCHEME = "urn:mpeg:dash:mp4protection:2011"
for _prefix, _uri in (
    ("cenc", CENC_NAMESPACE),
    ("dashif", DASHIF_NAMESPACE),
    ("clearkey", CLEARKEY_NAMESPACE),
    ("mspr", PLAYREADY_NAMESPACE),
):
    ET.register_namespace(_prefix, _uri)


@dataclass(frozen=True, slots=True)
class ContentProtection:
    """A ContentProtection descriptor: the mp4protection one (``value`` the scheme, cenc or
    cbcs, with ``default_kid``), or a DRM system's (``urn:uuid:<system id>``) with its ``pssh``
    box, its license URL (``laurl``: DASH-IF ``dashif:Laurl`` and the older ``clearkey:Laurl``)
    and PlayReady's ``mspr:pro``."""

    scheme_id_uri: str
    value: str | None = None
    default_kid: str | None = None  # a UUID, as cenc:default_KID writes it
    pssh: bytes | None = None  # the whole box, written base64 as cenc:pssh
    laurl: str | None = None
    pro: bytes | None = None  # PlayReady Header Object, base64 as mspr:pro


def _content_protection(parent: ET.Element, cp: ContentProtection) -> None:
    e = _sub(parent, "ContentProtection", schemeIdUri=cp.scheme_id_uri)
    if cp.value is not None:
        e.set("value", cp.value)
    if cp.default_kid is not None:
        e.set(f"{{{CENC_NAMESPACE}}}default_KID", cp.default_kid)
    if cp.laurl is not None:
        # DASH-IF IOP's spelling: Shaka matches ``Laurl`` exactly, dash.js either case.
        ET.SubElement(e, f"{{{DASHIF_NAMESPACE}}}Laurl").text = cp.laurl
        laurl = ET.SubElement(e, f"{{{CLEARKEY_NAMESPACE}}}Laurl", Lic_type="EME-1.0")
        laurl.text = cp.laurl
    if cp.pssh is not None:
        ET.SubElement(e, f"{{{CENC_NAMESPACE}}}pssh").text = base64.b64encode(cp.pssh).decode()
    if cp.pro is not None:
        ET.SubElement(e, f"{{{PLAYREADY_NAMESPACE}}}pro").text = base64.b64encode(cp.pro).decode()


@dataclass(frozen=True, slots=True)
class AdaptationSet:
    content_type: str  # "video" | "audio"
    representations: tuple[Representation, ...]
    media: str  # SegmentTemplate@media, with $RepresentationID$ and $Time$
    initialization: str  # SegmentTemplate@initialization, with $RepresentationID$
    timeline: Timeline | None = None  # shared by the representations that have none
    id: int | None = None  # None: its position in the Period (IOP wants ids for continuity)
    lang: str | None = None  # RFC 5646
    segment_alignment: bool = False
    start_with_sap: bool = False  # writes startWithSAP="1": every segment starts with an IDR
    role: str | None = None  # urn:mpeg:dash:role:2011 value, e.g. "main"
    mime_type: str | None = None  # default: video/mp4 or audio/mp4
    content_protection: tuple[ContentProtection, ...] = ()

    def __post_init__(self) -> None:
        if not self.representations:
            raise ValueError("an Adaptation Set needs at least one Representation")
        if "$Time$" not in self.media:
            raise ValueError("SegmentTemplate@media must address segments by $Time$")
        if self.timeline is None and any(r.timeline is None for r in self.representations):
            raise ValueError("a Representation has no timeline and its Adaptation Set neither")
        if self.mime_type is None and self.content_type not in _MIME:
            raise ValueError(f"no default mimeType for contentType {self.content_type!r}")


@dataclass(frozen=True, slots=True)
class UtcTiming:
    """One UTCTiming element: a clock source for players (DASH-IF IOP wants one per live MPD)."""

    url: str  # what the time endpoint answers at
    scheme: str = UTC_HTTP_ISO

    def __post_init__(self) -> None:
        if self.scheme not in _UTC_HTTP_SCHEMES:
            raise ValueError(f"UTCTiming scheme must be one of {_UTC_HTTP_SCHEMES}")
        if not self.url or any(c.isspace() for c in self.url):
            raise ValueError("UTCTiming needs a URL without whitespace")


@dataclass(frozen=True, slots=True)
class Live:
    """What makes an MPD dynamic. Durations in seconds, times timezone-aware (written in UTC).

    ``ended``: the encoder has stopped. The MPD then stays dynamic, drops
    ``minimumUpdatePeriod`` and gains ``mediaPresentationDuration`` (ISO/IEC 23009-1 §5.4: no
    more updates; the presentation ends there), the end of a live event the DASH-IF timing
    guidelines describe. A switch to ``type="static"`` would announce another presentation (the
    MPD's time model changes under a playing client; DASH-IF IOP issue 169) and stopped Shaka
    (shaka-player issues 2581, 3567) until its 2024 fix, while dash.js, Shaka and ExoPlayer all
    end a dynamic MPD that carries a duration and no update period.
    """

    availability_start: datetime  # the wall-clock time of the first Period's media time 0
    publish_time: datetime  # when this MPD was generated
    minimum_update_period: Fraction
    time_shift_buffer_depth: Fraction  # the DVR window
    suggested_presentation_delay: Fraction
    utc_timing: tuple[UtcTiming, ...]
    ended: bool = False

    def __post_init__(self) -> None:
        for t in (self.availability_start, self.publish_time):
            if t.utcoffset() is None:
                raise ValueError("live MPD times must be timezone-aware")
        if self.publish_time < self.availability_start:
            raise ValueError("publishTime before availabilityStartTime")
        if self.minimum_update_period < 0 or self.suggested_presentation_delay < 0:
            raise ValueError("minimumUpdatePeriod and suggestedPresentationDelay must be >= 0")
        if self.time_shift_buffer_depth <= 0:
            raise ValueError("timeShiftBufferDepth must be positive")
        if not self.utc_timing:
            raise ValueError("a live MPD needs at least one UTCTiming (DASH-IF IOP)")


def date_time(t: datetime) -> str:
    """xs:dateTime in UTC to the millisecond (truncated): ``2026-12-02T02:44:25.5Z``."""
    if t.utcoffset() is None:
        raise ValueError("a naive datetime has no defined UTC time")
    t = t.astimezone(UTC)
    out = t.strftime("%Y-%m-%dT%H:%M:%S")
    ms = t.microsecond // 1000
    if ms:
        out += f".{ms:03d}".rstrip("0")
    return out + "Z"


def iso_duration(seconds: Fraction | int) -> str:
    """xs:duration to the millisecond: ``PT10.021S``, ``PT1H2M3S``, ``PT0S``."""
    ms = round(Fraction(seconds) * 1000)
    if ms < 0:
        raise ValueError("negative duration")
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    out = "PT"
    if hours:
        out += f"{hours}H"
    if minutes:
        out += f"{minutes}M"
    if secs or ms or out == "PT":
        out += f"{secs}.{ms:03d}".rstrip("0").rstrip(".") + "S"
    return out


def frame_rate(rate: Fraction) -> str:
    """FrameRateType: ``24`` or ``30000/1001``."""
    if rate <= 0:
        raise ValueError("frame rate must be positive")
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


def _sub(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, tag, attrs)


def _segment_template(parent: ET.Element, a: AdaptationSet, timeline: Timeline) -> None:
    attrs = {"timescale": str(timeline.timescale)}
    if timeline.presentation_time_offset:
        attrs["presentationTimeOffset"] = str(timeline.presentation_time_offset)
    attrs |= {"initialization": a.initialization, "media": a.media}
    tl = _sub(_sub(parent, "SegmentTemplate", **attrs), "SegmentTimeline")
    for t, d, count in runs(timeline.starts, timeline.durations):
        s = _sub(tl, "S")
        if t is not None:
            s.set("t", str(t))
        s.set("d", str(d))
        if count > 1:
            s.set("r", str(count - 1))  # DASH @r: repeats after the first


def _representation(
    parent: ET.Element, a: AdaptationSet, r: Representation, timeline: Timeline | None
) -> None:
    if not r.id or any(c.isspace() for c in r.id):
        raise ValueError(f"Representation@id {r.id!r} must be non-empty without whitespace")
    e = _sub(parent, "Representation", id=r.id, bandwidth=str(r.bandwidth), codecs=r.codecs)
    if r.width and r.height:
        e.set("width", str(r.width))
        e.set("height", str(r.height))
    if r.frame_rate:
        e.set("frameRate", frame_rate(r.frame_rate))
    if r.sar:
        e.set("sar", r.sar)
    if r.sample_rate:
        e.set("audioSamplingRate", str(r.sample_rate))
    if r.channels:
        _sub(
            e, "AudioChannelConfiguration", schemeIdUri=AUDIO_CHANNEL_SCHEME, value=str(r.channels)
        )
    if timeline is not None:
        _segment_template(e, a, timeline)


def _adaptation_set(period: ET.Element, a: AdaptationSet, set_id: int) -> None:
    e = _sub(period, "AdaptationSet", id=str(set_id))
    e.set("contentType", a.content_type)
    e.set("mimeType", a.mime_type or _MIME[a.content_type])
    if a.lang:
        e.set("lang", a.lang)
    if a.segment_alignment:
        e.set("segmentAlignment", "true")
    if a.start_with_sap:
        e.set("startWithSAP", "1")
    widths = [r.width for r in a.representations if r.width]
    heights = [r.height for r in a.representations if r.height]
    rates = [r.frame_rate for r in a.representations if r.frame_rate]
    if widths and heights:
        e.set("maxWidth", str(max(widths)))
        e.set("maxHeight", str(max(heights)))
    if rates:
        e.set("maxFrameRate", frame_rate(max(rates)))
    for cp in a.content_protection:  # before Role: RepresentationBaseType's sequence
        _content_protection(e, cp)
    if a.role:
        _sub(e, "Role", schemeIdUri=ROLE_SCHEME, value=a.role)
    timelines = {r.timeline or a.timeline for r in a.representations}
    shared = timelines.pop() if len(timelines) == 1 else None
    if shared is not None:
        _segment_template(e, a, shared)
    for r in a.representations:
        _representation(e, a, r, None if shared is not None else (r.timeline or a.timeline))


def _mpd_attributes(
    profiles: Sequence[str],
    duration: Fraction | None,
    min_buffer_time: Fraction,
    live: Live | None,
) -> dict[str, str]:
    """MPD@ attributes, in the order written: static ones as always, live ones around them."""
    if not profiles or any("," in p or not p for p in profiles):
        raise ValueError("profiles must be non-empty URIs without commas")
    ends = live is None or live.ended
    if ends and duration is None:
        raise ValueError("a static or ended MPD needs its duration")
    if not ends and duration is not None:
        raise ValueError("a running live MPD has no duration yet")
    attrs = {
        "xmlns": NAMESPACE,
        "type": "static" if live is None else "dynamic",
        "profiles": ",".join(profiles),
    }
    if live is not None:
        attrs["availabilityStartTime"] = date_time(live.availability_start)
        attrs["publishTime"] = date_time(live.publish_time)
    if duration is not None:
        attrs["mediaPresentationDuration"] = iso_duration(duration)
    if live is not None:
        if not live.ended:
            attrs["minimumUpdatePeriod"] = iso_duration(live.minimum_update_period)
        attrs["timeShiftBufferDepth"] = iso_duration(live.time_shift_buffer_depth)
        attrs["suggestedPresentationDelay"] = iso_duration(live.suggested_presentation_delay)
    attrs["minBufferTime"] = iso_duration(min_buffer_time)
    return attrs


def mpd(
    adaptation_sets: Sequence[AdaptationSet],
    *,
    duration: Fraction | None,
    min_buffer_time: Fraction,
    profiles: Sequence[str],
    period_id: str = "0",
    period_start: Fraction = Fraction(0),
    live: Live | None = None,
) -> str:
    """An MPD with one Period; static unless ``live`` is given. Times in seconds.

    ``duration``: the presentation's (mediaPresentationDuration), for a static or an ended live
    MPD; None for a running one. ``period_start``: Period@start, from the availabilityStartTime
    for a live MPD (a later Period after a discontinuity starts later; one Period for now).
    """
    if not adaptation_sets:
        raise ValueError("an MPD needs at least one Adaptation Set")
    if period_start < 0:
        raise ValueError("Period@start must be >= 0")
    root = ET.Element("MPD", _mpd_attributes(profiles, duration, min_buffer_time, live))
    period = _sub(root, "Period", id=period_id, start=iso_duration(period_start))
    ids = [k if a.id is None else a.id for k, a in enumerate(adaptation_sets)]
    if len(set(ids)) != len(ids) or min(ids) < 0:
        raise ValueError("AdaptationSet ids must be unique unsigned integers")
    for a, set_id in zip(adaptation_sets, ids, strict=True):
        _adaptation_set(period, a, set_id)
    for timing in live.utc_timing if live is not None else ():
        _sub(root, "UTCTiming", schemeIdUri=timing.scheme, value=timing.url)  # last child of MPD
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
