"""Smooth Streaming live: client manifests (root attributes, the DVR window's chunks), tfrf."""

from __future__ import annotations

import struct
import uuid
import xml.etree.ElementTree as ET

import pytest

from origin.core.manifest import smooth
from origin.core.mp4.defs import TFRF_UUID
from origin.core.mux import smooth as smooth_mux
from tests.support.smooth_client import expand_chunks

HOUR = 36_000_000_000  # 100 ns units
VIDEO_D = 20_000_000  # 2 s fragments
AUDIO_D = 20_053_333
# A 6-fragment window ten hours into the channel: t must stay on the channel's timeline.
VIDEO_STARTS = tuple(10 * HOUR + k * VIDEO_D for k in range(6))
AUDIO_STARTS = tuple(10 * HOUR + 3 + k * AUDIO_D for k in range(6))


def window() -> list[smooth.Stream]:
    video = smooth.Stream(
        "video",
        (smooth.VideoLevel(400_000, 640, 360, "00000001674D401E0000000168EE3C80"),),
        VIDEO_STARTS,
        (VIDEO_D,) * 6,
    )
    audio = smooth.Stream(
        "audio",
        (smooth.AudioLevel(64_000, 48_000, 2, "1190"),),
        AUDIO_STARTS,
        (AUDIO_D,) * 6,
    )
    return [video, audio]


def root_of(**kw: object) -> ET.Element:
    return ET.fromstring(smooth.manifest(window(), **kw))  # type: ignore[arg-type]


def test_live_root_is_live_with_dvr_window_and_zero_duration() -> None:
    root = root_of(duration=6 * VIDEO_D, live=smooth.Live(dvr_window=120 * 10_000_000))
    assert root.attrib["IsLive"] == "TRUE"
    assert root.attrib["DVRWindowLength"] == "1200000000"
    assert root.attrib["Duration"] == "0"
    assert root.attrib["TimeScale"] == "10000000"
    # No look-ahead asked for: the attribute is absent, not "0".
    assert "LookAheadFragmentCount" not in root.attrib


def test_look_ahead_count_is_written_when_asked_for() -> None:
    root = root_of(duration=0, live=smooth.Live(dvr_window=0, look_ahead=2))
    assert root.attrib["LookAheadFragmentCount"] == "2"
    assert root.attrib["DVRWindowLength"] == "0"  # 0 = unbounded DVR (MS-SSTR)


@pytest.mark.parametrize("repeat", [False, True])
def test_live_chunks_are_the_window_with_absolute_t(repeat: bool) -> None:
    root = root_of(duration=0, repeat=repeat, live=smooth.Live(dvr_window=12 * 10_000_000))
    video, audio = root.findall("StreamIndex")
    assert video.attrib["Chunks"] == audio.attrib["Chunks"] == "6"
    assert int(video.find("c").attrib["t"]) == 10 * HOUR  # type: ignore[union-attr]
    assert expand_chunks(video) == [(t, VIDEO_D) for t in VIDEO_STARTS]
    assert expand_chunks(audio) == [(t, AUDIO_D) for t in AUDIO_STARTS]


def test_ended_live_is_on_demand_with_its_duration() -> None:
    span = 6 * VIDEO_D
    root = root_of(duration=span, live=smooth.Live(dvr_window=HOUR, look_ahead=2, ended=True))
    assert root.attrib["Duration"] == str(span)
    # MS-SSTR: DVRWindowLength / LookAheadFragmentCount are omitted on demand; IsLive with a
    # Duration would make dash.js play it as "start-over" and demand tfrf boxes.
    for name in ("IsLive", "DVRWindowLength", "LookAheadFragmentCount"):
        assert name not in root.attrib
    assert expand_chunks(root.findall("StreamIndex")[0]) == [(t, VIDEO_D) for t in VIDEO_STARTS]


@pytest.mark.parametrize(("dvr_window", "look_ahead"), [(-1, 0), (0, -1)])
def test_negative_live_parameters_are_refused(dvr_window: int, look_ahead: int) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        smooth.Live(dvr_window, look_ahead)


def read_tfrf(box: bytes) -> list[tuple[int, int]]:
    """MS-SSTR 2.2.4.5, read independently: header, user type, version/flags, count, entries."""
    size, kind = struct.unpack_from(">I4s", box)
    assert (size, kind) == (len(box), b"uuid")
    assert box[8:24] == uuid.UUID("D4807EF2-CA39-4695-8E54-26CB9E46A79F").bytes
    version, count = box[24], box[28]
    assert version == 1 and box[25:28] == b"\0\0\0"
    width = 16 if version == 1 else 8
    assert len(box) == 29 + count * width
    return [struct.unpack_from(">QQ", box, 29 + k * width) for k in range(count)]


def test_tfrf_carries_the_next_fragments_times_and_durations() -> None:
    nexts = [(10 * HOUR + VIDEO_D, VIDEO_D), (10 * HOUR + 2 * VIDEO_D, VIDEO_D - 1)]
    assert read_tfrf(smooth_mux.tfrf(nexts)) == nexts


def test_tfrf_without_look_ahead_is_an_empty_box() -> None:
    assert read_tfrf(smooth_mux.tfrf([])) == []


def test_tfrf_uuid_is_the_spec_one() -> None:
    assert uuid.UUID("D4807EF2-CA39-4695-8E54-26CB9E46A79F").bytes == TFRF_UUID


@pytest.mark.parametrize("nexts", [[(0, 1)] * 256, [(-1, 1)], [(0, 0)]])
def test_tfrf_refuses_what_it_cannot_encode(nexts: list[tuple[int, int]]) -> None:
    with pytest.raises(ValueError):
        smooth_mux.tfrf(nexts)
