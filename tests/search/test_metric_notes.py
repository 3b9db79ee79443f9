"""A scored figure's note (what it is of, what it assumes) reaches every place that shows the figure."""

from __future__ import annotations

import optuna

from autocompress.runtime.manifest import MetricEntry
from autocompress.score import measured, projected
from autocompress.search.daemon import _metric_dict
from autocompress.search.study import mirror_trial
from autocompress.store import Store

FP32 = "torch fp32 run of the student (its pruning and widths count, its quantization does not)"


def test_a_trial_s_metrics_attribute_keeps_each_note():
    """The note was dropped before the metrics were stored: an int8 trial's latency measured on cpu
    (in fp32) carried no warning in Optuna, the dashboard, the report or pareto.json."""
    latency = _metric_dict(measured("latency_ms", 80.0, "ms", "cpu", FP32))
    assert latency == {"name": "latency_ms", "value": 80.0, "unit": "ms", "kind": "measured", "device": "cpu",
                       "note": FP32}
    assert "note" not in _metric_dict(projected("memory_bytes", 1e6, "bytes", "rtx3060"))  # attributes stay small


def test_the_notes_of_a_trial_s_metrics_reach_our_tables_and_a_bundle_manifest(tmp_path):
    """What reads the ``metrics`` attribute back takes the note along: the mirror into our tables
    (a trial another worker finished) and a bundle's manifest entries."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(url)
    study = optuna.create_study(study_name="s", storage=url, directions=["maximize", "minimize", "minimize"])
    trial = study.ask()
    metrics = [measured("latency_ms", 80.0, "ms", "cpu", FP32), projected("memory_bytes", 1e6, "bytes", "cpu")]
    trial.set_user_attr("metrics", [_metric_dict(m) for m in metrics])
    run = store.start_run(study_name="s", target="cpu", space_name="demo", space_sha256="ab" * 32, voice="demo",
                          settings={}, device_info={})
    store.begin_trial(run_id=run, study_name="s", trial_number=trial.number, optuna_trial_id=trial._trial_id,
                      device_info={})
    study.tell(trial, [0.9, 80.0, 1.0])
    (frozen,) = study.get_trials()
    mirror_trial(store, "s", frozen)
    row = store.trial("s", frozen.number)
    assert (row.state, row.quality, row.latency_ms, row.memory_mb) == ("COMPLETE", 0.9, 80.0, 1.0)
    assert {m.name: m.note for m in row.metrics} == {"latency_ms": FP32, "memory_bytes": None}
    entries = [MetricEntry.from_dict(m) for m in frozen.user_attrs["metrics"]]  # what export_bundle records
    assert [e.note for e in entries] == [FP32, ""]
