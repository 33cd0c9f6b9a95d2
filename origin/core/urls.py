"""The AMS-compatible URL grammar, parsed and formatted in one place.

    [/{locator}]/{asset}.ism/manifest(format=m3u8-aapl[,encryption=cbc][,audio-only=false])
    [/{locator}]/{asset}.ism/manifest(format=mpd-time-csf|mpd-time-cmaf)        DASH
    [/{locator}]/{asset}.ism/manifest                                           Smooth Streaming
    [/{locator}]/{asset}.ism/QualityLevels({id})/Manifest({video|audio},format=…[,encryption=cbc])
    [/{locator}]/{asset}.ism/QualityLevels({id})/Fragments({video|audio}={time|i},format=…[,…]).ext
    [/{locator}]/{asset}.ism/QualityLevels({id})/Fragments({video|audio}={time})  Smooth
    /{channel}.isml/...                 the same for a live channel (``live`` is set)
    /{channel}.isml/Streams({stream})[/{name}]   live ingest (POST/PUT), :func:`parse_ingest_path`

Fragment times are segment start times in 100 ns units, the Smooth Streaming timescale, for every
protocol (DASH's SegmentTemplate uses the same timescale), so one map per rendition resolves them
all; ``i`` names an initialization segment (HLS fMP4, DASH). Every URL a playlist carries is
relative to that playlist, so the origin works behind any host, path prefix or CDN; only the key
URL, served from the root, needs to climb out of the asset folder.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

from origin.core.mp4.defs import SMOOTH_TIMESCALE

# Fragment URL times, DASH S@t and Smooth c@t share one clock: Smooth's 100 ns units.
URL_TIMESCALE = SMOOTH_TIMESCALE


class UrlError(ValueError):
    """A malformed URL or option (HTTP 400). The message names what is wrong."""


class Format(StrEnum):
    HLS_TS = "m3u8-aapl"
    HLS_CMAF = "m3u8-cmaf"
    DASH_CSF = "mpd-time-csf"
    DASH_CMAF = "mpd-time-cmaf"

    @property
    def protocol(self) -> Protocol:
        return Protocol.HLS if self.value.startswith("m3u8") else Protocol.DASH


class Protocol(StrEnum):
    """Delivery protocols, as named by per-protocol delivery policies."""

    HLS = "hls"
    DASH = "dash"
    SMOOTH = "smooth"


def protocol_of(fmt: Format | None) -> Protocol:
    """A URL without ``format=`` is Smooth Streaming."""
    return Protocol.SMOOTH if fmt is None else fmt.protocol


class Encryption(StrEnum):
    """``encryption=`` (AMS's values): HLS AES-128, Common Encryption ``cenc`` and ``cbcs``."""

    CBC = "cbc"  # HLS METHOD=AES-128, whole segments
    CENC = "cenc"  # AES-CTR samples: DASH, Smooth, HLS fMP4 (SAMPLE-AES-CTR)
    CBCS = "cbcs-aapl"  # AES-CBC 1:9 pattern samples: HLS fMP4 (SAMPLE-AES), DASH

    def fits(self, fmt: Format | None) -> bool:
        """Whether a stream in ``fmt`` can carry this scheme (TS only AES-128, Smooth only
        cenc: PIFF's, AES-128 only HLS)."""
        if self is Encryption.CBC:
            return fmt in (Format.HLS_TS, Format.HLS_CMAF)
        if fmt is Format.HLS_TS:
            return False
        return fmt is not None or self is Encryption.CENC


@dataclass(frozen=True, slots=True)
class Options:
    """The options inside ``manifest(...)``, ``Manifest(...)`` and ``Fragments(...)``."""

    format: Format | None = None
    encryption: Encryption | None = None
    audio_only: bool = True

    def suffix(self) -> str:
        """What child URLs carry forward: the format and an explicit encryption request."""
        parts = [f"format={self.format}"] if self.format else []
        if self.encryption:
            parts.append(f"encryption={self.encryption}")
        return ",".join(parts)


@dataclass(frozen=True, slots=True)
class MasterPath:
    locator: str | None
    asset: str
    options: Options
    live: bool = False  # a live channel's (``.isml``)


@dataclass(frozen=True, slots=True)
class MediaPath:
    locator: str | None
    asset: str
    rendition: int
    track: str  # "video" | "audio"
    options: Options
    live: bool = False


INIT = -1  # the fragment "time" of an initialization segment


@dataclass(frozen=True, slots=True)
class FragmentPath:
    locator: str | None
    asset: str
    rendition: int
    track: str
    time: int  # URL_TIMESCALE units, or INIT
    options: Options
    live: bool = False


Path = MasterPath | MediaPath | FragmentPath

_NAME = r"[A-Za-z0-9][A-Za-z0-9._~-]*"
_ASSET = r"(?P<asset>" + _NAME + r")\.ism(?P<live>l)?"
_PREFIX = r"^/(?:(?P<locator>[^/]+)/)?" + _ASSET
_MASTER = re.compile(_PREFIX + r"/manifest(?:\((?P<opts>[^()]*)\))?$", re.IGNORECASE)
_MEDIA = re.compile(
    _PREFIX + r"/QualityLevels\((?P<rid>\d{1,12})\)/Manifest\((?P<track>video|audio)"
    r"(?:,(?P<opts>[^()]*))?\)$",
    re.IGNORECASE,
)
_FRAGMENT = re.compile(
    _PREFIX + r"/QualityLevels\((?P<rid>\d{1,12})\)/Fragments\((?P<track>video|audio)="
    r"(?P<time>\d{1,20}|i)(?:,(?P<opts>[^()]*))?\)(?:\.(?P<ext>ts|m4s|mp4))?$",
    re.IGNORECASE,
)
_VALUES = {
    "format": {f.value for f in Format},
    "encryption": {e.value for e in Encryption},
    "audio-only": {"true", "false"},
}


def parse_options(text: str | None, *, allowed: frozenset[str]) -> Options:
    """Parse ``key=value`` pairs in any order; an unknown key or value is a :class:`UrlError`."""
    found: dict[str, str] = {}
    for raw in (text or "").split(","):
        part = raw.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip().lower()
        if not sep or key not in _VALUES:
            raise UrlError(f"unknown option {key!r}")
        if key not in allowed:
            raise UrlError(f"option {key!r} is not allowed here")
        if value not in _VALUES[key]:
            raise UrlError(f"unknown value {value!r} for option {key!r}")
        if key in found:
            raise UrlError(f"option {key!r} given twice")
        found[key] = value
    return Options(
        format=Format(found["format"]) if "format" in found else None,
        encryption=Encryption(found["encryption"]) if "encryption" in found else None,
        audio_only=found.get("audio-only", "true") == "true",
    )


def _locator(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        uuid.UUID(value)
    except ValueError:
        raise UrlError(f"locator {value!r} is not a UUID") from None
    return value


_MASTER_OPTS = frozenset({"format", "encryption", "audio-only"})
_CHILD_OPTS = frozenset({"format", "encryption"})


def _check_encryption(opts: Options) -> Options:
    enc = opts.encryption
    if enc is not None and not enc.fits(opts.format):
        where = f"format={opts.format}" if opts.format else "Smooth Streaming"
        raise UrlError(f"encryption={enc} is not a scheme for {where}")
    if not opts.audio_only and protocol_of(opts.format) is not Protocol.HLS:
        raise UrlError("audio-only applies to HLS formats only")
    return opts


def parse_path(path: str) -> Path | None:
    """Parse a request path; None when it is not an asset URL at all (404).

    Not cached here: the service keeps a byte-bounded cache of the successful parses.
    """
    if m := _MASTER.match(path):
        opts = _check_encryption(parse_options(m["opts"], allowed=_MASTER_OPTS))
        return MasterPath(_locator(m["locator"]), m["asset"], opts, bool(m["live"]))
    if m := _MEDIA.match(path):
        opts = _check_encryption(parse_options(m["opts"], allowed=_CHILD_OPTS))
        if opts.format is None or opts.format.protocol is not Protocol.HLS:
            raise UrlError("a media playlist URL needs format=m3u8-aapl or format=m3u8-cmaf")
        return MediaPath(
            _locator(m["locator"]),
            m["asset"],
            int(m["rid"]),
            m["track"].lower(),
            opts,
            bool(m["live"]),
        )
    if m := _FRAGMENT.match(path):
        opts = _check_encryption(parse_options(m["opts"], allowed=_CHILD_OPTS))
        time = INIT if m["time"].lower() == "i" else int(m["time"])
        ext = (m["ext"] or "").lower()
        if opts.format is None and (ext or time == INIT):
            raise UrlError("a Smooth Streaming fragment has no extension or init segment")
        if ext and ext != _extension(opts.format, time):
            raise UrlError(f"extension .{ext} does not match format={opts.format}")
        return FragmentPath(
            _locator(m["locator"]),
            m["asset"],
            int(m["rid"]),
            m["track"].lower(),
            time,
            opts,
            bool(m["live"]),
        )
    if ".ism" in path.lower():
        raise UrlError("malformed streaming URL")
    return None


_INGEST = re.compile(
    r"^/(?P<channel>" + _NAME + r")\.isml/Streams\((?P<stream>[A-Za-z0-9._~-]{1,128})\)"
    r"(?:/(?P<name>[A-Za-z0-9._~-]{1,256}))?$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class IngestPath:
    """``/{channel}.isml/Streams({stream})``: where an encoder pushes one stream (the AMS
    fragmented-MP4 ingest, DASH-IF CMAF ingest); ``name`` is an object name after it (a CMAF
    ingest segment's, ignored: the boxes carry the timing)."""

    channel: str
    stream: str
    name: str | None = None


def parse_ingest_path(path: str) -> IngestPath | None:
    """Parse an ingest request path; None when it is not one."""
    if m := _INGEST.match(path):
        return IngestPath(m["channel"], m["stream"], m["name"])
    return None


def channel_uri(channel: str, fmt: Format | None = None) -> str:
    """A channel's master manifest relative to the server root (Smooth Streaming for None)."""
    return f"{channel}.isml/manifest" + (f"(format={fmt})" if fmt else "")


def ingest_uri(channel: str, stream: str) -> str:
    """Where an encoder pushes ``stream`` of ``channel``, relative to the server root."""
    return f"{channel}.isml/Streams({stream})"


def root_url(host: str, port: int) -> str:
    """``http://host:port`` of a listening address (an IPv6 host in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def master_uri(asset: str, fmt: Format | None = None) -> str:
    """An asset's master manifest relative to the server root (Smooth Streaming for None)."""
    return f"{asset}.ism/manifest" + (f"(format={fmt})" if fmt else "")


def media_uri(rendition: int, track: str, options: Options) -> str:
    """A media playlist URI relative to the master playlist."""
    return f"QualityLevels({rendition})/Manifest({track},{options.suffix()})"


def _extension(fmt: Format | None, time: int) -> str:
    if fmt is Format.HLS_TS:
        return "ts"
    return "mp4" if time == INIT else "m4s"


def dash_templates(track: str, options: Options) -> tuple[str, str]:
    """(initialization, media) SegmentTemplate attributes of a DASH AdaptationSet."""
    rep = "QualityLevels($RepresentationID$)"
    return (
        f"{rep}/{fragment_uri(track, INIT, options)}",
        f"{rep}/{fragment_uri(track, 0, options).replace('=0,', '=$Time$,', 1)}",
    )


def fragment_uri(track: str, time: int, options: Options) -> str:
    """A segment URI relative to its media playlist (``time`` INIT for the init segment).

    It ends in a media extension (.ts, .m4s, .mp4): ffmpeg's HLS demuxer refuses segment URLs
    whose path has none (``allowed_segment_extensions``, on by default since the 2024 security
    fixes, Debian's 5.1 included), which the bare AMS ``Fragments(...)`` form would trip.
    Requests without the extension are still accepted.
    """
    t = "i" if time == INIT else str(time)
    return f"Fragments({track}={t},{options.suffix()}).{_extension(options.format, time)}"


def key_uri(
    kid: uuid.UUID, *, depth: int, base_url: str | None = None, edk: str | None = None
) -> str:
    """The key service URI for ``kid`` as seen from a playlist ``depth`` folders deep; ``edk``:
    the key's envelope, which lets any node with the master key serve it."""
    rel = f"key?kid={quote(str(kid))}" + (f"&{EDK_PARAM}={edk}" if edk else "")
    if base_url:
        return base_url.rstrip("/") + "/" + rel
    return "../" * depth + rel


EDK_PARAM = "edk"  # base64url: needs no quoting


def playlist_depth(path: MediaPath) -> int:
    """Folders between the server root and a media playlist."""
    return 3 if path.locator else 2
