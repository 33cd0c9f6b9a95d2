"""The mutation fuzzer's quick budget: every mutant of the sample is refused at load or builds
every output (tests/support/fuzzing.py; the long run is
``python scripts/fuzz.py --mutants 100000``)."""

from __future__ import annotations

import struct

import pytest

from origin.core.mux import fmp4
from tests.support import fuzzing

QUICK_SEEDS = range(0, 600)  # a few seconds; seeds differ from the long run's default start


def test_quick_budget_of_mutants_is_refused_or_builds_everything(
    fuzz_inputs: dict[str, bytes],
) -> None:
    report = fuzzing.run(list(fuzz_inputs.items()), QUICK_SEEDS)
    shown = "\n".join(
        f"seed {seed} ({name}: {'; '.join(done)}):\n{detail}"
        for seed, name, done, detail in report.findings[:3]
    )
    assert not report.findings, f"{len(report.findings)} findings, replay with --replay:\n{shown}"
    # The budget exercises both outcomes, not only one.
    assert report.built > 100 and report.refusals > 100


def test_the_good_inputs_build_every_output(fuzz_inputs: dict[str, bytes]) -> None:
    for data in fuzz_inputs.values():
        out = fuzzing.check([data])
        assert out.kind == "built", out.detail
        assert out.outputs > 20


def test_oracle_reports_an_exception_in_any_writer_as_a_finding(
    fuzz_inputs: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> bytes:
        raise struct.error("boom")

    monkeypatch.setattr(fmp4, "init_segment", broken)
    out = fuzzing.check([fuzz_inputs["progressive.mp4"]])
    assert out.kind == "finding" and "struct.error: boom" in out.detail


def test_oracle_reports_a_run_over_the_time_bound(
    fuzz_inputs: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow(*args: object, **kwargs: object) -> bytes:
        while True:
            pass

    monkeypatch.setattr(fmp4, "init_segment", slow)
    out = fuzzing.check([fuzz_inputs["progressive.mp4"]], seconds=0.2)
    assert out.kind == "finding" and "Timeout" in out.detail


def test_a_mutant_is_a_pure_function_of_its_seed(fuzz_inputs: dict[str, bytes]) -> None:
    inputs = list(fuzz_inputs.items())
    assert fuzzing.mutant(inputs, 1234) == fuzzing.mutant(inputs, 1234)
    assert fuzzing.mutant(inputs, 1234)[1] != fuzzing.mutant(inputs, 1235)[1]
