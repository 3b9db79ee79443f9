"""The release floor as an Optuna constraint: its sign always matches the score package's decision."""

from __future__ import annotations

import math

import pytest

from autocompress.score.metric import measured
from autocompress.score.quality import QualityReport, ReleaseFloor
from autocompress.search.scoring import floor_violation


def _report(mos: float, teacher_mos: float, floor: ReleaseFloor = ReleaseFloor()) -> QualityReport:
    ok, reason = floor.check(mos, teacher_mos)
    return QualityReport((measured("distillmos", mos, "MOS", "cpu"),), ok, reason)


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
