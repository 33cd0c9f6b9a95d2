"""Smooth Streaming client manifests (MS-SSTR §2.2.2), built from a plain description.

Smooth clients have no init segment: they build the decoder set-up from ``CodecPrivateData`` and
the QualityLevel attributes alone (dash.js writes its own moov from them), so those must be exact;
:func:`origin.core.mp4.codecs.avc_codec_private_data` and ``aac_codec_private_data`` make them
from the source's configuration records. Times and durations are in the manifest ``TimeScale``
(10 MHz) and must be those the fragments carry in ``tfxd`` (``mux.smooth.smooth_timing``).

``<c r="…">`` is written only on request: clients disagree on what it counts (dash.js and
ExoPlayer read it as the number of fragments in the run, Shaka Player as repeats after the first,
as DASH's ``S@r``), while ``t`` on the first chunk and ``d`` on every chunk reads the same in all.

Live (:class:`Live`): the streams carry the DVR window's fragments only, ``t`` absolute on the
channel's timeline; the root gets ``IsLive="TRUE"``, ``DVRWindowLength`` and ``Duration="0"``
(MS-SSTR §2.2.2.1: the duration of a live presentation is not known). ``LookAheadFragmentCount``
is written only when look-ahead is asked for (default 0): dash.js never reads the attribute, but
it wants a ``tfrf`` box in every live fragment (MSS_NO_TFRF otherwise) and, since it does not
refresh a live Smooth manifest, learns each next fragment only from that box's first entry, so for
dash.js the fragments must announce at least one next fragment (``origin.core.mux.smooth.tfrf``).
Once ended the document is on-demand: MS-SSTR
requires ``DVRWindowLength`` and ``LookAheadFragmentCount`` be omitted then, and ``IsLive`` with a
non-zero ``Duration`` would make dash.js treat it as "start-over" and demand ``tfrf`` again.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from origin.core.manifest.common import runs
from origin.core.mp4.defs import SMOOTH_TIMESCALE

__all__ = [
    "AudioLevel",
    "Live",
    "Stream",
    "VideoLevel",
    "manifest",
]


@dataclass(frozen=True, slots=True)
class VideoLevel:
    bitrate: int  # also the {bitrate} in fragment URLs
    width: int
    height: int
    codec_private_data: str
    fourcc: str = "H264"


@dataclass(frozen=True, slots=True)
class AudioLevel:
    bitrate: int
    sampling_rate: int
    channels: int
    codec_private_data: str
    fourcc: str = "AACL"
    bits_per_sample: int = 16

    @property
    def packet_size(self) -> int:
        # WAVEFORMATEX nBlockAlign of the decoded PCM: 4 for 16-bit stereo.
        return self.channels * self.bits_per_sample // 8


@dataclass(frozen=True, slots=True)
class Stream:
    """A StreamIndex: one kind of track in several QualityLevels sharing one fragment timeline."""

    type: str  # "video" | "audio"
    levels: tuple[VideoLevel | AudioLevel, ...]  # all of the stream's type
    starts: tuple[int, ...]  # fragment start times (TimeScale units), the URLs' {start time}
    durations: tuple[int, ...]
    name: str | None = None  # default: the type; names the URL's Fragments({name}=…)
    language: str | None = None
    display_size: tuple[int, int] | None = None  # video; default: the largest level's size
    url: str | None = None  # default: QualityLevels({bitrate})/Fragments({name}={start time})

    def __post_init__(self) -> None:
        if self.type not in ("video", "audio"):
            raise ValueError(f"unsupported StreamIndex type {self.type!r}")
        want = VideoLevel if self.type == "video" else AudioLevel
        if not self.levels or not all(isinstance(q, want) for q in self.levels):
            raise ValueError(f"a {self.type} StreamIndex needs {want.__name__} entries")
        if not self.starts or len(self.starts) != len(self.durations):
            raise ValueError("a stream needs one duration per fragment start, and at least one")
        if min(self.durations) <= 0 or min(self.starts) < 0:
            raise ValueError("fragment times must be >= 0 and durations > 0")
        if len({q.bitrate for q in self.levels}) != len(self.levels):
            raise ValueError("QualityLevel bitrates must differ: they address the fragments")
        if "{bitrate}" not in self.url_template or "{start time}" not in self.url_template:
            raise ValueError("the Url template needs {bitrate} and {start time}")

    @property
    def url_template(self) -> str:
        if self.url is not None:
            return self.url
        return f"QualityLevels({{bitrate}})/Fragments({self.name or self.type}={{start time}})"


@dataclass(frozen=True, slots=True)
class Live:
    """A live presentation's root attributes; times in TimeScale (100 ns) units."""

    dvr_window: int  # DVRWindowLength; 0 = unbounded (MS-SSTR)
    look_ahead: int = 0  # LookAheadFragmentCount: next fragments each fragment's tfrf announces
    ended: bool = False  # the encoder stopped: write an on-demand document of what remains

    def __post_init__(self) -> None:
        if self.dvr_window < 0 or self.look_ahead < 0:
            raise ValueError("DVR window and look-ahead count must be >= 0")


def _attrs(e: ET.Element, *pairs: tuple[str, object]) -> None:
    for key, value in pairs:
        e.set(key, str(value))


def _quality_level(parent: ET.Element, index: int, q: VideoLevel | AudioLevel) -> None:
    e = ET.SubElement(parent, "QualityLevel")
    _attrs(e, ("Index", index), ("Bitrate", q.bitrate), ("FourCC", q.fourcc))
    if isinstance(q, VideoLevel):
        _attrs(e, ("MaxWidth", q.width), ("MaxHeight", q.height))
    else:
        _attrs(
            e,
            ("SamplingRate", q.sampling_rate),
            ("Channels", q.channels),
            ("BitsPerSample", q.bits_per_sample),
            ("PacketSize", q.packet_size),
            ("AudioTag", 255),  # wFormatTag WAVE_FORMAT_RAW_AAC1: raw AAC access units
        )
    e.set("CodecPrivateData", q.codec_private_data)


def _stream(root: ET.Element, s: Stream, *, repeat: bool) -> None:
    e = ET.SubElement(root, "StreamIndex")
    _attrs(e, ("Type", s.type), ("Name", s.name or s.type))
    if s.language:
        e.set("Language", s.language)
    _attrs(e, ("Chunks", len(s.starts)), ("QualityLevels", len(s.levels)))
    if s.type == "video":  # MS-SSTR: these MUST NOT appear on other stream types
        video = [q for q in s.levels if isinstance(q, VideoLevel)]
        width, height = max(q.width for q in video), max(q.height for q in video)
        display = s.display_size or (width, height)
        _attrs(
            e,
            ("MaxWidth", width),
            ("MaxHeight", height),
            ("DisplayWidth", display[0]),
            ("DisplayHeight", display[1]),
        )
    e.set("Url", s.url_template)
    for index, q in enumerate(s.levels):
        _quality_level(e, index, q)
    for t, d, count in runs(s.starts, s.durations):
        for k in range(1 if repeat else count):
            c = ET.SubElement(e, "c")
            if t is not None and k == 0:
                c.set("t", str(t))
            c.set("d", str(d))
            if repeat and count > 1:
                c.set("r", str(count))  # the number of fragments in the run (dash.js, ExoPlayer)


def manifest(
    streams: Sequence[Stream],
    *,
    duration: int,
    repeat: bool = False,
    live: Live | None = None,
    protection: tuple[str, str] | None = None,
) -> str:
    """A SmoothStreamingMedia document; ``duration`` in TimeScale (100 ns) units.

    With ``live`` (not ended) ``Duration`` is written as 0 whatever ``duration`` says.
    ``protection``: (SystemID, base64 header) of a ``<Protection>`` element (MS-SSTR §2.2.2.2),
    after the StreamIndex elements.
    """
    if not streams:
        raise ValueError("a manifest needs at least one stream")
    if duration < 0:
        raise ValueError("negative duration")
    names = [s.name or s.type for s in streams]
    if len(set(names)) != len(names):
        raise ValueError("StreamIndex names must differ: they address the fragments")
    on_air = live is not None and not live.ended
    root = ET.Element("SmoothStreamingMedia")
    _attrs(
        root,
        ("MajorVersion", 2),
        ("MinorVersion", 2),
        ("TimeScale", SMOOTH_TIMESCALE),
        ("Duration", 0 if on_air else duration),
    )
    if live is not None and on_air:
        _attrs(root, ("IsLive", "TRUE"), ("DVRWindowLength", live.dvr_window))
        if live.look_ahead:
            root.set("LookAheadFragmentCount", str(live.look_ahead))
    for s in streams:
        _stream(root, s, repeat=repeat)
    if protection is not None:
        system_id, header = protection
        element = ET.SubElement(root, "Protection")
        ET.SubElement(element, "ProtectionHeader", SystemID=system_id).text = header
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
