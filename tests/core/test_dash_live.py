"""Dynamic (live) MPDs: ISO/IEC 23009-1 §5.4 and the DASH-IF live guidelines, over a sliding
SegmentTimeline window whose S@t stay media times of the channel's one timeline."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import pytest

from origin.core.manifest import dash
from tests.support.dash_check import (
    assert_valid_mpd,
    check_mpd,
    parse_date_time,
    parse_duration,
)

Q = "{urn:mpeg:dash:schema:mpd:2011}"
TS = 90000
SEG = 2 * TS  # 2 s segments
AST = datetime(2026, 12, 2, 2, 0, 0, tzinfo=UTC)
DEPTH = Fraction(120)
CLOCK = "https://origin.example/time?iso"


def window(now: Fraction, pto: int = 0) -> dash.Timeline:
    """The complete 2 s segments still in a DEPTH window at ``now`` s after AST; media time
    ``pto`` is at AST (an encoder whose clock did not start at 0)."""
    last = int(now * TS) // SEG  # segments [0, last) are complete
    first = max(0, int((now - DEPTH) * TS) // SEG)
    starts = tuple(pto + k * SEG for k in range(first, last))
    return dash.Timeline(TS, starts, (SEG,) * len(starts), presentation_time_offset=pto)


def live(now: Fraction, **kw: object) -> dash.Live:
    args: dict[str, object] = {
        "availability_start": AST,
        "publish_time": AST + timedelta(seconds=float(now)),
        "minimum_update_period": Fraction(1),
        "time_shift_buffer_depth": DEPTH,
        "suggested_presentation_delay": Fraction(6),
        "utc_timing": (dash.UtcTiming(CLOCK),),
    }
    return dash.Live(**(args | kw))  # type: ignore[arg-type]


def build(
    now: Fraction = Fraction(601, 2),
    *,
    pto: int = 0,
    duration: Fraction | None = None,
    period_start: Fraction = Fraction(0),
    **kw: object,
) -> str:
    tl = window(now, pto)
    video = dash.AdaptationSet(
        "video",
        (dash.Representation("v1", 1_000_000, "avc1.64001f", 1280, 720, Fraction(25), "1:1"),),
        media="v/$RepresentationID$/$Time$.m4s",
        initialization="v/$RepresentationID$/init.mp4",
        timeline=tl,
        segment_alignment=True,
        start_with_sap=True,
    )
    audio = dash.AdaptationSet(
        "audio",
        (dash.Representation("a1", 128_000, "mp4a.40.2", sample_rate=48000, channels=2),),
        media="a/$RepresentationID$/$Time$.m4s",
        initialization="a/$RepresentationID$/init.mp4",
        timeline=tl,
        lang="en",
    )
    return dash.mpd(
        (video, audio),
        duration=duration,
        min_buffer_time=Fraction(4),
        profiles=[dash.LIVE_PROFILE],
        period_start=period_start,
        live=live(now, **kw),
    )


def segments(root: ET.Element) -> list[tuple[int, int]]:
    """(t, d) of the first SegmentTimeline, with S@r expanded."""
    out: list[tuple[int, int]] = []
    for s in root.iter(Q + "SegmentTimeline").__next__():
        d = int(s.attrib["d"])
        t = int(s.attrib["t"]) if "t" in s.attrib else out[-1][0] + out[-1][1]
        out += [(t + k * d, d) for k in range(1 + int(s.get("r", "0")))]
    return out


# --- the dynamic MPD -----------------------------------------------------------------------------


def test_a_live_mpd_is_dynamic_with_the_live_attributes() -> None:
    text = build()
    assert_valid_mpd(text)
    root = ET.fromstring(text)
    assert list(root.attrib) == [
        "type", "profiles", "availabilityStartTime", "publishTime", "minimumUpdatePeriod",
        "timeShiftBufferDepth", "suggestedPresentationDelay", "minBufferTime",
    ]  # fmt: skip
    assert root.get("type") == "dynamic"
    assert root.get("availabilityStartTime") == "2026-12-02T02:00:00Z"
    assert root.get("publishTime") == "2026-12-02T02:05:00.5Z"
    assert parse_date_time(root.attrib["publishTime"]) - AST == timedelta(seconds=300.5)
    assert root.get("minimumUpdatePeriod") == "PT1S"
    assert parse_duration(root.attrib["timeShiftBufferDepth"]) == 120
    assert root.get("suggestedPresentationDelay") == dash.iso_duration(Fraction(6)) == "PT6S"
    assert root.get("minBufferTime") == "PT4S"
    assert "mediaPresentationDuration" not in root.attrib


def test_utc_timing_is_the_last_child_of_the_mpd() -> None:
    timings = (dash.UtcTiming(CLOCK), dash.UtcTiming("/time", dash.UTC_HTTP_XSDATE))
    root = ET.fromstring(build(utc_timing=timings))
    assert [c.tag.removeprefix(Q) for c in root] == ["Period", "UTCTiming", "UTCTiming"]
    assert [c.attrib for c in root[1:]] == [
        {"schemeIdUri": "urn:mpeg:dash:utc:http-iso:2014", "value": CLOCK},
        {"schemeIdUri": "urn:mpeg:dash:utc:http-xsdate:2014", "value": "/time"},
    ]
    assert root[0].attrib == {"id": "0", "start": "PT0S"}


def test_a_later_period_start_is_written() -> None:
    # Not yet used (one Period), but a Period after a discontinuity starts later.
    root = ET.fromstring(build(period_start=Fraction(100)))
    assert root.find(Q + "Period").attrib == {"id": "0", "start": "PT1M40S"}  # type: ignore[union-attr]


def test_live_times_are_written_in_utc_to_the_millisecond() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert dash.date_time(datetime(2026, 12, 2, 4, 0, 1, 123999, tzinfo=plus2)) == (
        "2026-12-02T02:00:01.123Z"
    )
    assert dash.date_time(datetime(2026, 12, 2, 4, 0, 1, 100000, tzinfo=plus2)) == (
        "2026-12-02T02:00:01.1Z"
    )
    with pytest.raises(ValueError, match="naive"):
        dash.date_time(datetime(2026, 12, 2))


@pytest.mark.parametrize("pto", [0, 10 * TS + 123])
def test_the_window_slides_and_segment_times_stay_absolute(pto: int) -> None:
    early, later = (ET.fromstring(build(Fraction(n) / 2, pto=pto)) for n in (601, 621))
    a, b = segments(early), segments(later)
    # At 300.5 s the 120 s window starts in segment 90 (180-182 s); 10 s later in segment 95.
    assert a[0][0] == pto + 90 * SEG and b[0][0] == pto + 95 * SEG
    assert a[-1][0] + a[-1][1] == pto + 300 * TS and b[-1][0] + b[-1][1] == pto + 310 * TS
    assert set(b) - set(a) == {(pto + k * SEG, SEG) for k in range(150, 155)}
    assert set(a) & set(b) == {(pto + k * SEG, SEG) for k in range(95, 150)}  # same addresses
    template = later.find(f"{Q}Period/{Q}AdaptationSet/{Q}SegmentTemplate")
    assert template is not None
    assert template.get("presentationTimeOffset") == (str(pto) if pto else None)
    for text in (build(Fraction(601, 2), pto=pto), build(Fraction(621, 2), pto=pto)):
        assert_valid_mpd(text)


def test_an_ended_live_mpd_stays_dynamic_with_a_duration_and_no_updates() -> None:
    text = build(Fraction(300), ended=True, duration=Fraction(300))
    assert_valid_mpd(text)
    root = ET.fromstring(text)
    assert root.get("type") == "dynamic"
    assert root.get("mediaPresentationDuration") == "PT5M"
    assert "minimumUpdatePeriod" not in root.attrib
    assert root.get("timeShiftBufferDepth") == "PT2M"  # the window stays seekable
    assert root.find(Q + "UTCTiming") is not None
    assert segments(root)[-1] == (149 * SEG, SEG)  # the last one, 298-300 s


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"duration": Fraction(300)}, "no duration yet"),
        ({"ended": True}, "needs its duration"),
        ({"availability_start": datetime(2026, 12, 2)}, "timezone-aware"),
        ({"publish_time": AST - timedelta(seconds=1)}, "before availabilityStartTime"),
        ({"utc_timing": ()}, "UTCTiming"),
        ({"time_shift_buffer_depth": Fraction(0)}, "positive"),
        ({"minimum_update_period": Fraction(-1)}, ">= 0"),
        ({"period_start": Fraction(-1)}, "Period@start"),
    ],
)
def test_inconsistent_live_descriptions_are_refused(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build(**change)  # type: ignore[arg-type]


def test_utc_timing_needs_an_http_time_scheme_and_a_url() -> None:
    with pytest.raises(ValueError, match="scheme"):
        dash.UtcTiming(CLOCK, "urn:mpeg:dash:utc:direct:2014")
    with pytest.raises(ValueError, match="URL"):
        dash.UtcTiming("")


# --- the structural check on dynamic MPDs ------------------------------------------------------

UTC_TIMING = f'<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="{CLOCK}" />'
BROKEN = [
    ('availabilityStartTime="2026-12-02T02:00:00Z" ', "", "needs @availabilityStartTime"),
    ('publishTime="2026-12-02T02:05:00.5Z"', 'publishTime="2026-12-02T02:05:00.5"', "time zone"),
    ('publishTime="2026-12-02T02:05:00.5Z"', 'publishTime="2026-12-02 02:05"', "dateTime"),
    ('publishTime="2026-12-02T02:05:00.5Z"', 'publishTime="2026-12-02T01:05:00Z"', "before"),
    ('minimumUpdatePeriod="PT1S" ', "", "needs @mediaPresentationDuration"),
    ('minimumUpdatePeriod="PT1S"', 'minimumUpdatePeriod="1s"', "not a valid duration"),
    ('suggestedPresentationDelay="PT6S"', 'suggestedPresentationDelay="6"', "valid duration"),
    (f'value="{CLOCK}" ', "", "needs a URL"),
    ("schemeIdUri=", "scheme=", "missing required @schemeIdUri"),
    (UTC_TIMING, "", "needs a UTCTiming"),
    ('<Period id="0" start="PT0S">', '<Period id="0">', "needs @start"),
    ('publishTime="2026-12-02T02:05:00.5Z"', 'publishTime="2026-12-02T02:04:59Z"', "not yet"),
    ('publishTime="2026-12-02T02:05:00.5Z"', 'publishTime="2026-12-02T02:09:00Z"', "slid out"),
    ('<Period id="0" start="PT0S">', '<Period id="0" start="PT7M">', "not yet"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "problem"), BROKEN)
def test_the_structural_check_finds_broken_dynamic_mpds(old: str, new: str, problem: str) -> None:
    text = build()
    assert old in text and not check_mpd(text)
    problems = check_mpd(text.replace(old, new, 1))
    assert any(problem in p for p in problems), problems


def test_the_structural_check_wants_utc_timing_after_the_periods() -> None:
    text = build()
    moved = text.replace(UTC_TIMING, "", 1).replace("<Period ", UTC_TIMING + "<Period ", 1)
    assert any("Period is out of the schema's order in MPD" in p for p in check_mpd(moved))


def test_the_structural_check_refuses_a_live_window_before_the_period() -> None:
    text = build(pto=10 * TS)
    assert not check_mpd(text)
    # A presentationTimeOffset 10 minutes on puts the window's media times before the Period.
    late = text.replace(
        f'presentationTimeOffset="{10 * TS}"', f'presentationTimeOffset="{610 * TS}"'
    )
    assert any("before the Period's start" in p for p in check_mpd(late))
