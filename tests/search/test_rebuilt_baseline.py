"""``export --trial`` of a teacher baseline whose student the search dropped: its plan trains
nothing, so the student is rebuilt from the study's voice files, or refused naming the file
that is missing or changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from autocompress.cli.main import main
from autocompress.search.paths import student_dir


@pytest.fixture(scope="module")
def study(search_argv, micro_voice, tmp_path_factory) -> Path:
    """A 2-trial search (the fp32 and fp16 teachers) on copies of the micro voice's files."""
    tmp = tmp_path_factory.mktemp("rebuilt")
    argv = search_argv(tmp, "--trials", "2", "--steps", "0", "--no-export")
    for flag in ("--gpt", "--sovits"):
        copy = tmp / "voice" / Path(micro_voice[flag[2:]]).name
        copy.parent.mkdir(exist_ok=True)
        shutil.copy2(micro_voice[flag[2:]], copy)
        argv[argv.index(flag) + 1] = str(copy)
    assert main(["search", *argv]) == 0
    return tmp


def _export(tmp: Path, out: str, *extra: str) -> list[str]:
    return ["export", "--study", "micro", "--target", "rtx3060", "--storage", f"sqlite:///{tmp}/db/s.db",
            "--out", str(tmp / out), *extra]


def _student(tmp: Path, number: int) -> Path:
    return student_dir(tmp / "db" / "artifacts", "micro", number)


def _outputs(bundle: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    from autocompress.runtime import BundleRunner

    runner = BundleRunner(bundle, prefer_gpu=False)
    return [(s.codes, s.wav) for s in (runner.synthesize(item, seed=0, max_new_tokens=12)
                                       for item in runner.sample_inputs()[:2])]


def test_the_dropped_fp32_teacher_is_rebuilt_from_the_voice_files(study, capsys):
    """Trial 0 (the fp32 teacher) is dominated by the fp16 one: the search dropped its student."""
    from autocompress.models.gpt_sovits import load_gpt, load_sovits
    from autocompress.runtime import read_manifest

    assert not _student(study, 0).exists()
    assert main(_export(study, "fp32", "--trial", "0")) == 0
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if "rebuilt it from the study's voice files" in x]
    assert len(lines) == 1 and lines[0].startswith("trial 0: its student is gone"), err
    assert not _student(study, 0).exists()  # rebuilt for the export only
    assert [p.name for p in (study / "fp32").iterdir() if p.name.startswith(".")] == []
    bundle = study / "fp32" / "trial-0000"
    assert json.loads((bundle / "trial.json").read_text())["kind"] == "onnx"
    read_manifest(bundle, verify=True)

    assert main(_export(study, "fp32-ckpt", "--trial", "0", "--export-format", "checkpoint")) == 0
    saved = torch.load(study / "fp32-ckpt" / "trial-0000" / "student.pt", weights_only=True)
    sovits = load_sovits(next((study / "voice").glob("*.pth")))
    sovits.drop_enc_q_()
    teacher = {"gpt": load_gpt(next((study / "voice").glob("*.ckpt"))).state_dict(), "sovits": sovits.state_dict()}
    for model in ("gpt", "sovits"):  # the fp32 teacher's student is the teacher, weight for weight
        assert saved[model].keys() == teacher[model].keys()
        assert all(torch.equal(saved[model][k], teacher[model][k]) for k in teacher[model])


def test_a_rebuilt_fp16_teacher_exports_the_bundle_its_kept_student_did(study, capsys):
    """Trial 1 (the fp16 teacher) is on the front: exported with its student, then without it."""
    assert _student(study, 1).is_dir()
    assert main(_export(study, "kept", "--trial", "1")) == 0
    assert main(_export(study, "kept-ckpt", "--trial", "1", "--export-format", "checkpoint")) == 0
    shutil.rmtree(_student(study, 1))  # as the search drops it once it leaves the front
    capsys.readouterr()

    assert main(_export(study, "rebuilt", "--trial", "1")) == 0
    assert "trial 1: its student is gone" in capsys.readouterr().err
    kept, rebuilt = study / "kept" / "trial-0001", study / "rebuilt" / "trial-0001"
    for (codes_a, wav_a), (codes_b, wav_b) in zip(_outputs(kept), _outputs(rebuilt), strict=True):
        assert np.array_equal(codes_a, codes_b) and np.array_equal(wav_a, wav_b)

    assert main(_export(study, "rebuilt-ckpt", "--trial", "1", "--export-format", "checkpoint")) == 0
    a = torch.load(study / "kept-ckpt" / "trial-0001" / "student.pt", weights_only=True)
    b = torch.load(study / "rebuilt-ckpt" / "trial-0001" / "student.pt", weights_only=True)
    assert a["gpt_config"] == b["gpt_config"] and a["sovits_config"] == b["sovits_config"]
    for model in ("gpt", "sovits"):
        assert a[model].keys() == b[model].keys()
        assert all(torch.equal(a[model][k], b[model][k]) for k in a[model])
    big = [v for k, v in b["gpt"].items() if k.endswith("weight") and v.dim() == 2]
    assert big and all(torch.equal(v, v.half().float()) for v in big)  # the teacher rounded to fp16

    assert main(_export(study, "front")) == 0  # the feasible front's export rebuilds it too
    assert "trial 1: its student is gone" in capsys.readouterr().err
    assert [r["trial"] for r in json.loads((study / "front" / "pareto.json").read_text())["trials"]] == [1]


def test_a_missing_or_changed_voice_file_is_refused_naming_it(study, capsys):
    shutil.rmtree(_student(study, 0), ignore_errors=True)
    sovits = next((study / "voice").glob("*.pth"))
    saved = sovits.read_bytes()
    try:
        sovits.write_bytes(saved + b"\0")
        assert main(_export(study, "changed", "--trial", "0")) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"its SoVITS file {sovits} has changed since the search" in err, err
        sovits.unlink()
        assert main(_export(study, "missing", "--trial", "0")) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"its SoVITS file {sovits} is missing" in err, err
        assert "trial 0's student is gone" in err and "cannot be rebuilt" in err
    finally:
        sovits.write_bytes(saved)
    assert not (study / "changed").exists() and not (study / "missing").exists()


def test_a_search_given_relative_voice_paths_records_them_absolute(search_argv, micro_voice, tmp_path, monkeypatch):
    """The study recorded --gpt/--sovits as typed: an export run from another folder could not
    find the files to rebuild a baseline's student."""
    import optuna

    from autocompress.search.study import IDENTITY_ATTR

    (tmp_path / "voice").mkdir()
    argv = search_argv(tmp_path, "--trials", "1", "--steps", "0", "--no-export")
    for flag in ("--gpt", "--sovits"):
        shutil.copy2(micro_voice[flag[2:]], tmp_path / "voice" / Path(micro_voice[flag[2:]]).name)
        argv[argv.index(flag) + 1] = str(Path("voice") / Path(micro_voice[flag[2:]]).name)
    monkeypatch.chdir(tmp_path)
    assert main(["search", *argv]) == 0
    voice = optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp_path}/db/s.db").user_attrs[IDENTITY_ATTR]["voice"]
    assert Path(voice["gpt"]).is_absolute() and Path(voice["gpt"]).is_file()
    assert Path(voice["sovits"]) == tmp_path / "voice" / Path(micro_voice["sovits"]).name
