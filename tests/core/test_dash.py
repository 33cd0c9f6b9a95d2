"""DASH MPDs: parsed back element by element, and held to the structural check of
tests.support.dash_check.

No registry package ships DASH-MPD.xsd (see tests/support/dash_check.py), so schema conformance
is the structural check's: element order per the schema's sequences, required attributes and
types, templates, and SegmentTimeline consistency.
"""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import pytest

from origin.core.manifest import common, dash
from origin.core.mp4 import parse_bytes
from origin.core.mux.fmp4 import init_segment, media_segment
from origin.core.mux.run import Run
from origin.core.track import Kind
from tests.support.dash_check import assert_valid_mpd, check_mpd, parse_duration
from tests.support.media import FFPROBE, decode_errors, make_mp4

Q = "{urn:mpeg:dash:schema:mpd:2011}"
MEDIA = "QualityLevels($RepresentationID$)/Fragments(video=$Time$,format=mpd-time-csf)"
INIT = "QualityLevels($RepresentationID$)/Fragments(video=i,format=mpd-time-csf)"
AMEDIA = "QualityLevels($RepresentationID$)/Fragments(audio=$Time$,format=mpd-time-csf)"
AINIT = "QualityLevels($RepresentationID$)/Fragments(audio=i,format=mpd-time-csf)"


# --- durations, frame rates, runs --------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (Fraction(10021, 1000), "PT10.021S"),
        (Fraction(4), "PT4S"),
        (Fraction(0), "PT0S"),
        (Fraction(1, 3), "PT0.333S"),
        (Fraction(2, 3), "PT0.667S"),
        (Fraction(61, 2), "PT30.5S"),
        (Fraction(3723), "PT1H2M3S"),
        (Fraction(3600), "PT1H"),
        (Fraction(60), "PT1M"),
        (Fraction(599996, 10000), "PT1M"),  # 59.9996 s rounds to the minute
        (Fraction(7265, 1000) + 7200, "PT2H7.265S"),
        (Fraction(90000 * 3 + 1, 90000), "PT3S"),
    ],
)
def test_iso_durations_are_exact_to_the_millisecond(seconds: Fraction, text: str) -> None:
    assert dash.iso_duration(seconds) == text
    assert abs(parse_duration(text) - seconds) <= Fraction(1, 2000)


def test_negative_durations_are_refused() -> None:
    with pytest.raises(ValueError):
        dash.iso_duration(Fraction(-1, 1000))


def test_frame_rates_are_integers_or_fractions() -> None:
    assert dash.frame_rate(Fraction(24)) == "24"
    assert dash.frame_rate(Fraction(30000, 1001)) == "30000/1001"
    assert dash.frame_rate(Fraction(50, 2)) == "25"
    with pytest.raises(ValueError):
        dash.frame_rate(Fraction(0))


@pytest.mark.parametrize(
    ("starts", "durations", "want"),
    [
        ([0], [5], [(0, 5, 1)]),
        ([0, 5, 10], [5, 5, 5], [(0, 5, 3)]),
        ([0, 5, 10, 12], [5, 5, 2, 2], [(0, 5, 2), (None, 2, 2)]),
        ([0, 5, 20, 25], [5, 5, 5, 5], [(0, 5, 2), (20, 5, 2)]),  # discontinuity: t again
        ([7, 11, 15, 17], [4, 4, 2, 4], [(7, 4, 2), (None, 2, 1), (None, 4, 1)]),
        ([0, 3, 7], [4, 4, 1], [(0, 4, 1), (3, 4, 1), (None, 1, 1)]),  # an overlap breaks a run
        ([0, 4, 9], [4, 4, 1], [(0, 4, 2), (9, 1, 1)]),  # and so does a gap
    ],
)
def test_runs_collapse_equal_contiguous_durations(
    starts: list[int], durations: list[int], want: list[tuple[int | None, int, int]]
) -> None:
    assert list(common.runs(starts, durations)) == want


# --- building MPDs -------------------------------------------------------------------------------

VIDEO_TL = dash.Timeline(12800, (0, 51200, 102400, 153600, 204800), (51200,) * 4 + (10240,))
# Audio cut at the video's boundaries: 48 kHz, 1024-sample frames.
AUDIO_STARTS = (0, 192512, 384000, 576512, 768000)
AUDIO_TL = dash.Timeline(48000, AUDIO_STARTS, (192512, 191488, 192512, 191488, 38912))


def video_set(**kw: object) -> dash.AdaptationSet:
    reps = (
        dash.Representation("300000", 420000, "avc1.64000d", 320, 180, Fraction(25), "1:1"),
        dash.Representation("900000", 1100000, "avc1.64001f", 1280, 720, Fraction(25), "1:1"),
    )
    args: dict[str, object] = {
        "content_type": "video",
        "representations": reps,
        "media": MEDIA,
        "initialization": INIT,
        "timeline": VIDEO_TL,
        "segment_alignment": True,
        "start_with_sap": True,
    }
    return dash.AdaptationSet(**(args | kw))  # type: ignore[arg-type]


def audio_set(**kw: object) -> dash.AdaptationSet:
    rep = dash.Representation("64000", 70000, "mp4a.40.2", sample_rate=48000, channels=2)
    args: dict[str, object] = {
        "content_type": "audio",
        "representations": (rep,),
        "media": AMEDIA,
        "initialization": AINIT,
        "timeline": AUDIO_TL,
        "lang": "en",
        "segment_alignment": True,
        "start_with_sap": True,
        "role": "main",
    }
    return dash.AdaptationSet(**(args | kw))  # type: ignore[arg-type]


def build(*sets: dash.AdaptationSet, duration: Fraction | None = None) -> str:
    end = max(Fraction(VIDEO_TL.end, 12800), Fraction(AUDIO_TL.end, 48000))
    return dash.mpd(
        sets or (video_set(), audio_set()),
        duration=end if duration is None else duration,
        min_buffer_time=Fraction(4),
        profiles=[dash.CMAF_PROFILE, dash.LIVE_PROFILE],
    )


def children(e: ET.Element) -> list[str]:
    return [c.tag.removeprefix(Q) for c in e]


def expand(template: ET.Element) -> list[tuple[int, int]]:
    """(t, d) per segment, with DASH's S@r (repeats after the first)."""
    out: list[tuple[int, int]] = []
    for s in template.iter(Q + "S"):
        d = int(s.attrib["d"])
        t = int(s.attrib["t"]) if "t" in s.attrib else out[-1][0] + out[-1][1]
        out += [(t + k * d, d) for k in range(1 + int(s.get("r", "0")))]
    return out


def test_mpd_root_and_period() -> None:
    text = build()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<MPD xmlns=')
    root = ET.fromstring(text)
    assert root.tag == Q + "MPD"
    end = max(Fraction(VIDEO_TL.end, 12800), Fraction(AUDIO_TL.end, 48000))
    assert root.attrib == {
        "type": "static",
        "profiles": "urn:mpeg:dash:profile:cmaf:2019,urn:mpeg:dash:profile:isoff-live:2011",
        "mediaPresentationDuration": dash.iso_duration(end),
        "minBufferTime": "PT4S",
    }
    assert root.attrib["mediaPresentationDuration"] == "PT16.811S"  # audio: 806912 / 48000 s
    assert children(root) == ["Period"]
    period = root[0]
    assert period.attrib == {"id": "0", "start": "PT0S"}
    assert children(period) == ["AdaptationSet", "AdaptationSet"]


def test_video_adaptation_set_and_representations() -> None:
    video = ET.fromstring(build())[0][0]
    assert video.attrib == {
        "id": "0",
        "contentType": "video",
        "mimeType": "video/mp4",
        "segmentAlignment": "true",
        "startWithSAP": "1",
        "maxWidth": "1280",
        "maxHeight": "720",
        "maxFrameRate": "25",
    }
    assert children(video) == ["SegmentTemplate", "Representation", "Representation"]
    assert [r.attrib for r in video.findall(Q + "Representation")] == [
        {
            "id": "300000",
            "bandwidth": "420000",
            "codecs": "avc1.64000d",
            "width": "320",
            "height": "180",
            "frameRate": "25",
            "sar": "1:1",
        },
        {
            "id": "900000",
            "bandwidth": "1100000",
            "codecs": "avc1.64001f",
            "width": "1280",
            "height": "720",
            "frameRate": "25",
            "sar": "1:1",
        },
    ]
    template = video.find(Q + "SegmentTemplate")
    assert template is not None
    assert template.attrib == {"timescale": "12800", "initialization": INIT, "media": MEDIA}
    assert [s.attrib for s in template.iter(Q + "S")] == [
        {"t": "0", "d": "51200", "r": "3"},
        {"d": "10240"},
    ]
    assert expand(template) == list(zip(VIDEO_TL.starts, VIDEO_TL.durations, strict=True))


def test_audio_adaptation_set_has_language_role_and_channels() -> None:
    audio = ET.fromstring(build())[0][1]
    assert audio.attrib == {
        "id": "1",
        "contentType": "audio",
        "mimeType": "audio/mp4",
        "lang": "en",
        "segmentAlignment": "true",
        "startWithSAP": "1",
    }
    assert children(audio) == ["Role", "SegmentTemplate", "Representation"]
    role = audio.find(Q + "Role")
    assert role is not None
    assert role.attrib == {"schemeIdUri": "urn:mpeg:dash:role:2011", "value": "main"}
    rep = audio.find(Q + "Representation")
    assert rep is not None
    assert rep.attrib == {
        "id": "64000",
        "bandwidth": "70000",
        "codecs": "mp4a.40.2",
        "audioSamplingRate": "48000",
    }
    assert children(rep) == ["AudioChannelConfiguration"]
    assert rep[0].attrib == {
        "schemeIdUri": "urn:mpeg:dash:23003:3:audio_channel_configuration:2011",
        "value": "2",
    }
    template = audio.find(Q + "SegmentTemplate")
    assert template is not None
    assert [s.attrib for s in template.iter(Q + "S")] == [
        {"t": "0", "d": "192512"},
        {"d": "191488"},
        {"d": "192512"},
        {"d": "191488"},
        {"d": "38912"},
    ]
    assert expand(template) == list(zip(AUDIO_TL.starts, AUDIO_TL.durations, strict=True))


def test_representations_with_their_own_timelines_get_their_own_templates() -> None:
    other = dash.Timeline(12800, (0, 40960, 92160), (40960, 51200, 122880))
    base = video_set()
    reps = (base.representations[0], dataclasses.replace(base.representations[1], timeline=other))
    text = build(video_set(representations=reps), audio_set())
    video = ET.fromstring(text)[0][0]
    assert children(video) == ["Representation", "Representation"]
    first, second = video.findall(Q + "Representation")
    assert children(first) == children(second) == ["SegmentTemplate"]
    assert expand(first[0]) == list(zip(VIDEO_TL.starts, VIDEO_TL.durations, strict=True))
    assert expand(second[0]) == list(zip(other.starts, other.durations, strict=True))
    assert (
        first[0].attrib
        == second[0].attrib
        == {
            "timescale": "12800",
            "initialization": INIT,
            "media": MEDIA,
        }
    )
    assert_valid_mpd(text)
    # The same timeline given per Representation is still shared at the set level.
    same = tuple(dataclasses.replace(r, timeline=VIDEO_TL) for r in base.representations)
    shared = ET.fromstring(build(video_set(representations=same, timeline=None)))[0][0]
    assert children(shared) == ["SegmentTemplate", "Representation", "Representation"]


def test_presentation_time_offset_and_discontinuities() -> None:
    tl = dash.Timeline(1000, (500, 1500, 4000), (1000, 1000, 1000), presentation_time_offset=500)
    text = build(video_set(timeline=tl), duration=Fraction(9, 2))
    template = ET.fromstring(text)[0][0].find(Q + "SegmentTemplate")
    assert template is not None
    assert template.get("presentationTimeOffset") == "500"
    assert [s.attrib for s in template.iter(Q + "S")] == [
        {"t": "500", "d": "1000", "r": "1"},
        {"t": "4000", "d": "1000"},
    ]
    problems = check_mpd(text)
    assert len(problems) == 1 and "gap of 1500 ticks before t=4000" in problems[0], problems
    assert check_mpd(text, max_gap=1500) == []


def test_attributes_are_escaped_and_output_is_deterministic() -> None:
    media = 'a?x=1&y="$Time$"<'
    text = build(video_set(media=media, initialization="i&<'"), audio_set())
    assert "&amp;" in text and "&lt;" in text
    template = ET.fromstring(text)[0][0].find(Q + "SegmentTemplate")
    assert template is not None
    assert template.get("media") == media
    assert template.get("initialization") == "i&<'"
    assert build() == build()


def test_explicit_adaptation_set_ids_and_mime_type() -> None:
    text = build(video_set(id=7, mime_type="video/iso.segment"), audio_set(id=3))
    period = ET.fromstring(text)[0]
    assert [a.get("id") for a in period] == ["7", "3"]
    assert period[0].get("mimeType") == "video/iso.segment"
    with pytest.raises(ValueError, match="unique"):
        build(video_set(id=1), audio_set())  # audio's position is 1 too


def test_invalid_descriptions_are_rejected() -> None:
    with pytest.raises(ValueError, match="Time"):
        video_set(media="seg-$Number$.m4s")
    with pytest.raises(ValueError, match="timeline"):
        video_set(timeline=None)
    with pytest.raises(ValueError, match="Representation"):
        video_set(representations=())
    with pytest.raises(ValueError, match="mimeType"):
        video_set(content_type="text")
    with pytest.raises(ValueError, match="duration"):
        dash.Timeline(1, (0, 1), (1,))
    with pytest.raises(ValueError, match="durations"):
        dash.Timeline(1, (0,), (0,))
    with pytest.raises(ValueError, match="timescale"):
        dash.Timeline(0, (0,), (1,))
    bad = dash.Representation("a b", 1, "avc1.64001f", 2, 2, Fraction(25), "1:1")
    with pytest.raises(ValueError, match="whitespace"):
        build(video_set(representations=(bad,)))
    with pytest.raises(ValueError, match="profiles"):
        dash.mpd([video_set()], duration=Fraction(1), min_buffer_time=Fraction(1), profiles=[])
    with pytest.raises(ValueError, match="Adaptation Set"):
        dash.mpd([], duration=Fraction(1), min_buffer_time=Fraction(1), profiles=["urn:x"])


# --- the structural check -----------------------------------------------------------------------


def test_built_mpds_pass_the_structural_check() -> None:
    assert_valid_mpd(build())
    assert_valid_mpd(build(video_set()))
    assert_valid_mpd(build(audio_set(), duration=Fraction(AUDIO_TL.end, 48000)))


def test_a_realistic_presentation_with_ntsc_rates_passes() -> None:
    # 29.97 fps at 30000 Hz, 2 s GOPs; AAC 44.1 kHz cut at the same boundaries.
    n = 10
    vstarts = tuple(60060 * k for k in range(n))
    vdur = (60060,) * (n - 1) + (30030,)
    video = dash.Timeline(30000, vstarts, vdur)
    bounds = [round(Fraction(t, 30000) * 44100 / 1024) * 1024 for t in vstarts]
    ends = [*bounds[1:], bounds[-1] + 46 * 1024]
    audio = dash.Timeline(
        44100, tuple(bounds), tuple(b - a for a, b in zip(bounds, ends, strict=True))
    )
    rep = dash.Representation("1", 1, "avc1.4d401f", 640, 360, Fraction(30000, 1001), "1:1")
    arep = dash.Representation("2", 1, "mp4a.40.5", sample_rate=44100, channels=1)
    sets = (
        video_set(representations=(rep,), timeline=video),
        audio_set(representations=(arep,), timeline=audio),
    )
    duration = max(Fraction(video.end, 30000), Fraction(audio.end, 44100))
    text = dash.mpd(sets, duration=duration, min_buffer_time=Fraction(2), profiles=["urn:a:b"])
    assert_valid_mpd(text)
    assert ET.fromstring(text)[0][0].get("maxFrameRate") == "30000/1001"


MPD_DURATION = 'mediaPresentationDuration="PT16.811S"'
BROKEN = [
    # (replace this, with that, a fragment of the expected problem)
    ('type="static"', 'type="live"', "not a valid mpdType"),
    (' minBufferTime="PT4S"', "", "missing required @minBufferTime"),
    ('minBufferTime="PT4S"', 'minBufferTime="4s"', "not a valid duration"),
    (MPD_DURATION, 'mediaPresentationDuration="PT17S"', "within a frame"),
    (MPD_DURATION, 'mediaPresentationDuration="PT9S"', "after the MPD's"),
    ('start="PT0S"', 'start="PT0S" foo="1"', "unknown attribute foo"),
    ('lang="en"', 'lang="en us"', "not a valid language"),
    ('frameRate="25"', 'frameRate="25.0"', "not a valid frameRate"),
    ('sar="1:1"', 'sar="1/1"', "not a valid ratio"),
    ('startWithSAP="1"', 'startWithSAP="7"', "not a valid sap"),
    ('maxWidth="1280"', 'maxWidth="640"', "@maxWidth below"),
    ('codecs="avc1.64001f"', 'codecs="avc1.64001"', "malformed AVC codecs"),
    ('codecs="mp4a.40.2"', 'codecs="mp4a.2"', "malformed AAC codecs"),
    ('id="900000"', 'id="300000"', "duplicate Representation@id"),
    (' width="1280" height="720"', "", "video without @width"),
    ('audioSamplingRate="48000"', "", "audio without @audioSamplingRate"),
    ('<S t="0" d="51200" r="3" />', '<S t="0" d="51200" r="4" />', "after the MPD's"),
    ('<S t="0" d="51200" r="3" />', '<S t="0" d="51200" r="-1" />', "negative @r"),
    ('<S d="191488" />', '<S t="192000" d="191488" />', "overlaps"),
    ('<S d="10240" />', '<S t="204801" d="10240" />', "gap of 1 ticks"),
    ('<S t="0" d="51200" r="3" />', '<S t="12800" d="51200" r="3" />', "not at the Period's start"),
    (f'media="{MEDIA}"', 'media="x$Tme$"', "invalid $"),
    (f'initialization="{INIT}"', 'initialization="$Time$"', "may not use"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "problem"), BROKEN)
def test_the_structural_check_finds_broken_mpds(old: str, new: str, problem: str) -> None:
    text = build()
    assert old in text
    problems = check_mpd(text.replace(old, new, 1))
    assert any(problem in p for p in problems), problems


def test_the_structural_check_finds_order_cardinality_and_xml_errors() -> None:
    text = build()
    # Role moved after the audio set's Representation: out of the schema's sequence.
    role_at = text.index("<Role")
    role = text[role_at : text.index("/>", role_at) + 2]
    moved = text.replace(role, "", 1)
    close = moved.index("</AdaptationSet>", moved.index('contentType="audio"'))
    moved = moved[:close] + role + moved[close:]
    assert any("out of the schema's order" in p for p in check_mpd(moved))
    extra = "<SegmentTimeline><S d='1' /></SegmentTimeline>"
    twice = text.replace("</SegmentTimeline>", "</SegmentTimeline>" + extra, 1)
    assert any("2 SegmentTimeline elements, at most one" in p for p in check_mpd(twice))
    misspelt = text.replace("<Role ", "<Rolle ", 1)
    assert any("Rolle is not allowed" in p for p in check_mpd(misspelt))
    no_period = text[: text.index("<Period")] + "</MPD>\n"
    assert any("at least one Period" in p for p in check_mpd(no_period))
    assert "well-formed" in check_mpd("<MPD")[0]
    assert "root element" in check_mpd('<?xml version="1.0"?><MPD/>')[0]
    assert check_mpd(text.split("\n", 1)[1]) == ["document: no XML declaration"]


def test_segment_boundaries_chain_exactly() -> None:
    # t + d of each segment is the next one's t: what the check verifies, stated directly.
    for tl in (VIDEO_TL, AUDIO_TL):
        for (t0, d0), (t1, _) in itertools.pairwise(zip(tl.starts, tl.durations, strict=True)):
            assert t0 + d0 == t1


# --- a real DASH client ------------------------------------------------------------------------


def packet_counts(path: Path) -> dict[str, int]:
    """Packets per stream type, each stream read alone: libavformat's DASH demuxer reads the
    stream with the earliest timestamp next and ends at the first stream's end, which can leave
    the other's last packet unread when all are read together."""
    counts = {}
    for kind, spec in (("video", "v"), ("audio", "a")):
        out = subprocess.run(
            [
                FFPROBE, "-v", "error", "-select_streams", spec, "-count_packets",
                "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout  # fmt: skip
        counts[kind] = int(out.split()[0])
    return counts


def test_libavformat_plays_a_built_mpd_over_cmaf_segments(media_dir: Path, tmp_path: Path) -> None:
    """ffmpeg's DASH demuxer resolves $RepresentationID$ / $Time$ from the S elements (with @r)
    and must find every segment and every sample of the source."""
    source = make_mp4(media_dir / "dash_source.mp4", gop=25)
    data = source.read_bytes()
    movie = parse_bytes(data)
    sets = []
    for track in movie.tracks:
        s = track.samples
        n = len(s)
        bounds = [*s.keyframes, n] if track.kind is Kind.VIDEO else [0, 80, 160, n]
        rid = track.kind.value
        (tmp_path / f"{rid}-init.mp4").write_bytes(init_segment(track))
        starts, durations = [], []
        for sequence, (a, b) in enumerate(itertools.pairwise(bounds), 1):
            payload = [data[s.offset[i] : s.offset[i] + s.size[i]] for i in range(a, b)]
            segment = media_segment(Run(track, a, b, payload), sequence=sequence)
            (tmp_path / f"{rid}-{s.dts[a]}.m4s").write_bytes(segment)
            starts.append(s.dts[a])
            durations.append(s.dts[b - 1] + s.duration[b - 1] - s.dts[a])
        if track.kind is Kind.VIDEO:
            rep = dash.Representation(
                rid, track.bitrate(), track.codec_string, track.width, track.height,
                Fraction(25), "1:1",
            )  # fmt: skip
        else:
            rep = dash.Representation(
                rid, track.bitrate(), track.codec_string, sample_rate=track.sample_rate,
                channels=track.channels,
            )  # fmt: skip
        sets.append(
            dash.AdaptationSet(
                rid,
                (rep,),
                "$RepresentationID$-$Time$.m4s",
                "$RepresentationID$-init.mp4",
                dash.Timeline(track.timescale, tuple(starts), tuple(durations)),
                segment_alignment=True,
                start_with_sap=True,
            )
        )
    duration = max(Fraction(t.duration, t.timescale) for t in movie.tracks)
    text = dash.mpd(
        sets,
        duration=duration,
        min_buffer_time=Fraction(2),
        profiles=[dash.CMAF_PROFILE, dash.LIVE_PROFILE],
    )
    assert 'r="3"' in text  # the video's four 1 s segments collapse
    assert_valid_mpd(text)
    mpd_path = tmp_path / "manifest.mpd"
    mpd_path.write_text(text)
    assert decode_errors(str(mpd_path)) == ""
    want = {"video": len(movie.video()[0].samples), "audio": len(movie.audio()[0].samples)}
    assert packet_counts(mpd_path) == packet_counts(source) == want
