"""Read plans: the spans a segment request reads and where each sample lies in them."""

from __future__ import annotations

from array import array
from fractions import Fraction

import pytest

from origin.core import pipeline, plan
from origin.core.mp4.parse import parse_bytes
from origin.core.plan import READ_GAP, ReadPlan, SegmentRef, Span, coalesce, plan_reads
from origin.core.presentation import Presentation
from origin.core.urls import Format
from tests.support.live_views import sample


def reference_plan(p: Presentation, ref: SegmentRef) -> ReadPlan:
    """Every sample's byte range through :func:`coalesce`, the general planner."""
    runs = plan._runs(p, ref)
    ranges = [
        (file, track.samples.offset[i], track.samples.size[i])
        for file, track, start, stop in runs
        for i in range(start, stop)
    ]
    spans, where = coalesce(ranges)
    out, k = [], 0
    for _, track, start, stop in runs:
        out.append((track, start, stop, tuple(where[k : k + stop - start])))
        k += stop - start
    return ReadPlan(spans, tuple(out))


def refs(p: Presentation) -> list[SegmentRef]:
    out = []
    for fmt in (Format.HLS_TS, Format.HLS_CMAF, None):
        for r in (*p.video, *([p.audio] if p.audio else [])):
            track = "video" if r in p.video else "audio"
            out += [SegmentRef(fmt, track, r.id, k) for k in range(len(r.times) - 1)]
    return out


def test_every_segment_of_the_sample_is_planned_as_the_general_planner_plans_it() -> None:
    p, _ = sample()
    checked = refs(p)
    assert len(checked) > 30
    for ref in checked:
        assert plan_reads(p, ref) == reference_plan(p, ref), ref


def test_a_run_is_one_span_only_when_its_samples_follow_each_other_closely() -> None:
    offsets = array("Q", [100, 110, 130, 130 + READ_GAP + 5])
    sizes = array("I", [10, 20, 5, 1])
    one = plan._one_span(3, offsets, sizes, 1)
    assert one == (
        Span(3, 100, 130 + READ_GAP + 6 - 100),
        [(1, 0, 10), (1, 10, 20), (1, 30, 5), (1, 35 + READ_GAP, 1)],
    )
    for offs in (
        [100, 110, 130, 136 + READ_GAP],  # a gap over READ_GAP: two spans
        [100, 105, 130, 140],  # overlapping samples
        [130, 100, 110, 140],  # out of file order
    ):
        assert plan._one_span(3, array("Q", offs), sizes, 0) is None, offs
    assert plan._one_span(3, array("Q"), array("I"), 0) is None


@pytest.mark.parametrize("gap", [0, READ_GAP])
def test_one_span_and_coalesce_agree_at_the_gap_limit(gap: int) -> None:
    offsets = array("Q", [0, 10 + gap, 20 + 2 * gap])
    sizes = array("I", [10, 10, 10])
    spans, where = coalesce([(0, o, n) for o, n in zip(offsets, sizes, strict=True)])
    assert plan._one_span(0, offsets, sizes, 0) == (spans[0], where)
    assert len(spans) == 1


@pytest.mark.parametrize("source", ["bframes_mp4", "moov_at_end_mp4"])
def test_every_segment_of_an_interleaved_file_is_planned_as_the_general_planner_plans_it(
    source: str, request: pytest.FixtureRequest
) -> None:
    path = request.getfixturevalue(source)
    p = pipeline.prepare("one", [parse_bytes(path.read_bytes())], Fraction(2))
    for ref in refs(p):
        assert plan_reads(p, ref) == reference_plan(p, ref), ref
