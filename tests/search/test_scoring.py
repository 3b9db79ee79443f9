"""The release floor as an Optuna constraint: its sign always matches the score package's decision."""

from __future__ import annotations

import math

import pytest

from autocompress.score.metric import measured
from autocompress.score.quality import QualityReport, ReleaseFloor
from autocompress.search.scoring import floor_violation


def _report(
    mos: float, teacher_mos: float, floor: ReleaseFloor = ReleaseFloor(), speaker: float | None = None
) -> QualityReport:
    ok, reason = floor.check(mos, teacher_mos, speaker)
    metrics = [measured("distillmos", mos, "MOS", "cpu")]
    if speaker is not None:
        metrics.append(measured("speaker_cos", speaker, "", "cpu"))
    return QualityReport(tuple(metrics), ok, reason)


@pytest.mark.parametrize(
    "mos, teacher, feasible",
    [(4.2, 4.5, True), (3.7, 4.5, False), (3.8, 4.5, True), (1.1, 1.27, True), (0.9, 1.27, False), (2.0, 1.27, True)],
)
def test_constraint_sign_matches_the_floor(mos, teacher, feasible):
    value = floor_violation(_report(mos, teacher), teacher)
    assert (value <= 0) == feasible
    assert math.isfinite(value)


def test_a_worse_student_violates_more():
    a = floor_violation(_report(3.0, 4.5), 4.5)
    b = floor_violation(_report(2.0, 4.5), 4.5)
    assert 0 < a < b


def test_no_mos_is_infeasible():
    report = QualityReport((measured("mcd_db", 3.0, "dB", "cpu"),), False, "no MOS proxy")
    assert floor_violation(report, 4.0) > 0
    assert floor_violation(_report(float("nan"), 4.0), 4.0) > 0


def test_a_student_that_is_not_the_teachers_voice_violates_in_proportion():
    """Demo trials of a low-MOS teacher: silent students passed the MOS-drop rule and were exported."""
    silent = floor_violation(_report(1.48, 1.73, speaker=0.0), 1.73)
    garbled = floor_violation(_report(1.48, 1.73, speaker=0.76), 1.73)
    assert silent > garbled > 0
    assert floor_violation(_report(1.64, 1.73, speaker=0.96), 1.73) <= 0
    assert floor_violation(_report(1.64, 1.73), 1.73) <= 0  # speaker not measured: MOS alone


def test_an_outcome_names_the_constraints_it_breaks():
    from autocompress.search.trial import TrialOutcome
    from autocompress.store import Objectives

    def outcome(**constraints: float) -> TrialOutcome:
        return TrialOutcome(Objectives(0.5, 10.0, 100.0), [], constraints, floor_reason="speaker cosine 0.00 < 0.85")

    assert outcome(memory_budget=-0.5, rtf_budget=0.0, quality_floor=-0.1).infeasible_because() == ""
    assert outcome(memory_budget=0.12, quality_floor=0.3).infeasible_because() == (
        "memory budget exceeded by 12%; release floor (speaker cosine 0.00 < 0.85)"
    )
