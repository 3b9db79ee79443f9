"""The release-floor constraint counts the worst sentence, not only the means."""

from __future__ import annotations

import math

import pytest

from autocompress.score.metric import measured
from autocompress.score.quality import QualityReport, ReleaseFloor, SentenceFigures
from autocompress.search.scoring import floor_violation

TEACHER = (1.80, 1.53, 1.87)  # a demo teacher's DistillMOS per sentence (mean 1.73)


def _report(*sentences: SentenceFigures, mos: float = 1.6, speaker: float = 0.94) -> QualityReport:
    """A report whose means pass; its sentences decide, as :func:`compare_audio` decides."""
    floor = ReleaseFloor()
    ok, reason = floor.check(mos, 1.73, speaker)
    failed = floor.check_sentences(sentences)
    if failed:
        ok, reason = False, "; ".join(failed)
    metrics = (measured("distillmos", mos, "MOS", "cpu"), measured("speaker_cos", speaker, "", "cpu"))
    return QualityReport(metrics, ok, reason, tuple(sentences))


def _sentences(*ratios: float, silent: int | None = None) -> list[SentenceFigures]:
    return [
        SentenceFigures(r, 1.6, t, 0.0 if i == silent else 0.94, silent=i == silent)
        for i, (r, t) in enumerate(zip(ratios, TEACHER))
    ]


def test_a_healthy_student_is_feasible_on_every_sentence():
    assert floor_violation(_report(*_sentences(1.11, 0.99, 1.05)), 1.73) <= 0


def test_one_silent_sentence_is_infeasible_whatever_the_means():
    value = floor_violation(_report(*_sentences(1.0, 1.0, 1.0, silent=2)), 1.73)
    assert value == 1.0


@pytest.mark.parametrize("ratio", [1.6, 2.0, 0.5])
def test_a_run_on_or_an_early_stop_is_infeasible(ratio):
    value = floor_violation(_report(*_sentences(1.0, ratio, 1.0)), 1.73)
    assert 0 < value <= 1.0 and math.isfinite(value)


def test_a_longer_run_on_violates_more():
    a = floor_violation(_report(*_sentences(1.0, 1.6, 1.0)), 1.73)
    b = floor_violation(_report(*_sentences(1.0, 2.0, 1.0)), 1.73)
    assert 0 < a < b


def test_a_report_without_sentences_is_judged_on_its_means_as_before():
    old = QualityReport((measured("distillmos", 1.64, "MOS", "cpu"), measured("speaker_cos", 0.96, "", "cpu")),
                        True, "MOS 1.64 >= teacher 1.73 - 0.30")
    assert old.sentences == () and floor_violation(old, 1.73) <= 0
