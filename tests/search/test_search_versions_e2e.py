"""End to end on the upstream versions the v2 / v2Pro search tests leave out: a v1 voice (SoVITS v1
with GPT v1) and a v2ProPlus voice are searched, exported as ONNX bundles and synthesised from."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from _micro_voice import make_micro_voice
from optuna.trial import TrialState

from autocompress.cli.main import main


def _search_and_export(tmp_path: Path, version: str) -> list[Path]:
    """Search the micro voice of ``version`` and return its exported bundles.

    Three trials: the two teacher baselines and the seed recipe, whose pruned, int8 and fp16
    groups go through compression, fine-tuning and export for this version too."""
    voice = make_micro_voice(tmp_path / "voice", version=version)
    url = f"sqlite:///{tmp_path}/s.db"
    argv = [
        "--target", "rtx3060", "--gpt", str(voice["gpt"]), "--sovits", str(voice["sovits"]), "--data",
        str(voice["data"]), "--space", str(voice["space"]), "--study", version, "--storage", url,
        "--out", str(tmp_path / "search-exports"), "--trials", "3", "--steps", "1",
    ]  # fmt: skip
    assert main(["search", *argv]) == 0
    study = optuna.load_study(study_name=version, storage=url)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 3 and not [t for t in study.trials if t.state == TrialState.FAIL]
    assert all(math.isfinite(v) for t in done for v in t.values)
    assert done[2].user_attrs["baseline"] == "seed_recipe" and done[2].user_attrs["finetune_steps"] == 1
    out = tmp_path / "exports"  # the export command, run again on the finished study
    assert main(["export", "--study", version, "--target", "rtx3060", "--storage", url, "--out", str(out)]) == 0
    bundles = sorted(p.parent for p in out.glob("trial-*/trial.json"))
    assert bundles and all(json.loads((b / "trial.json").read_text())["kind"] == "onnx" for b in bundles)
    return bundles


def test_a_v1_voice_is_searched_exported_and_synthesised_with_the_v1_symbol_table(tmp_path):
    from autocompress.models.gpt_sovits.text import symbols
    from autocompress.runtime import BundleRunner

    for bundle in _search_and_export(tmp_path, "v1"):
        runner = BundleRunner(bundle, prefer_gpu=False)
        assert runner.manifest.model["sovits_version"] == "v1" and not runner.needs_speaker_vector
        assert runner.symbols() == symbols("v1") and len(runner.symbols()) == 322
        item = runner.sample_inputs()[0]
        assert item.ref_sv is None and item.ref_spec.shape[0] == 1025
        assert int(item.phones.max()) < 322 and int(item.prompt_phones.max()) < 322
        result = runner.synthesize(item, max_new_tokens=10)
        assert result.wav.size > 0 and np.isfinite(result.wav).all()
    np.save(tmp_path / "ref.npy", item.ref_spec)
    out = tmp_path / "v1.wav"
    synth = ["synth", "--bundle", str(bundle), "--text", "Hello there.", "--ref-spec", str(tmp_path / "ref.npy"),
             "--out", str(out), "--max-tokens", "10", "--cpu"]  # fmt: skip
    assert main(synth) == 0 and out.stat().st_size > 44


def test_a_v2proplus_voice_is_searched_exported_and_synthesised_with_its_speaker_vector(tmp_path):
    from autocompress.runtime import BundleRunner

    for bundle in _search_and_export(tmp_path, "v2ProPlus"):
        runner = BundleRunner(bundle, prefer_gpu=False)
        assert runner.needs_speaker_vector and runner.manifest.model["sovits_version"] == "v2ProPlus"
        item = runner.sample_inputs()[0]
        assert item.ref_sv is not None and item.ref_sv.shape == (20480,) and item.ref_spec.shape[0] == 1025
        assert not np.allclose(runner.style(item.ref_spec, item.ref_sv), runner.style(item.ref_spec, item.ref_sv + 1))
        result = runner.synthesize(item, max_new_tokens=10)
        assert result.wav.size > 0 and np.isfinite(result.wav).all()
    np.save(tmp_path / "ref.npy", item.ref_spec)
    np.save(tmp_path / "sv.npy", item.ref_sv)
    out = tmp_path / "plus.wav"
    synth = ["synth", "--bundle", str(bundle), "--text", "Hello there.", "--ref-spec", str(tmp_path / "ref.npy"),
             "--ref-sv", str(tmp_path / "sv.npy"), "--out", str(out), "--max-tokens", "10", "--cpu"]  # fmt: skip
    assert main(synth) == 0 and out.stat().st_size > 44


@pytest.mark.parametrize("version", ["v1", "v2ProPlus"])
def test_the_micro_voice_of_each_version_reads_back_as_that_version(tmp_path, version):
    from autocompress.models.gpt_sovits import ExperimentFolder
    from autocompress.models.gpt_sovits.checkpoint import read_gpt, read_sovits

    voice = make_micro_voice(tmp_path, version=version)
    assert read_sovits(voice["sovits"]).version == version
    assert read_gpt(voice["gpt"]).version == ("v1" if version == "v1" else "v2")
    assert ExperimentFolder(voice["data"], version=version).items
