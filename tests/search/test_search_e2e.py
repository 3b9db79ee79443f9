"""End to end: the search daemon on a micro voice and a synthetic experiment folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState

from autocompress.cli.main import main
from autocompress.exceptions import DataError
from autocompress.store import Store, hash_folder


@pytest.fixture(scope="module")
def finished_search(search_argv, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("e2e")
    assert main(["search", *search_argv(tmp, "--trials", "3", "--steps", "4")]) == 0
    return tmp


def _url(tmp: Path) -> str:
    return f"sqlite:///{tmp}/db/s.db"


def test_three_finished_trials_with_three_objectives(finished_search):
    study = optuna.load_study(study_name="micro", storage=_url(finished_search))
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 3 and len(study.trials) == 3
    assert all(len(t.values) == 3 and all(math.isfinite(v) for v in t.values) for t in done)
    assert study.metric_names == ["quality", "latency_ms", "memory_mb"]
    assert [t.user_attrs["baseline"] for t in done] == ["teacher_fp32", "teacher_fp16", "seed_recipe"]
    for t in done:
        assert set(t.constraints) == {"memory_budget", "rtf_budget", "quality_floor"}
        assert t.user_attrs["plan_summary"]
        assert t.user_attrs["feasible"] == all(v <= 0 for v in t.constraints.values())  # shown by the dashboard
    assert done[2].user_attrs["finetune_steps"] == 4  # the seed recipe was fine-tuned
    assert done[0].user_attrs["finetune_steps"] == 0  # the teacher has nothing to learn
    assert study.user_attrs["target"] == "rtx3060"
    assert "rtx3060" in study.user_attrs["summary"] and "test-micro" in study.user_attrs["summary"]


def test_every_metric_is_labelled_measured_or_projected(finished_search):
    rows = Store(_url(finished_search)).trials("micro")
    assert [r.state for r in rows] == ["COMPLETE"] * 3
    for r in rows:
        by_name = {m.name: m for m in r.metrics}
        assert by_name["quality"].kind == "measured" and by_name["quality"].device.startswith("cpu")
        assert by_name["latency_ms"].kind == "projected" and by_name["latency_ms"].device == "rtx3060"
        assert by_name["memory_bytes"].kind == "projected"
        assert r.latency_ms == pytest.approx(by_name["latency_ms"].value)
        assert r.memory_mb == pytest.approx(by_name["memory_bytes"].value / 2**20)
        assert r.quality == pytest.approx(by_name["quality"].value)
        assert r.plan is not None and r.device_info["device"].startswith("cpu")
    assert rows[2].finetune_curve[0][0] == 0 and rows[2].finetune_curve[-1][0] == 4


def test_artifacts_hold_the_plan_and_audio(finished_search):
    storage = optuna.storages.RDBStorage(_url(finished_search))
    study = optuna.load_study(study_name="micro", storage=storage)
    for t in study.trials:
        metas = get_all_artifact_meta(t, storage=storage)
        names = sorted(m.filename for m in metas)
        assert any(n.endswith(".json") for n in names) and any(n.endswith(".wav") for n in names)
        for m in metas:
            path = finished_search / "db" / "artifacts" / m.artifact_id
            if m.filename.endswith(".json"):  # the trial's own plan
                assert json.loads(path.read_text()) == t.user_attrs["plan"]
            else:  # the student's speech: finite, not silent, at the SoVITS rate
                import soundfile as sf

                audio, sr = sf.read(path)
                assert sr == 32000 and audio.size > 0.3 * sr and np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_pareto_export_holds_loadable_students_and_is_recorded(finished_search):
    out = finished_search / "exports"
    index = (out / "pareto.json").read_text()
    folders = sorted(p for p in out.iterdir() if p.is_dir())
    assert folders, "at least one feasible Pareto trial (the teacher always is)"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".exports")]  # no temp folder left
    for f in folders:
        assert f.name in index
        manifest = json.loads((f / "manifest.json").read_text())  # an ONNX bundle for the target
        assert manifest["target"]["name"] == "rtx3060"
        assert set(manifest["graphs"]) >= {"gpt_prefill", "gpt_decode", "enc_p", "flow", "dec"}
        assert all((f / name).is_file() for name in manifest["files"])
        record = json.loads((f / "trial.json").read_text())
        assert record["kind"] == "onnx"
        labels = record["objective_labels"]  # every exported figure says what it is
        assert labels["latency_ms"] == labels["memory_mb"] == "projected for rtx3060"
        assert labels["quality"].startswith("measured on cpu")
    bundles = Store(_url(finished_search)).bundles("micro", "rtx3060")
    assert sorted(Path(b.path).name for b in bundles) == [f.name for f in folders]
    assert all(b.sha256 == hash_folder(Path(b.path))[0] for b in bundles)


def test_a_v2pro_voice_is_searched_and_exported_as_bundles_that_take_its_speaker_vector(tmp_path):
    from _micro_voice import make_micro_voice

    from autocompress.runtime import BundleRunner

    voice = make_micro_voice(tmp_path / "voice", version="v2Pro")
    argv = [
        "--target", "rtx3060", "--gpt", str(voice["gpt"]), "--sovits", str(voice["sovits"]), "--data",
        str(voice["data"]), "--space", str(voice["space"]), "--study", "pro", "--storage",
        f"sqlite:///{tmp_path}/pro.db", "--out", str(tmp_path / "exports"), "--trials", "2", "--steps", "2",
    ]  # fmt: skip
    assert main(["search", *argv]) == 0
    study = optuna.load_study(study_name="pro", storage=f"sqlite:///{tmp_path}/pro.db")
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 2 and not [t for t in study.trials if t.state == TrialState.FAIL]
    assert all(math.isfinite(v) for t in done for v in t.values)
    exported = sorted((tmp_path / "exports").glob("trial-*/trial.json"))
    assert exported
    for path in exported:  # parity-checked ONNX bundles whose style graph reads the speaker vector
        assert json.loads(path.read_text())["kind"] == "onnx"
        runner = BundleRunner(path.parent, prefer_gpu=False)
        assert runner.needs_speaker_vector and runner.manifest.model["sovits_version"] == "v2Pro"
        item = runner.sample_inputs()[0]
        assert item.ref_sv is not None and item.ref_sv.shape == (20480,)
        other = runner.style(item.ref_spec, item.ref_sv + 1.0)
        assert not np.allclose(runner.style(item.ref_spec, item.ref_sv), other)  # the vector matters
        with pytest.raises(DataError, match="speaker"):
            runner.make_input(0, None, item.ref_spec)  # a new reference without its vector
    np.save(tmp_path / "ref.npy", item.ref_spec)
    np.save(tmp_path / "sv.npy", item.ref_sv)
    out = tmp_path / "new_ref.wav"
    synth = ["synth", "--bundle", str(path.parent), "--text", "Hello.", "--ref-spec", str(tmp_path / "ref.npy"),
             "--out", str(out), "--max-tokens", "10", "--cpu"]  # fmt: skip
    assert main(synth) == 2  # the vector is missing (a usage error)
    assert main([*synth, "--ref-sv", str(tmp_path / "sv.npy")]) == 0 and out.stat().st_size > 44


def test_export_command_refuses_another_target_and_unknown_studies(finished_search, tmp_path, capsys):
    url = _url(finished_search)
    assert main(["export", "--study", "micro", "--target", "t4", "--storage", url, "--out", str(tmp_path / "a")]) == 2
    assert "searched for target 'rtx3060', not 't4'" in capsys.readouterr().err
    assert main(["export", "--study", "nope", "--target", "rtx3060", "--storage", url, "--out", str(tmp_path / "b")]) == 2
    assert "no study named 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_export_never_empties_a_folder_it_did_not_write(finished_search, tmp_path, capsys):
    url = _url(finished_search)
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "thesis.txt").write_text("precious\n")
    args = ["export", "--study", "micro", "--target", "rtx3060", "--storage", url, "--export-format", "checkpoint"]
    assert main([*args, "--out", str(mine)]) == 2
    assert "not an autocompress export" in capsys.readouterr().err
    assert (mine / "thesis.txt").read_text() == "precious\n" and sorted(p.name for p in mine.iterdir()) == ["thesis.txt"]
    earlier = tmp_path / "exports"
    assert main([*args, "--out", str(earlier)]) == 0 and (earlier / "pareto.json").is_file()
    (earlier / "stale.txt").write_text("from the earlier export\n")
    assert main([*args, "--out", str(earlier)]) == 0  # an earlier export is replaced whole
    assert not (earlier / "stale.txt").exists() and (earlier / "pareto.json").is_file()
    other = tmp_path / "other"  # another study's export: not replaced
    other.mkdir()
    (other / "pareto.json").write_text('{"study": "nightly", "target": "rtx3060", "trials": []}')
    assert main([*args, "--out", str(other)]) == 2
    assert "holds the export of study 'nightly'" in capsys.readouterr().err
    assert [p.name for p in other.iterdir()] == ["pareto.json"]


def test_unusable_output_folders_are_refused_before_any_trial(search_argv, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    for flag in ("--out", "--artifacts"):
        argv = search_argv(tmp_path, "--trials", "1", "--steps", "0")
        if flag == "--out":
            argv[argv.index("--out") + 1] = str(tmp_path / "afile" / "exp")
        else:
            argv += ["--artifacts", str(tmp_path / "afile" / "art")]
        assert main(["search", *argv]) == 2
        err = capsys.readouterr().err
        assert f"{flag} {tmp_path / 'afile'}" in err and "is a file" in err and "Traceback" not in err
    assert not (tmp_path / "db" / "s.db").exists()  # refused before the study was made


def test_a_search_on_a_target_file_exports_and_export_keeps_the_file(search_argv, tmp_path, monkeypatch, capsys):
    """README: copy a target TOML, name it after its stem, pass the path."""
    src = Path(__file__).resolve().parents[2] / "autocompress" / "targets" / "rtx3060.toml"
    toml = tmp_path / "targets" / "mygpu.toml"
    toml.parent.mkdir()
    toml.write_text(src.read_text().replace('name = "rtx3060"', 'name = "mygpu"'))
    argv = search_argv(tmp_path, "--trials", "1", "--steps", "0", "--export-format", "checkpoint")
    argv[argv.index("--target") + 1] = str(toml)
    assert main(["search", *argv]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "exports" / "pareto.json").read_text())["target"] == "mygpu"
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--study", "micro", "--target", str(toml), "--storage", _url(tmp_path),
                 "--export-format", "checkpoint"]) == 0
    assert toml.is_file() and (tmp_path / "exports" / "micro" / "mygpu" / "pareto.json").is_file()


def test_a_study_is_made_only_once_its_voice_has_loaded(search_argv, micro_voice, tmp_path, capsys):
    """A first try with swapped files must not tie the study name to that try's target."""
    argv = search_argv(tmp_path, "--trials", "1", "--steps", "0", "--no-export")
    swapped = list(argv)
    swapped[swapped.index("--sovits") + 1] = str(micro_voice["gpt"])
    assert main(["search", *swapped]) == 2
    assert "GPT" in capsys.readouterr().err
    assert "micro" not in optuna.get_all_study_names(_url(tmp_path))
    argv[argv.index("--target") + 1] = "h100"  # the fixed second try may choose another target
    assert main(["search", *argv]) == 0
    assert optuna.load_study(study_name="micro", storage=_url(tmp_path)).user_attrs["target"] == "h100"


def test_resuming_a_study_with_another_voice_is_refused(finished_search, search_argv, micro_voice, tmp_path, capsys):
    from autocompress.models.gpt_sovits import load_gpt, save_gpt

    gpt = load_gpt(micro_voice["gpt"])
    with torch.no_grad():
        next(gpt.parameters()).add_(0.01)
    other = save_gpt(gpt, tmp_path / "other.ckpt")
    argv = search_argv(finished_search, "--trials", "4", "--steps", "0", "--no-export")
    argv[argv.index("--gpt") + 1] = str(other)
    assert main(["search", *argv]) == 1  # as for another --target
    assert "study 'micro' was created for another voice" in capsys.readouterr().err
    assert len(optuna.load_study(study_name="micro", storage=_url(finished_search)).trials) == 3


def test_trials_equal_to_an_earlier_one_are_exported_once():
    """On a target without fp16, the fp16 baseline falls back to the fp32 plan: one bundle, not two."""
    from types import SimpleNamespace

    from autocompress.search.pareto import _distinct

    def trial(number: int, values: list[float], summary: str, baseline: str | None = None) -> SimpleNamespace:
        return SimpleNamespace(number=number, values=values, user_attrs={
            "plan_summary": f"{baseline}: {summary}" if baseline else summary, "baseline": baseline})

    front = [trial(0, [0.9, 5.0, 100.0], "teacher (fp32, unchanged)", "teacher_fp32"),
             trial(1, [0.9, 5.0, 100.0], "teacher (fp32, unchanged)", "teacher_fp16"),  # fp16 fell back to fp32
             trial(2, [0.8, 4.0, 50.0], "gpt int8"),
             trial(3, [0.9, 5.0, 100.0], "dec int8")]
    kept, same = _distinct(front)
    assert [t.number for t in kept] == [0, 2, 3] and same == {"1": 0}


def test_an_export_clears_what_a_killed_export_left(finished_search, tmp_path):
    import os
    import subprocess

    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid no longer runs
    dead = tmp_path / f".exp.tmp-{gone.pid}"
    (dead / "trial-0000").mkdir(parents=True)
    live = tmp_path / f".exp.tmp-{os.getppid()}"  # a running process's export is left alone
    live.mkdir()
    out = tmp_path / "exp"
    assert main(["export", "--study", "micro", "--target", "rtx3060", "--storage", _url(finished_search),
                 "--export-format", "checkpoint", "--out", str(out)]) == 0
    assert not dead.exists() and live.is_dir() and (out / "pareto.json").is_file()


def test_an_export_killed_between_its_two_renames_loses_nothing(finished_search, run_search_cmd, tmp_path, capsys):
    """Killed after moving the last export aside and before putting the new one in place, an
    export left no export folder, and the next export deleted the copy moved aside as an orphan."""
    import subprocess
    import sys

    out = tmp_path / "exp"
    args = ["export", "--study", "micro", "--target", "rtx3060", "--storage", _url(finished_search),
            "--export-format", "checkpoint", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    n = len(list(out.glob("trial-*")))
    capsys.readouterr()
    crash = f"""
import os
import autocompress.search.pareto as pareto
real = os.replace
def replace(src, dst):
    if os.path.basename(src).startswith(".exp.tmp-") and str(dst) == {str(out)!r}:
        os._exit(9)  # killed between the two renames
    real(src, dst)
os.replace = replace
pareto.export_pareto(storage={_url(finished_search)!r}, study_name="micro", target="rtx3060", out_dir=pareto.Path({str(out)!r}),
                     artifacts=pareto.Path({str(finished_search / "db" / "artifacts")!r}), export_format="checkpoint")
"""
    child = subprocess.Popen([sys.executable, "-c", crash], env=run_search_cmd[1], stderr=subprocess.PIPE, text=True)
    with child.stderr:
        assert child.wait(timeout=300) == 9, child.stderr.read()[-2000:]
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if ".old-" in p.name] == [f".exp.old-{child.pid}"]
    assert main(args) == 0  # the last export is put back, and its unchanged trials are kept, not rebuilt
    assert capsys.readouterr().err.count("unchanged since the last export, kept") == n
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_a_second_export_links_unchanged_bundles_and_rebuilds_a_damaged_one(finished_search, tmp_path):
    import shutil

    from autocompress.runtime.manifest import read_manifest

    out = tmp_path / "exports"
    shutil.copytree(finished_search / "exports", out)
    before = sorted(out.glob("trial-*"))
    args = ["export", "--study", "micro", "--target", "rtx3060", "--storage", _url(finished_search), "--out", str(out)]
    assert main(args) == 0
    index = json.loads((out / "pareto.json").read_text())
    assert index["reused"] == [r["trial"] for r in index["trials"]] and index["reused"]
    graph = next(iter(read_manifest(before[0]).files))
    inode = (out / before[0].name / graph).stat().st_ino
    assert main(args) == 0  # the same again: the same files, linked, not rewritten
    assert (out / before[0].name / graph).stat().st_ino == inode

    damaged = out / before[0].name / graph
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF
    damaged.unlink()  # the bytes the other links share stay as they were
    damaged.write_bytes(bytes(data))
    assert main(args) == 0
    index = json.loads((out / "pareto.json").read_text())
    trial = int(before[0].name.removeprefix("trial-"))
    assert trial not in index["reused"] and len(index["reused"]) == len(index["trials"]) - 1
    read_manifest(out / before[0].name, verify=True)  # rebuilt whole
    assert (out / before[0].name / graph).stat().st_ino != inode


def test_a_checkpoint_export_is_rebuilt_when_its_student_changes(finished_search, tmp_path):
    out = tmp_path / "ckpt"
    args = ["export", "--study", "micro", "--target", "rtx3060", "--storage", _url(finished_search), "--out", str(out),
            "--export-format", "checkpoint"]  # fmt: skip
    assert main(args) == 0 and json.loads((out / "pareto.json").read_text())["reused"] == []
    assert main(args) == 0
    index = json.loads((out / "pareto.json").read_text())
    assert index["reused"] == [r["trial"] for r in index["trials"]]
    first = index["trials"][0]["trial"]
    student = next(p for p in (finished_search / "db" / "artifacts").rglob(f"trial-{first:04d}") if p.is_dir())
    plan = student / "plan.json"
    original = plan.read_text()
    try:
        plan.write_text(original + "\n")  # the student folder changed: its copy is stale
        assert main(args) == 0
        index = json.loads((out / "pareto.json").read_text())
        assert first not in index["reused"]
        assert (out / f"trial-{first:04d}" / "plan.json").read_text() == original + "\n"
    finally:
        plan.write_text(original)


def test_bundles_that_cannot_be_recorded_are_said_to_be_complete(finished_search, tmp_path, monkeypatch):
    """A database that refused the records ended the export with only "cannot write", though its
    bundles were written, checked and usable."""
    from autocompress.exceptions import StoreError
    from autocompress.search.pareto import export_pareto

    def refuse(self, **kwargs):  # noqa: ANN001, ANN003, ANN202
        raise StoreError("cannot write to sqlite:///s.db: attempt to write a readonly database")

    monkeypatch.setattr(Store, "record_bundle", refuse)
    out = tmp_path / "exports"
    with pytest.raises(StoreError, match="complete and usable") as refused:
        export_pareto(storage=_url(finished_search), study_name="micro", target="rtx3060", out_dir=out,
                      artifacts=finished_search / "db" / "artifacts", export_format="checkpoint")  # fmt: skip
    assert "readonly database" in str(refused.value) and str(out) in str(refused.value)
    assert (out / "pareto.json").is_file() and [p for p in out.iterdir() if p.is_dir()]


def test_the_export_command_says_which_trial_it_is_exporting(finished_search, tmp_path, capsys):
    """It printed nothing until every bundle was written: minutes per bundle for a full-size voice."""
    argv = ["export", "--study", "micro", "--target", "rtx3060", "--storage", _url(finished_search),
            "--artifacts", str(finished_search / "db" / "artifacts"), "--out", str(tmp_path / "x"),
            "--export-format", "checkpoint"]  # fmt: skip
    assert main(argv) == 0
    first = capsys.readouterr()
    n = first.out.count("exported ")
    assert n >= 1 and first.err.count("exporting checkpoints ...") == n and f"(1 of {n})" in first.err
    assert main(argv) == 0
    assert capsys.readouterr().err.count("unchanged since the last export, kept") == n


def test_an_export_made_by_another_exporter_revision_is_rebuilt_not_kept(tmp_path, monkeypatch):
    """The version string stays the same between releases: an export folder kept int8 bundles
    an older exporter had rounded differently, as "unchanged since the last export"."""
    from types import SimpleNamespace

    import autocompress.export.bundle as bundle
    from autocompress.search.pareto import _export_key
    from autocompress.targets import load_target

    (tmp_path / "student.pt").write_bytes(b"weights")
    trial = SimpleNamespace(number=3, values=[0.5, 10.0, 100.0], user_attrs={"plan": {"groups": {}}})
    args = (trial, tmp_path, load_target("rtx3060"), "onnx", tmp_path / "no-cache.pt")
    key = _export_key(*args)
    assert _export_key(*args) == key
    monkeypatch.setattr(bundle, "EXPORT_REVISION", bundle.EXPORT_REVISION + 1)
    assert _export_key(*args) != key
