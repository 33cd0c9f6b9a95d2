"""A structural check of MPDs, standing in for validation against DASH-MPD.xsd.

No package on PyPI, npm or Debian ships the DASH schema (looked at: PyPI mpegdash, mpd-inspector,
mpd-parser; npm mpd-parser, @liveinstantly/dash-mpd-parser, dashjs; Debian python3-mpegdash),
so this checks what the schema says for the elements origin writes (ISO/IEC 23009-1, DASH-MPD.xsd
of the 5th edition): element names and their order in each sequence, cardinality, required
attributes, attribute names and value types. On top of it, what the schema cannot say: URL
templates, SegmentTimeline consistency (no overlaps or gaps, durations against
mediaPresentationDuration within one frame) and the DASH-IF IOP fields players rely on. Dynamic
MPDs also get the rules of ISO/IEC 23009-1 Table 3 and the DASH-IF timing guidelines for live:
availabilityStartTime and publishTime present with a time zone, Period@start, at least one
UTCTiming with an HTTP time scheme, an update period or an end, a timeline within the time-shift
window and no segment listed before it is complete at publishTime.

``check_mpd(text)`` returns the problems found; ``assert_valid_mpd(text)`` fails with all of them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

NS = "urn:mpeg:dash:schema:mpd:2011"
_Q = "{" + NS + "}"

# Child element sequences (xs:sequence order) of the types involved, from DASH-MPD.xsd.
_REPRESENTATION_BASE = [
    "FramePacking", "AudioChannelConfiguration", "ContentProtection", "OutputProtection",
    "EssentialProperty", "SupplementalProperty", "InbandEventStream", "Switching", "RandomAccess",
    "GroupLabel", "Label", "ProducerReferenceTime", "ContentPopularityRate", "Resync",
]  # fmt: skip
_DESCRIPTOR: list[str] = []  # DescriptorType: only elements of other namespaces
SEQUENCES: dict[str, list[str]] = {
    "MPD": [
        "ProgramInformation", "BaseURL", "Location", "PatchLocation", "ServiceDescription",
        "InitializationSet", "InitializationGroup", "InitializationPresentation",
        "ContentProtection", "Period", "Metrics", "EssentialProperty", "SupplementalProperty",
        "UTCTiming", "LeapSecondInformation",
    ],
    "Period": [
        "BaseURL", "SegmentBase", "SegmentList", "SegmentTemplate", "AssetIdentifier",
        "EventStream", "ServiceDescription", "ContentProtection", "AdaptationSet", "Subset",
        "SupplementalProperty", "EmptyAdaptationSet", "GroupLabel", "Preselection",
    ],
    "AdaptationSet": [
        *_REPRESENTATION_BASE,
        "Accessibility", "Role", "Rating", "Viewpoint", "ContentComponent", "BaseURL",
        "SegmentBase", "SegmentList", "SegmentTemplate", "Representation",
    ],
    "Representation": [
        *_REPRESENTATION_BASE,
        "BaseURL", "ExtendedBandwidth", "SubRepresentation", "SegmentBase", "SegmentList",
        "SegmentTemplate",
    ],
    "SegmentTemplate": [
        "Initialization", "RepresentationIndex", "FailoverContent", "SegmentTimeline",
        "BitstreamSwitching",
    ],
    "SegmentTimeline": ["S"],
    "S": [],
    "Role": _DESCRIPTOR,
    "AudioChannelConfiguration": _DESCRIPTOR,
    "EssentialProperty": _DESCRIPTOR,
    "SupplementalProperty": _DESCRIPTOR,
    "Accessibility": _DESCRIPTOR,
    "UTCTiming": _DESCRIPTOR,
}  # fmt: skip
AT_MOST_ONE = {
    "SegmentBase", "SegmentList", "SegmentTemplate", "AssetIdentifier", "OutputProtection",
    "LeapSecondInformation", "Initialization", "RepresentationIndex", "FailoverContent",
    "SegmentTimeline", "BitstreamSwitching",
}  # fmt: skip
AT_LEAST_ONE = {"MPD": ["Period"], "SegmentTimeline": ["S"]}

_RB_ATTRS = {
    "profiles", "width", "height", "sar", "frameRate", "audioSamplingRate", "mimeType",
    "segmentProfiles", "codecs", "containerProfiles", "maximumSAPPeriod", "startWithSAP",
    "maxPlayoutRate", "codingDependency", "scanType", "selectionPriority", "tag",
}  # fmt: skip
ATTRIBUTES: dict[str, set[str]] = {
    "MPD": {
        "id", "profiles", "type", "availabilityStartTime", "publishTime", "availabilityEndTime",
        "mediaPresentationDuration", "minimumUpdatePeriod", "minBufferTime",
        "timeShiftBufferDepth", "suggestedPresentationDelay", "maxSegmentDuration",
        "maxSubsegmentDuration",
    },
    "Period": {"id", "start", "duration", "bitstreamSwitching"},
    "AdaptationSet": _RB_ATTRS | {
        "id", "group", "lang", "contentType", "par", "minBandwidth", "maxBandwidth", "minWidth",
        "maxWidth", "minHeight", "maxHeight", "minFrameRate", "maxFrameRate", "segmentAlignment",
        "subsegmentAlignment", "subsegmentStartsWithSAP", "bitstreamSwitching",
        "initializationSetRef", "initializationPrincipal",
    },
    "Representation": _RB_ATTRS | {
        "id", "bandwidth", "qualityRanking", "dependencyId", "associationId", "associationType",
        "mediaStreamStructureId",
    },
    "SegmentTemplate": {
        "media", "index", "initialization", "bitstreamSwitching", "duration", "startNumber",
        "endNumber", "timescale", "eptDelta", "pdDelta", "presentationTimeOffset",
        "presentationDuration", "timeShiftBufferDepth", "availabilityTimeOffset",
        "availabilityTimeComplete",
    },
    "SegmentTimeline": set(),
    "S": {"t", "n", "d", "r", "k"},
    "Role": {"schemeIdUri", "value", "id"},
    "AudioChannelConfiguration": {"schemeIdUri", "value", "id"},
    "EssentialProperty": {"schemeIdUri", "value", "id"},
    "SupplementalProperty": {"schemeIdUri", "value", "id"},
    "Accessibility": {"schemeIdUri", "value", "id"},
    "UTCTiming": {"schemeIdUri", "value", "id"},
}  # fmt: skip
REQUIRED = {
    "MPD": {"profiles", "minBufferTime"},
    "Representation": {"id", "bandwidth"},
    "S": {"d"},
    "Role": {"schemeIdUri"},
    "AudioChannelConfiguration": {"schemeIdUri"},
    "EssentialProperty": {"schemeIdUri"},
    "SupplementalProperty": {"schemeIdUri"},
    "Accessibility": {"schemeIdUri"},
    "UTCTiming": {"schemeIdUri"},
}

_UINT = re.compile(r"\d+")
_DURATION = re.compile(
    r"-?P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?!$)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?"
)
_FRAME_RATE = re.compile(r"[0-9]*[0-9](/[0-9]*[0-9])?")  # FrameRateType
_RATIO = re.compile(r"[0-9]*:[0-9]*")  # RatioType
_LANGUAGE = re.compile(r"[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*")  # xs:language
_BOOL = re.compile(r"true|false|1|0")
# xs:dateTime; group 1 the time zone, which live MPDs need (IOP: a time without one is ambiguous).
_DATE_TIME = re.compile(
    r"-?\d{4,}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(?:\.\d+)?(Z|[+-](?:0\d|1[0-4]):[0-5]\d)?"
)
# UTCTiming schemes (ISO/IEC 23009-1 §5.8.5.7) whose @value is a URL of a time server.
UTC_HTTP_SCHEMES = {
    "urn:mpeg:dash:utc:http-iso:2014", "urn:mpeg:dash:utc:http-xsdate:2014",
    "urn:mpeg:dash:utc:http-head:2014", "urn:mpeg:dash:utc:http-ntp:2014",
}  # fmt: skip
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
_MIME = re.compile(r"(video|audio|application|text|image)/[A-Za-z0-9.+-]+")
# RFC 6381 sample-entry based codec strings; the common ones exactly.
_CODEC = re.compile(r"[a-zA-Z0-9]{4}(\.[a-zA-Z0-9]+)*")
_AVC = re.compile(r"(avc1|avc3)\.[0-9A-Fa-f]{6}")
_AAC = re.compile(r"mp4a\.40\.\d+")
_TEMPLATE_ID = re.compile(
    r"\$(?:(RepresentationID)|(Number|Bandwidth|Time|SubNumber)(%0\d+[diouxX])?)?\$"
)

TYPES = {
    "uint": lambda v: _UINT.fullmatch(v) is not None and int(v) < 2**32,
    "ulong": lambda v: _UINT.fullmatch(v) is not None and int(v) < 2**64,
    "duration": lambda v: _DURATION.fullmatch(v) is not None,
    "frameRate": lambda v: _FRAME_RATE.fullmatch(v) is not None and "/0" not in v,
    "ratio": lambda v: _RATIO.fullmatch(v) is not None,
    "language": lambda v: _LANGUAGE.fullmatch(v) is not None,
    "bool": lambda v: _BOOL.fullmatch(v) is not None,
    "conditionalUint": lambda v: _BOOL.fullmatch(v) is not None or _UINT.fullmatch(v) is not None,
    "sap": lambda v: _UINT.fullmatch(v) is not None and int(v) <= 6,
    "noWhitespace": lambda v: v != "" and not any(c.isspace() for c in v),
    "uri": lambda v: _URI.fullmatch(v) is not None,
    "mime": lambda v: _MIME.fullmatch(v) is not None,
    "codecs": lambda v: all(_CODEC.fullmatch(c.strip()) for c in v.split(",")),
    "profiles": lambda v: all(_URI.fullmatch(p.strip()) for p in v.split(",")),
    "mpdType": lambda v: v in ("static", "dynamic"),
    "dateTime": lambda v: _DATE_TIME.fullmatch(v) is not None,
    "contentType": lambda v: v in ("video", "audio", "text", "image", "font", "application"),
}
ATTRIBUTE_TYPES: dict[str, str] = {
    "mediaPresentationDuration": "duration", "minBufferTime": "duration", "start": "duration",
    "duration@Period": "duration", "maxSegmentDuration": "duration",
    "timeShiftBufferDepth@MPD": "duration", "profiles": "profiles", "type": "mpdType",
    "minimumUpdatePeriod": "duration", "suggestedPresentationDelay": "duration",
    "availabilityStartTime": "dateTime", "publishTime": "dateTime",
    "availabilityEndTime": "dateTime",
    "id@AdaptationSet": "uint", "id@Representation": "noWhitespace", "bandwidth": "uint",
    "width": "uint", "height": "uint", "maxWidth": "uint", "maxHeight": "uint",
    "frameRate": "frameRate", "maxFrameRate": "frameRate", "sar": "ratio", "par": "ratio",
    "lang": "language", "segmentAlignment": "conditionalUint", "startWithSAP": "sap",
    "mimeType": "mime", "codecs": "codecs", "contentType": "contentType",
    "audioSamplingRate": "uint", "timescale": "uint", "presentationTimeOffset": "ulong",
    "startNumber": "uint", "t": "ulong", "d": "ulong", "r": "int", "schemeIdUri": "uri",
}  # fmt: skip
TYPES["int"] = lambda v: re.fullmatch(r"-?\d+", v) is not None


def parse_duration(value: str) -> Fraction:
    """Seconds of an xs:duration without years or months (what an MPD may use)."""
    m = _DURATION.fullmatch(value)
    if not m or m.group(1) or m.group(2) or value.startswith("-"):
        raise ValueError(f"unsupported duration {value!r}")
    days, hours, minutes = (int(g or 0) for g in m.group(3, 4, 5))
    return Fraction(m.group(6) or 0) + 60 * (minutes + 60 * (hours + 24 * days))


def parse_date_time(value: str) -> datetime:
    """An xs:dateTime with a time zone, as an aware datetime."""
    m = _DATE_TIME.fullmatch(value)
    if not m or not m.group(1):
        raise ValueError(f"not an xs:dateTime with a time zone: {value!r}")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _local(tag: str) -> str | None:
    return tag[len(_Q) :] if tag.startswith(_Q) else None


@dataclass
class _Timeline:
    timescale: int
    pto: int
    segments: list[tuple[int, int]]  # (t, d)


class _Checker:
    def __init__(self, max_gap: int) -> None:
        self.problems: list[str] = []
        self.max_gap = max_gap

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    # --- schema ------------------------------------------------------------------------------

    def schema(self, e: ET.Element, path: str) -> None:
        name = _local(e.tag)
        if name is None or name not in SEQUENCES:
            self.fail(path, f"unexpected element {e.tag}")
            return
        if (e.text or "").strip():
            self.fail(path, "has text content")
        for key, value in e.attrib.items():
            if key.startswith("{"):
                continue  # other namespaces are allowed (xs:anyAttribute ##other)
            if key not in ATTRIBUTES[name]:
                self.fail(path, f"unknown attribute {key}")
                continue
            kind = ATTRIBUTE_TYPES.get(f"{key}@{name}") or ATTRIBUTE_TYPES.get(key)
            if kind and not TYPES[kind](value):
                self.fail(path, f"@{key}={value!r} is not a valid {kind}")
        for key in REQUIRED.get(name, set()) - set(e.attrib):
            self.fail(path, f"missing required @{key}")
        order = SEQUENCES[name]
        last = -1
        counts: dict[str, int] = {}
        for child in e:
            child_name = _local(child.tag)
            if child_name is None:
                continue  # elements of other namespaces are allowed where the schema says ##other
            if child_name not in order:
                self.fail(path, f"{child_name} is not allowed in {name}")
                continue
            pos = order.index(child_name)
            if pos < last:
                self.fail(path, f"{child_name} is out of the schema's order in {name}")
            last = max(last, pos)
            counts[child_name] = counts.get(child_name, 0) + 1
            if (child.tail or "").strip():
                self.fail(path, "has text content")
        for child_name, n in counts.items():
            if child_name in AT_MOST_ONE and n > 1:
                self.fail(path, f"{n} {child_name} elements, at most one allowed")
        for child_name in AT_LEAST_ONE.get(name, []):
            if not counts.get(child_name):
                self.fail(path, f"needs at least one {child_name}")
        for k, child in enumerate(e):
            self.schema(child, f"{path}/{_local(child.tag) or child.tag}[{k}]")

    # --- semantics ---------------------------------------------------------------------------

    def template(self, st: ET.Element, where: str) -> None:
        for key in ("media", "initialization"):
            value = st.get(key)
            if value is None:
                self.fail(where, f"SegmentTemplate without @{key}")
                continue
            rest = _TEMPLATE_ID.sub("", value)
            if "$" in rest:
                self.fail(where, f"@{key} has an invalid $ identifier: {value!r}")
            names = {m.group(1) or m.group(2) for m in _TEMPLATE_ID.finditer(value)}
            if key == "initialization" and names & {"Time", "Number", "SubNumber"}:
                self.fail(where, "@initialization may not use $Time$ or $Number$")
            if key == "media":
                has_timeline = st.find(_Q + "SegmentTimeline") is not None
                if "Time" in names and not has_timeline:
                    self.fail(where, "$Time$ needs a SegmentTimeline")
                if not names & {"Time", "Number"}:
                    self.fail(where, "@media addresses segments by neither $Time$ nor $Number$")

    def timeline(self, st: ET.Element, where: str) -> _Timeline | None:
        tl = st.find(_Q + "SegmentTimeline")
        if tl is None:
            return None
        timescale = st.get("timescale", "1")
        pto = st.get("presentationTimeOffset", "0")
        if not (TYPES["uint"](timescale) and TYPES["ulong"](pto)) or int(timescale) == 0:
            self.fail(where, "no usable @timescale / @presentationTimeOffset")
            return None
        segments: list[tuple[int, int]] = []
        end = None
        for k, s in enumerate(tl.findall(_Q + "S")):
            try:
                d = int(s.get("d", "0"))
                r = int(s.get("r", "0"))
                t = int(s.attrib["t"]) if "t" in s.attrib else (0 if end is None else end)
            except ValueError:
                continue  # reported by the schema check
            if d <= 0:
                self.fail(f"{where}/S[{k}]", "duration must be positive")
                continue
            if r < 0:
                self.fail(
                    f"{where}/S[{k}]", "negative @r (until the next S or the end) is not used"
                )
                continue
            if end is not None and t < end:
                self.fail(f"{where}/S[{k}]", f"t={t} overlaps the previous segment ending {end}")
            elif end is not None and t - end > self.max_gap:
                self.fail(f"{where}/S[{k}]", f"gap of {t - end} ticks before t={t}")
            for _ in range(r + 1):
                segments.append((t, d))
                t += d
            end = t
        if not segments:
            return None
        return _Timeline(int(timescale), int(pto), segments)


def _frame(rates: list[str], sample_rates: list[str]) -> Fraction:
    """One frame: of video at its lowest frame rate, of AAC (up to 2048 samples) otherwise."""
    frames = [Fraction(r) for r in rates if TYPES["frameRate"](r)]
    if frames:
        return 1 / min(frames)
    srates = [int(r) for r in sample_rates if r.isdigit() and int(r)]
    if srates:
        return Fraction(2048, min(srates))
    return Fraction(1, 10)


def check_mpd(text: str, *, max_gap: int = 0) -> list[str]:
    """Every problem found in ``text`` (empty when the MPD passes)."""
    c = _Checker(max_gap)
    if not text.startswith('<?xml version="1.0"'):
        c.fail("document", "no XML declaration")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        return [f"document: not well-formed XML: {exc}"]
    if root.tag != _Q + "MPD":
        return [f"document: root element is {root.tag}, not {{{NS}}}MPD"]
    c.schema(root, "MPD")
    static = root.get("type", "static") == "static"
    live = None if static else _check_dynamic(c, root)
    duration: Fraction | None = None
    if "mediaPresentationDuration" in root.attrib:
        try:
            duration = parse_duration(root.attrib["mediaPresentationDuration"])
        except ValueError as exc:
            c.fail("MPD", str(exc))
    elif static:
        c.fail(
            "MPD", "a static MPD needs @mediaPresentationDuration here (one Period, no @duration)"
        )
    ends: list[tuple[Fraction, Fraction, str]] = []  # (end, tolerance, where)
    for p, period in enumerate(root.findall(_Q + "Period")):
        try:
            period_start = parse_duration(period.get("start", "PT0S"))
        except ValueError as exc:
            c.fail(f"Period[{p}]", str(exc))
            period_start = Fraction(0)
        rep_ids: set[str] = set()
        set_ids: set[str] = set()
        if not period.findall(_Q + "AdaptationSet"):
            c.fail(f"Period[{p}]", "no AdaptationSet")
        for a, aset in enumerate(period.findall(_Q + "AdaptationSet")):
            where = f"Period[{p}]/AdaptationSet[{a}]"
            sid = aset.get("id")
            if sid is None:
                c.fail(where, "no @id (DASH-IF IOP)")
            elif sid in set_ids:
                c.fail(where, f"duplicate AdaptationSet@id {sid}")
            else:
                set_ids.add(sid)
            spans = _check_set(c, aset, where, rep_ids, static=static)
            ends += [(period_start + end, frame, w) for _, _, end, frame, w in spans]
            if live is not None:
                _check_window(c, live, period_start, [(a, b, e, w) for a, b, e, _, w in spans])
    if duration is not None and ends:
        ms = Fraction(1, 1000)  # the MPD's durations are rounded to the millisecond
        for end, frame, where in ends:
            if end > duration + frame + ms:
                c.fail(where, f"timeline ends at {float(end):.6f}s, after the MPD's {duration}s")
        longest, frame, _ = max(ends)
        if abs(longest - duration) > frame + ms:
            c.fail(
                "MPD",
                f"mediaPresentationDuration {float(duration):.6f}s is not within a frame of the "
                f"longest timeline, {float(longest):.6f}s",
            )
    return c.problems


def _check_set(
    c: _Checker, aset: ET.Element, where: str, rep_ids: set[str], *, static: bool
) -> list[tuple[Fraction, Fraction, Fraction, Fraction, str]]:
    """Checks one Adaptation Set; returns (timeline start, its first segment's end, its end, one
    frame, where) per Representation, in seconds from the Period's start."""
    content = aset.get("contentType") or (aset.get("mimeType") or "").split("/")[0]
    set_template = aset.find(_Q + "SegmentTemplate")
    set_timeline = None
    if set_template is not None:
        c.template(set_template, where)
        set_timeline = c.timeline(set_template, where)
    reps = aset.findall(_Q + "Representation")
    if not reps:
        c.fail(where, "no Representation")
    rates: list[str] = []
    sample_rates: list[str] = []
    widths: list[int] = []
    heights: list[int] = []
    spans: list[tuple[Fraction, Fraction, Fraction, str]] = []  # (start, first's end, end, where)
    for k, rep in enumerate(reps):
        rwhere = f"{where}/Representation[{k}]"
        rid = rep.get("id", "")
        if rid in rep_ids:
            c.fail(rwhere, f"duplicate Representation@id {rid!r}")
        rep_ids.add(rid)

        def attr(name: str, rep: ET.Element = rep) -> str | None:
            return rep.get(name) or aset.get(name)

        codecs = attr("codecs")
        if codecs is None:
            c.fail(rwhere, "no @codecs")
        elif codecs.startswith(("avc1", "avc3")) and not _AVC.fullmatch(codecs):
            c.fail(rwhere, f"malformed AVC codecs {codecs!r}")
        elif codecs.startswith("mp4a") and not _AAC.fullmatch(codecs):
            c.fail(rwhere, f"malformed AAC codecs {codecs!r}")
        if attr("mimeType") is None:
            c.fail(rwhere, "no @mimeType")
        if content == "video":
            for name in ("width", "height", "frameRate", "sar"):
                if attr(name) is None:
                    c.fail(rwhere, f"video without @{name} (DASH-IF IOP)")
            rates.append(attr("frameRate") or "")
            widths.append(int(rep.get("width", "0") or 0))
            heights.append(int(rep.get("height", "0") or 0))
        elif content == "audio":
            if attr("audioSamplingRate") is None:
                c.fail(rwhere, "audio without @audioSamplingRate")
            if (
                rep.find(_Q + "AudioChannelConfiguration") is None
                and aset.find(_Q + "AudioChannelConfiguration") is None
            ):
                c.fail(rwhere, "audio without AudioChannelConfiguration")
            sample_rates.append(attr("audioSamplingRate") or "")
        rep_template = rep.find(_Q + "SegmentTemplate")
        timeline = set_timeline
        if rep_template is not None:
            c.template(rep_template, rwhere)
            timeline = c.timeline(rep_template, rwhere) or set_timeline
        elif set_template is None:
            c.fail(rwhere, "no SegmentTemplate for this Representation")
        if timeline is not None:
            t0, d0 = timeline.segments[0]
            t, d = timeline.segments[-1]
            ts, pto = timeline.timescale, timeline.pto
            spans.append(
                (
                    Fraction(t0 - pto, ts),
                    Fraction(t0 + d0 - pto, ts),
                    Fraction(t + d - pto, ts),
                    rwhere,
                )
            )
    frame = _frame(rates, sample_rates)
    for first, _, _, rwhere in spans:
        # A static timeline starts at the Period's start; a live window anywhere after it.
        if (static and abs(first) > frame) or first < -frame:
            rel = "not at" if static else "before"
            c.fail(rwhere, f"first segment starts at {float(first):.6f}s, {rel} the Period's start")
    for key, values in (("maxWidth", widths), ("maxHeight", heights)):
        given = aset.get(key, "")
        if values and TYPES["uint"](given) and int(given) < max(values):
            c.fail(where, f"@{key} below a Representation's value")
    max_rate = aset.get("maxFrameRate")
    rated = [Fraction(r) for r in rates if TYPES["frameRate"](r)]
    if max_rate and TYPES["frameRate"](max_rate) and rated and max(rated) > Fraction(max_rate):
        c.fail(where, "@maxFrameRate below a Representation's frame rate")
    return [(first, first_end, end, frame, rwhere) for first, first_end, end, rwhere in spans]


@dataclass
class _Live:
    availability_start: datetime | None
    publish_time: datetime | None
    time_shift_buffer_depth: Fraction | None


def _check_dynamic(c: _Checker, root: ET.Element) -> _Live:
    """MPD-level rules of a dynamic MPD; returns its times for the timeline checks."""
    times: dict[str, datetime | None] = {}
    for key in ("availabilityStartTime", "publishTime"):
        value = root.get(key)
        times[key] = None
        if value is None:
            c.fail("MPD", f"a dynamic MPD needs @{key}")
            continue
        try:
            times[key] = parse_date_time(value)
        except ValueError as exc:
            c.fail("MPD", f"@{key}: {exc}")
    ast, publish = times["availabilityStartTime"], times["publishTime"]
    if ast is not None and publish is not None and publish < ast:
        c.fail("MPD", "@publishTime is before @availabilityStartTime")
    if "minimumUpdatePeriod" not in root.attrib and "mediaPresentationDuration" not in root.attrib:
        c.fail("MPD", "a dynamic MPD with no @minimumUpdatePeriod needs @mediaPresentationDuration")
    depth = None
    if "timeShiftBufferDepth" in root.attrib:
        try:
            depth = parse_duration(root.attrib["timeShiftBufferDepth"])
        except ValueError as exc:
            c.fail("MPD", str(exc))
    periods = root.findall(_Q + "Period")
    if periods and "start" not in periods[0].attrib:
        c.fail("MPD/Period[0]", "the first Period of a dynamic MPD needs @start")
    timings = root.findall(_Q + "UTCTiming")
    if not timings:
        c.fail("MPD", "a dynamic MPD needs a UTCTiming (DASH-IF timing guidelines)")
    for k, timing in enumerate(timings):
        if timing.get("schemeIdUri") in UTC_HTTP_SCHEMES and not _URI.fullmatch(
            timing.get("value", "")
        ):
            c.fail(f"MPD/UTCTiming[{k}]", "an HTTP time scheme needs a URL in @value")
    return _Live(ast, publish, depth)


def _check_window(
    c: _Checker,
    live: _Live,
    period_start: Fraction,
    spans: list[tuple[Fraction, Fraction, Fraction, str]],
) -> None:
    """A live timeline lists, at publishTime, only segments still in the time-shift window and
    only complete ones. ``spans``: (start, end of the first segment, end, where) per timeline."""
    if not spans:
        return
    if live.availability_start is None or live.publish_time is None:
        return
    published = Fraction(
        round((live.publish_time - live.availability_start).total_seconds() * 1000), 1000
    )
    ms = Fraction(1, 1000)  # publishTime is written to the millisecond
    for first, first_end, end, where in spans:
        # ISO/IEC 23009-1 §5.3.9.5: a segment stays available for timeShiftBufferDepth plus its
        # duration after it completes.
        depth = live.time_shift_buffer_depth
        if depth is not None and period_start + 2 * first_end - first + depth < published - ms:
            c.fail(
                where,
                f"first segment ({float(period_start + first):.6f}s) slid out of the "
                f"time-shift window before publishTime ({float(published):.3f}s)",
            )
        if period_start + end > published + ms:
            c.fail(
                where,
                f"timeline ends at {float(period_start + end):.6f}s after availabilityStartTime, "
                f"after publishTime ({float(published):.3f}s): a segment not yet complete",
            )


def assert_valid_mpd(text: str, *, max_gap: int = 0) -> None:
    problems = check_mpd(text, max_gap=max_gap)
    assert not problems, "MPD fails the structural check:\n" + "\n".join(problems)
