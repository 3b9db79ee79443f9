"""scripts/gpu_gpt.py: the demo GPT's GPU continuation, run here on the CPU for a few steps."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from _scripts import load_script

from autocompress.models.gpt_sovits.checkpoint import inspect_checkpoint, load_gpt, load_sovits
from autocompress.models.gpt_sovits.data import ExperimentFolder
from autocompress.models.gpt_sovits.demo import demo_prompt_codes, demo_voice_manifest, demo_voice_paths
from autocompress.models.gpt_sovits.text import phones_to_ids
from autocompress.models.gpt_sovits.training import SELECT_RULES, UNSEEN_TEXTS, gpt_learning_rate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_gpt():
    return load_script("gpu_gpt")


@pytest.fixture(scope="module")
def packed(gpu_gpt, tmp_path_factory) -> Path:
    paths, manifest = demo_voice_paths(), demo_voice_manifest()
    out = tmp_path_factory.mktemp("gpt") / "pack"
    gpu_gpt.pack(paths.exp_dir, out, paths.sovits_path, manifest["eval_names"], manifest["reference_name"],
                 manifest["standin_version"])  # fmt: skip
    return out


def _train(gpu_gpt, *argv: str) -> int:
    threads = torch.get_num_threads()
    try:
        return gpu_gpt.main(["train", "--device", "cpu", "--batch", "3", "--eval-every", "1e9", *argv])
    finally:
        torch.set_num_threads(threads)


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pack_writes_every_item_with_its_prompt_codes(packed):
    paths, manifest = demo_voice_paths(), demo_voice_manifest()
    folder = ExperimentFolder(paths.exp_dir)
    rows = list(csv.reader((packed / "items.tsv").open(encoding="utf-8"), delimiter="\t"))
    held = manifest["eval_names"]
    assert [r[0] + ".flac" for r in rows if r[1] == "eval"] == held
    train = [r for r in rows if r[1] == "train"]
    assert train[0][0] + ".flac" == manifest["reference_name"]  # the reference comes first
    assert len(train) == len(folder.names) - len(held)  # every coded item; the held-out ones never train
    sovits = load_sovits(paths.sovits_path)
    for stem, split, phones, codes, prompt in rows[:2] + rows[-1:]:
        item = folder[stem + ".flac"]
        assert [int(c) for c in codes.split()] == list(item.codes)
        assert [int(p) for p in phones.split()] == phones_to_ids(item.phones, "v2")
        if split == "train":  # coded as a teacher prompt: the silence appended makes it longer
            expect = demo_prompt_codes(sovits, item.load_wav(), manifest["standin_version"]).tolist()
            assert [int(c) for c in prompt.split()] == expect and len(expect) > len(item.codes)
        else:
            assert prompt == ""
    meta = json.loads((packed / "meta.json").read_text())
    assert meta["reference_prompt"] == [int(c) for c in train[0][4].split()]
    assert [u["text"] for u in meta["unseen"]] == list(UNSEEN_TEXTS)
    assert meta["select_rule"] == SELECT_RULES["gpt"]


def test_train_measures_as_the_build_script_and_writes_shipped_files(gpu_gpt, packed, tmp_path):
    out = tmp_path / "out"
    assert _train(gpu_gpt, "--pack", str(packed), "--out", str(out), "--steps", "3", "--name", "t") == 0
    log = _log(out / "t-log.jsonl")
    recorded = demo_voice_manifest()["build"]
    start = recorded["gpt_step"]
    assert [e["step"] for e in log] == [start, start + 3]  # the shipped file's step count goes on
    # the first evaluation is the shipped GPT's, as the build script measured it when it selected it
    assert log[0]["ce"] == pytest.approx(recorded["gpt_eval_ce"], abs=2e-3)
    assert log[0]["select"] == pytest.approx(recorded["gpt_eval_select"], abs=2e-3)
    assert {"train_ce", "train_acc"} <= set(log[1]) and log[1]["lr"] == gpt_learning_rate(2, 3e-4, 3000)
    last = inspect_checkpoint(out / "t-last.ckpt")
    assert last.info == f"GPT-e{start + 3}" and last.dtypes == ("float16",)
    shipped, trained = load_gpt(demo_voice_paths().gpt_path).state_dict(), load_gpt(out / "t-last.ckpt").state_dict()
    assert shipped.keys() == trained.keys()
    assert any(not torch.equal(shipped[k], trained[k]) for k in shipped)
    best_step = start + 3 if log[1]["best"] else start
    assert inspect_checkpoint(out / "t-best.ckpt").info == f"GPT-e{best_step}"
    best = torch.load(out / "t-best.pt", weights_only=True)  # the build script's train/gpt_best.pt format
    assert best["step"] == best_step and best["eval"] == pytest.approx(min(e["select"] for e in log))
    state = torch.load(out / "t-state.pt", weights_only=True)  # ... and its train/gpt_state.pt
    assert state["step"] == start + 3 and state["start_step"] == start and state["select_rule"] == SELECT_RULES["gpt"]
    assert all(t.device.type == "cpu" for t in state["model"].values())


def test_a_resumed_run_continues_the_state_it_saved(gpu_gpt, packed, tmp_path):
    out = tmp_path / "out"
    common = ["--pack", str(packed), "--out", str(out)]
    assert _train(gpu_gpt, *common, "--steps", "2", "--name", "a") == 0
    assert _train(gpu_gpt, *common, "--steps", "1", "--name", "b", "--resume", str(out / "a-state.pt")) == 0
    first, resumed = _log(out / "a-log.jsonl"), _log(out / "b-log.jsonl")
    assert [e["step"] for e in resumed] == [first[-1]["step"], first[-1]["step"] + 1]
    assert resumed[0]["ce"] == pytest.approx(first[-1]["ce"], abs=1e-6)  # the state's weights
    # the schedule counts on from the state's start (no new warm-up)
    assert resumed[1]["lr"] == gpt_learning_rate(2, 3e-4, 3000)
    with pytest.raises(SystemExit, match="not a .*training state"):
        _train(gpu_gpt, *common, "--steps", "1", "--resume", str(demo_voice_paths().gpt_path))


def test_new_trains_a_gpt_of_another_size_from_step_zero(gpu_gpt, packed, tmp_path):
    out = tmp_path / "out"
    assert _train(gpu_gpt, "--pack", str(packed), "--out", str(out), "--steps", "2", "--name", "n",
                  "--new", "48,2,2", "--lr", "1e-3") == 0  # fmt: skip
    assert [e["step"] for e in _log(out / "n-log.jsonl")] == [0, 2]
    model = load_gpt(out / "n-last.ckpt")
    shipped = load_gpt(demo_voice_paths().gpt_path).config
    assert (model.config.hidden_dim, model.config.n_layer, model.config.n_head, model.config.ffn_dim) == (48, 2, 2, 192)
    assert model.config.replace(hidden_dim=192, n_layer=6, n_head=4, ffn_dim=768) == shipped
    for bad in ("48,2", "50,2,4", "0,2,2"):
        with pytest.raises(SystemExit):
            _train(gpu_gpt, "--pack", str(packed), "--out", str(out), "--new", bad)
    with pytest.raises(SystemExit, match="pass one of them"):
        _train(gpu_gpt, "--pack", str(packed), "--out", str(out), "--new", "48,2,2", "--resume", str(out / "n-state.pt"))


def test_bad_input_is_refused_in_one_line_and_nothing_is_deleted(gpu_gpt, packed, tmp_path):
    paths, manifest = demo_voice_paths(), demo_voice_manifest()
    keep = tmp_path / "work"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    args = (paths.sovits_path, manifest["eval_names"], manifest["reference_name"], 2)
    with pytest.raises(SystemExit, match="not a pack"):  # --out must be a new folder or an earlier pack
        gpu_gpt.pack(paths.exp_dir, keep, *args)
    assert (keep / "notes.txt").read_text() == "mine"
    with pytest.raises(SystemExit, match="no coded items named nothing.flac"):
        gpu_gpt.pack(paths.exp_dir, tmp_path / "p", paths.sovits_path, ["nothing.flac"], manifest["reference_name"], 2)
    with pytest.raises(SystemExit, match="reference .* is one of the held-out"):
        gpu_gpt.pack(paths.exp_dir, tmp_path / "p", paths.sovits_path, manifest["eval_names"],
                     manifest["eval_names"][0], 2)  # fmt: skip
    with pytest.raises(SystemExit, match="not a pack"):
        _train(gpu_gpt, "--pack", str(tmp_path / "absent"), "--out", str(tmp_path / "o"), "--steps", "1")
    for bad in (["--batch", "0"], ["--steps", "-1"], ["--history-noise", "1.5"]):
        with pytest.raises(SystemExit):
            _train(gpu_gpt, "--pack", str(packed), "--out", str(tmp_path / "o"), *bad)


def test_the_device_session_script_trains_both_and_resumes_on_a_second_call(gpu_gpt, packed, tmp_path):
    """scripts/gpu_session.sh as a lent GPU runs it, here on the CPU with a few steps."""
    paths = demo_voice_paths()
    load_script("gpu_sovits").pack(paths.exp_dir, tmp_path / ".gpu_pack", 3, list(paths.eval_names), seed=1)
    shutil.copytree(packed, tmp_path / ".gpu_gpt_pack")
    env = {**os.environ, "GPU_SESSION_DIR": str(tmp_path), "OMP_NUM_THREADS": "1",
           "SOVITS_ARGS": "--batch 2 --steps 1 --disc-warmup 0 --g-warmup 1 --eval-every 1e9",
           "GPT_ARGS": "--batch 2 --steps 1 --eval-every 1e9"}  # fmt: skip
    script = str(REPO / "scripts" / "gpu_session.sh")
    for call in range(2):
        out = tmp_path / f"out{call}"
        out.mkdir()
        done = subprocess.run(["bash", script, "1", "cpu"], env={**env, "OUT": str(out)}, capture_output=True,
                              text=True, timeout=300, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        back = sorted(p.name for p in out.iterdir())
        assert len(back) <= 8 and all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())  # what may come back
        logs = {m: _log(next(out.glob(f"{m}-gpu-*-log.jsonl"))) for m in ("sovits", "gpt")}
        if call == 0:  # a new run from the shipped files
            assert any(n.endswith("-best.pth") for n in back) and any(n.endswith("-best.ckpt") for n in back)
            first = {m: log[-1]["step"] for m, log in logs.items()}
        else:  # the second call resumed the states the first left in runs/
            assert {m: log[0]["step"] for m, log in logs.items()} == first
            assert {m: log[-1]["step"] for m, log in logs.items()} == {m: s + 1 for m, s in first.items()}
    assert (tmp_path / "runs" / "gpt" / "gpu-state.pt").is_file()  # the states stay on the machine
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run(["bash", script, "1", "cpu"], env={**env, "OUT": str(empty), "GPU_SESSION_DIR": str(empty)},
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2 and "no .gpu_pack" in done.stderr
