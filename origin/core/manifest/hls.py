"""HLS playlists (RFC 8216), built from a plain description of the presentation.

Written by hand rather than through the ``m3u8`` package's dumper for exact control of tag order
and number formatting: EXT-X-MAP goes *before* EXT-X-KEY so the initialization section stays in the
clear (§4.3.2.4: a key applies to the EXT-X-MAP tags after it), and EXTINF keeps microseconds so
long VOD playlists do not drift. The tests parse every playlist back with ``m3u8``.

Live (sliding-window) media playlists come from the same writer: ``live_media_playlist`` differs
from the VOD one only in the header (no PLAYLIST-TYPE or EVENT, a fixed channel TARGETDURATION,
DISCONTINUITY-SEQUENCE) and in leaving ENDLIST out until the stream has ended.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Literal


@dataclass(frozen=True, slots=True)
class Key:
    """An EXT-X-KEY (or EXT-X-SESSION-KEY): the method (``AES-128``; ``SAMPLE-AES`` for cbcs
    fMP4, ``SAMPLE-AES-CTR`` for cenc fMP4), the key URI, an optional fixed IV and KEYFORMAT
    (``identity`` when None: the URI serves the raw key)."""

    uri: str
    iv: bytes | None = None
    method: str = "AES-128"
    keyformat: str | None = None

    def attributes(self) -> str:
        attrs = f"METHOD={self.method},URI={_quote(self.uri)}"
        if self.iv is not None:
            attrs += f",IV=0x{self.iv.hex().upper()}"
        if self.keyformat is not None:
            attrs += f',KEYFORMAT={_quote(self.keyformat)},KEYFORMATVERSIONS="1"'
        return attrs


Keys = Key | Sequence[Key] | None


def _keys(key: Keys) -> Sequence[Key]:
    if key is None:
        return ()
    return (key,) if isinstance(key, Key) else key


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
    # Live only. The wall-clock time of the segment's first sample (EXT-X-PROGRAM-DATE-TIME);
    # must be timezone-aware.
    program_date_time: datetime | None = None
    # True when this segment starts a new timeline (encoder reconnected with a jump, codec
    # parameters changed): EXT-X-DISCONTINUITY before it.
    discontinuity: bool = False
    # Live key rotation: the key of this segment; an EXT-X-KEY is written before it when it
    # differs from the one in force (§4.3.2.4: a key applies until the next EXT-X-KEY).
    key: Key | None = None


def _quote(value: str) -> str:
    if any(c in value for c in '"\r\n'):
        raise ValueError(f"cannot quote {value!r} in a playlist attribute")
    return f'"{value}"'


def master_playlist(
    variants: Sequence[Variant], audio: Sequence[AudioRendition] = (), *, session_keys: Keys = None
) -> str:
    """A multivariant playlist; ``session_keys``: EXT-X-SESSION-KEY, the keys of its media
    playlists, for players to fetch before those (§4.3.4.5). Needs no EXT-X-VERSION above 1
    (KEYFORMAT in a session key: 5)."""
    keys = _keys(session_keys)
    lines = ["#EXTM3U"]
    if any(k.keyformat for k in keys):
        lines.append("#EXT-X-VERSION:5")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    lines += ["#EXT-X-SESSION-KEY:" + k.attributes() for k in keys]
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


def _rounded(duration: Fraction) -> int:
    """The written EXTINF rounded to the nearest integer (half up), as §4.3.3.1 compares it."""
    return math.floor(float(extinf(duration)) + 0.5)


def target_duration(segments: Sequence[Segment]) -> int:
    """The ceiling of the longest segment duration as written in the playlist."""
    return max((math.ceil(float(extinf(s.duration))) for s in segments), default=1)


def program_date_time(when: datetime) -> str:
    """EXT-X-PROGRAM-DATE-TIME value (§4.3.2.6): ISO 8601, milliseconds, a zone (Z for UTC)."""
    offset = when.utcoffset()
    if offset is None:
        raise ValueError("EXT-X-PROGRAM-DATE-TIME needs a timezone-aware datetime")
    text = when.isoformat(timespec="milliseconds")
    return text[: -len("+00:00")] + "Z" if offset == timedelta(0) else text


def media_playlist(
    segments: Sequence[Segment],
    *,
    key: Keys = None,
    map_uri: str | None = None,
    media_sequence: int = 0,
) -> str:
    """A VOD media playlist: PLAYLIST-TYPE VOD, exact EXTINFs, ENDLIST."""
    return _media_playlist(
        segments,
        target=target_duration(segments),
        media_sequence=media_sequence,
        discontinuity_sequence=0,
        playlist_type="VOD",
        key=key,
        map_uri=map_uri,
        ended=True,
    )


def live_media_playlist(
    segments: Sequence[Segment],
    *,
    media_sequence: int,
    target: int | None = None,
    discontinuity_sequence: int = 0,
    ended: bool = False,
    event: bool = False,
    key: Keys = None,
    map_uri: str | None = None,
) -> str:
    """A live media playlist of the segments now in the window (RFC 8216 §6.2.2).

    ``media_sequence`` is the sequence number of the first listed segment. The caller keeps a
    segment's URI and sequence number for its whole life (the sequence-number IV depends on it)
    and slides the window only by dropping segments from the start. ``target`` is the channel's
    fixed target duration: §4.3.3.1 forbids it to change, so it is not derived from the window;
    a segment whose EXTINF rounded to the nearest integer exceeds it is a cutting error and raises
    ValueError. ``discontinuity_sequence`` counts the EXT-X-DISCONTINUITY tags of the segments
    already slid out (a first listed segment keeps its own tag). ``ended`` adds EXT-X-ENDLIST
    once the stream has stopped; ``event`` writes PLAYLIST-TYPE EVENT for a window that only grows.
    The first segment and every segment after a discontinuity must carry a program date time
    (§4.3.2.6 SHOULD; players map the new timeline by it).
    """
    if media_sequence < 0 or discontinuity_sequence < 0:
        raise ValueError("media and discontinuity sequence numbers are non-negative")
    if target is None:
        target = target_duration(segments)
    elif target < 1:
        raise ValueError(f"target duration {target} must be at least 1 s")
    for n, s in enumerate(segments, media_sequence):
        if _rounded(s.duration) > target:
            raise ValueError(
                f"segment {n} lasts {extinf(s.duration)} s, longer than the target duration "
                f"{target} s (RFC 8216 §4.3.3.1)"
            )
        if s.program_date_time is None and (n == media_sequence or s.discontinuity):
            raise ValueError(f"segment {n} starts a timeline and needs a program date time")
    return _media_playlist(
        segments,
        target=target,
        media_sequence=media_sequence,
        discontinuity_sequence=discontinuity_sequence,
        playlist_type="EVENT" if event else None,
        key=key,
        map_uri=map_uri,
        ended=ended,
    )


def _media_playlist(
    segments: Sequence[Segment],
    *,
    target: int,
    media_sequence: int,
    discontinuity_sequence: int,
    playlist_type: Literal["VOD", "EVENT"] | None,
    key: Keys,
    map_uri: str | None,
    ended: bool,
) -> str:
    """The one writer of media playlist tags, VOD and live."""
    # Version rules of RFC 8216 §7: IV attribute ⇒ 2, decimal EXTINF ⇒ 3, EXT-X-MAP without
    # I-FRAMES-ONLY ⇒ 6.
    version = 6 if map_uri else 3
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{version}",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}",
    ]
    if discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
    if playlist_type:
        lines.append(f"#EXT-X-PLAYLIST-TYPE:{playlist_type}")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    keys = _keys(key)
    # One key for the whole playlist, before the first segment: it applies to every segment
    # after it (§6.2.1), so it stays valid however far the window slides. AES-128 goes after
    # EXT-X-MAP, which would otherwise be encrypted too (§4.3.2.4); SAMPLE-AES never encrypts
    # an init section, and players take the key for it from the tags before it.
    sample_aes = any(k.method != "AES-128" for k in keys)
    if sample_aes:
        lines += ["#EXT-X-KEY:" + k.attributes() for k in keys]
    if map_uri:
        lines.append(f"#EXT-X-MAP:URI={_quote(map_uri)}")
    if not sample_aes:
        lines += ["#EXT-X-KEY:" + k.attributes() for k in keys]
    in_force = keys[0] if keys else None
    for s in segments:
        if s.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if s.key is not None and s.key != in_force:
            lines.append("#EXT-X-KEY:" + s.key.attributes())
            in_force = s.key
        if s.program_date_time is not None:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(s.program_date_time)}")
        lines.append(f"#EXTINF:{extinf(s.duration)},")
        lines.append(s.uri)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
