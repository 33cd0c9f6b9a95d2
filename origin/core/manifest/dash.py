"""DASH MPDs (ISO/IEC 23009-1, DASH-IF IOP), built from a plain description of the presentation.

One static Period, one ``SegmentTemplate`` with a ``SegmentTimeline`` per Adaptation Set (or per
Representation when their timelines differ), ``$RepresentationID$`` / ``$Time$`` addressing.
Written through ``xml.etree`` so every attribute is escaped; children follow the order of the
schema's sequences (DASH-MPD.xsd), which validating parsers and some players insist on.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from origin.core.manifest.common import runs

__all__ = [
    "AUDIO_CHANNEL_SCHEME",
    "CMAF_PROFILE",
    "LIVE_PROFILE",
    "NAMESPACE",
    "AdaptationSet",
    "Representation",
    "Timeline",
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

    def __post_init__(self) -> None:
        if not self.representations:
            raise ValueError("an Adaptation Set needs at least one Representation")
        if "$Time$" not in self.media:
            raise ValueError("SegmentTemplate@media must address segments by $Time$")
        if self.timeline is None and any(r.timeline is None for r in self.representations):
            raise ValueError("a Representation has no timeline and its Adaptation Set neither")
        if self.mime_type is None and self.content_type not in _MIME:
            raise ValueError(f"no default mimeType for contentType {self.content_type!r}")


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
    if a.role:
        _sub(e, "Role", schemeIdUri=ROLE_SCHEME, value=a.role)
    timelines = {r.timeline or a.timeline for r in a.representations}
    shared = timelines.pop() if len(timelines) == 1 else None
    if shared is not None:
        _segment_template(e, a, shared)
    for r in a.representations:
        _representation(e, a, r, None if shared is not None else (r.timeline or a.timeline))


def mpd(
    adaptation_sets: Sequence[AdaptationSet],
    *,
    duration: Fraction,
    min_buffer_time: Fraction,
    profiles: Sequence[str],
    period_id: str = "0",
) -> str:
    """A static MPD with one Period starting at 0. ``duration`` and ``min_buffer_time`` in s."""
    if not adaptation_sets:
        raise ValueError("an MPD needs at least one Adaptation Set")
    if not profiles or any("," in p or not p for p in profiles):
        raise ValueError("profiles must be non-empty URIs without commas")
    root = ET.Element(
        "MPD",
        {
            "xmlns": NAMESPACE,
            "type": "static",
            "profiles": ",".join(profiles),
            "mediaPresentationDuration": iso_duration(duration),
            "minBufferTime": iso_duration(min_buffer_time),
        },
    )
    period = _sub(root, "Period", id=period_id, start="PT0S")
    ids = [k if a.id is None else a.id for k, a in enumerate(adaptation_sets)]
    if len(set(ids)) != len(ids) or min(ids) < 0:
        raise ValueError("AdaptationSet ids must be unique unsigned integers")
    for a, set_id in zip(adaptation_sets, ids, strict=True):
        _adaptation_set(period, a, set_id)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
