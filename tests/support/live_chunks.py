"""Hand-made live ingest for channel tests: tracks as a moov announces them and chunks of
numbered sample bytes, so a test can check every published byte came from the right sample."""

from __future__ import annotations

import dataclasses
from array import array
from itertools import accumulate

from origin.core.index import SampleIndex
from origin.core.live.model import Chunk, StreamTrack
from origin.core.track import Kind, Track
from tests.support.tracks import audio_track, video_track

VIDEO_TS = 12800
FRAME = 512  # 25 fps
AUDIO_TS = 48000
AAC_FRAME = 1024


def announced(
    track: Track, *, stsd: bytes = b"stsd-v1", track_id: int | None = None
) -> StreamTrack:
    empty = SampleIndex(
        dts=array("q"),
        duration=array("I"),
        cto=array("i"),
        size=array("I"),
        offset=array("Q"),
        keyframes=array("I"),
    )
    tid = track.track_id if track_id is None else track_id
    return StreamTrack(dataclasses.replace(track, samples=empty, stsd=stsd, track_id=tid))


def video_header(**kw: object) -> StreamTrack:
    return announced(video_track(1), **kw)  # type: ignore[arg-type]


def audio_header(**kw: object) -> StreamTrack:
    return announced(audio_track(1), **kw)  # type: ignore[arg-type]


def sample_bytes(tag: str, dts: int, size: int) -> bytes:
    """A payload naming its track and decode time, padded to ``size``."""
    head = f"{tag}@{dts};".encode()
    return (head * (size // len(head) + 1))[:size]


def video_chunk(
    start_frame: int,
    frames: int,
    *,
    track_id: int = 1,
    offset: int = 0,
    keyframe_first: bool = True,
    size: int = 200,
    tag: str = "v",
) -> Chunk:
    """``frames`` frames from frame ``start_frame``; ``offset`` ticks are added to every dts."""
    dts = array("q", [offset + (start_frame + i) * FRAME for i in range(frames)])
    sizes = array("I", [size] * frames)
    payload = b"".join(sample_bytes(tag, d, size) for d in dts)
    samples = SampleIndex(
        dts=dts,
        duration=array("I", [FRAME] * frames),
        cto=array("i", [0] * frames),
        size=sizes,
        offset=array("Q", accumulate(sizes[:-1], initial=0)),
        keyframes=array("I", [0] if keyframe_first else []),
    )
    return Chunk(track_id, samples, payload)


def audio_chunk(
    start: int, frames: int, *, track_id: int = 2, offset: int = 0, size: int = 50
) -> Chunk:
    """``frames`` AAC frames from decode time ``start`` (48 kHz ticks) + ``offset``."""
    dts = array("q", [offset + start + i * AAC_FRAME for i in range(frames)])
    sizes = array("I", [size] * frames)
    payload = b"".join(sample_bytes("a", d, size) for d in dts)
    samples = SampleIndex(
        dts=dts,
        duration=array("I", [AAC_FRAME] * frames),
        cto=array("i", [0] * frames),
        size=sizes,
        offset=array("Q", accumulate(sizes[:-1], initial=0)),
        keyframes=array("I", range(frames)),
    )
    return Chunk(track_id, samples, payload)


def is_video(track: Track) -> bool:
    return track.kind is Kind.VIDEO
