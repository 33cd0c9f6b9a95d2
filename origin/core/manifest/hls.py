"""HLS playlists (RFC 8216), built from a plain description of the presentation.

Written by hand rather than through the ``m3u8`` package's dumper for exact control of tag order
and number formatting: EXT-X-MAP goes *before* EXT-X-KEY so the initialization section stays in the
clear (§4.3.2.4: a key applies to the EXT-X-MAP tags after it), and EXTINF keeps microseconds so
long VOD playlists do not drift. The tests parse every playlist back with ``m3u8``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True, slots=True)
class Key:
    """An EXT-X-KEY: METHOD=AES-128 with the key URI and an optional fixed IV."""

    uri: str
    iv: bytes | None = None


@dataclass(frozen=True, slots=True)
class AudioRendition:
    """An EXT-X-MEDIA TYPE=AUDIO entry."""

    group_id: str
    name: str
    uri: str
    language: str | None
    channels: int
    default: bool = True


@dataclass(frozen=True, slots=True)
class Variant:
    """An EXT-X-STREAM-INF entry."""

    uri: str
    bandwidth: int  # peak segment bit rate, bit/s
    average_bandwidth: int
    codecs: Sequence[str]
    resolution: tuple[int, int] | None = None
    frame_rate: float | None = None
    audio_group: str | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    duration: Fraction  # seconds
    uri: str


def _quote(value: str) -> str:
    if any(c in value for c in '"\r\n'):
        raise ValueError(f"cannot quote {value!r} in a playlist attribute")
    return f'"{value}"'


def master_playlist(variants: Sequence[Variant], audio: Sequence[AudioRendition] = ()) -> str:
    """A multivariant playlist. Needs no EXT-X-VERSION above 1, so it carries none."""
    lines = ["#EXTM3U", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for a in audio:
        attrs = [
            "TYPE=AUDIO",
            f"GROUP-ID={_quote(a.group_id)}",
            f"NAME={_quote(a.name)}",
        ]
        if a.language:
            attrs.append(f"LANGUAGE={_quote(a.language)}")
        attrs += [
            f"DEFAULT={'YES' if a.default else 'NO'}",
            "AUTOSELECT=YES",
            f"CHANNELS={_quote(str(a.channels))}",
            f"URI={_quote(a.uri)}",
        ]
        lines.append("#EXT-X-MEDIA:" + ",".join(attrs))
    for v in variants:
        attrs = [f"BANDWIDTH={v.bandwidth}", f"AVERAGE-BANDWIDTH={v.average_bandwidth}"]
        if v.resolution:
            attrs.append(f"RESOLUTION={v.resolution[0]}x{v.resolution[1]}")
        if v.frame_rate:
            attrs.append(f"FRAME-RATE={v.frame_rate:.3f}")
        attrs.append(f"CODECS={_quote(','.join(v.codecs))}")
        if v.audio_group:
            attrs.append(f"AUDIO={_quote(v.audio_group)}")
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(v.uri)
    return "\n".join(lines) + "\n"


def extinf(duration: Fraction) -> str:
    """EXTINF value: decimal seconds, microsecond precision."""
    return f"{float(duration):.6f}"


def target_duration(segments: Sequence[Segment]) -> int:
    """The ceiling of the longest segment duration as written in the playlist."""
    return max((math.ceil(float(extinf(s.duration))) for s in segments), default=1)


def media_playlist(
    segments: Sequence[Segment],
    *,
    key: Key | None = None,
    map_uri: str | None = None,
    media_sequence: int = 0,
) -> str:
    """A VOD media playlist: PLAYLIST-TYPE VOD, exact EXTINFs, ENDLIST."""
    # Version rules of RFC 8216 §7: IV attribute ⇒ 2, decimal EXTINF ⇒ 3, EXT-X-MAP without
    # I-FRAMES-ONLY ⇒ 6.
    version = 6 if map_uri else 3
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{version}",
        f"#EXT-X-TARGETDURATION:{target_duration(segments)}",
        f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    if map_uri:
        lines.append(f"#EXT-X-MAP:URI={_quote(map_uri)}")
    if key:
        attrs = f"METHOD=AES-128,URI={_quote(key.uri)}"
        if key.iv is not None:
            attrs += f",IV=0x{key.iv.hex().upper()}"
        lines.append("#EXT-X-KEY:" + attrs)
    for s in segments:
        lines.append(f"#EXTINF:{extinf(s.duration)},")
        lines.append(s.uri)
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
