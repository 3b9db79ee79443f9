"""scripts/gpu_sovits.py: the demo SoVITS's GPU continuation, run here on the CPU for a few steps."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from _scripts import load_script

from autocompress.models.gpt_sovits.checkpoint import inspect_checkpoint, load_sovits
from autocompress.models.gpt_sovits.data import ExperimentFolder
from autocompress.models.gpt_sovits.demo import demo_voice_manifest, demo_voice_paths
from autocompress.models.gpt_sovits.text import phones_to_ids

@pytest.fixture(scope="module")
def gpu_sovits():
    return load_script("gpu_sovits")


def test_pack_copies_items_codes_and_phones(gpu_sovits, tmp_path):
    paths = demo_voice_paths()
    folder = ExperimentFolder(paths.exp_dir)
    held = list(paths.eval_names)
    size = gpu_sovits.pack(paths.exp_dir, tmp_path / "pack", 3, held, seed=5)
    rows = list(csv.reader((tmp_path / "pack" / "items.tsv").open(encoding="utf-8"), delimiter="\t"))
    assert [r[1] for r in rows] == ["train"] * 3 + ["eval"] * len(held)
    assert [r[0] + ".flac" for r in rows[3:]] == held
    assert not {r[0] + ".flac" for r in rows[:3]} & set(held)  # held-out items never train
    for stem, _split, phones, codes in rows:
        item = folder[stem + ".flac"]
        assert [int(c) for c in codes.split()] == list(item.codes)
        assert [int(p) for p in phones.split()] == phones_to_ids(item.phones, "v2")
        assert (tmp_path / "pack" / "wav" / f"{stem}.flac").read_bytes() == item.wav_path.read_bytes()
    assert size == sum(p.stat().st_size for p in (tmp_path / "pack").rglob("*") if p.is_file())
    # the same seed picks the same items; another seed (most likely) others
    gpu_sovits.pack(paths.exp_dir, tmp_path / "again", 3, held, seed=5)
    assert (tmp_path / "again" / "items.tsv").read_text() == (tmp_path / "pack" / "items.tsv").read_text()
    with pytest.raises(SystemExit, match="no coded items"):
        gpu_sovits.pack(paths.exp_dir, tmp_path / "bad", 3, ["nothing.flac"], seed=5)


def test_train_steps_and_writes_shipped_format_files(gpu_sovits, tmp_path):
    paths = demo_voice_paths()
    gpu_sovits.pack(paths.exp_dir, tmp_path / "pack", 4, list(paths.eval_names), seed=1)
    out = tmp_path / "out"
    threads = torch.get_num_threads()
    try:
        gpu_sovits.main(["train", "--pack", str(tmp_path / "pack"), "--out", str(out), "--device", "cpu",
                         "--steps", "3", "--batch", "2", "--disc-warmup", "1", "--g-warmup", "1",
                         "--eval-every", "1e9", "--start-step", "100", "--name", "t"])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    log = [json.loads(line) for line in (out / "t-log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [100, 103]  # the step count of --start-step goes on
    # the first evaluation is the shipped voice's, by the build script's measure of the same items
    recorded = demo_voice_manifest()["build"]
    assert log[0]["mel_l1"] == pytest.approx(recorded["sovits_eval_mel_l1"], abs=2e-3)
    assert log[0]["voiced_recall"] == pytest.approx(recorded["sovits_eval_voiced_recall"], abs=2e-3)
    assert all(e["select"] == pytest.approx(e["mel_l1"] - 0.5 * e["voiced_recall"]) for e in log)
    assert {"train_disc", "train_mel", "train_stft", "train_adv"} <= set(log[1])  # the generator stepped
    last = inspect_checkpoint(out / "t-last.pth")
    assert last.info == "0epoch_103iteration" and last.dtypes == ("float16",) and not last.has_enc_q
    shipped, trained = load_sovits(paths.sovits_path).state_dict(), load_sovits(out / "t-last.pth").state_dict()
    assert shipped.keys() == trained.keys()
    assert not torch.equal(shipped["dec.conv_pre.weight"], trained["dec.conv_pre.weight"])
    key = "quantizer.vq.layers.0._codebook.embed"
    assert torch.equal(shipped[key], trained[key])  # the codebook is frozen: the codes keep their meaning
    best_step = 3 if log[1]["best"] else 0
    assert inspect_checkpoint(out / "t-best.pth").info == f"0epoch_{100 + best_step}iteration"


def test_a_resumed_run_continues_the_state_it_saved(gpu_sovits, tmp_path):
    paths = demo_voice_paths()
    pack = tmp_path / "pack"
    gpu_sovits.pack(paths.exp_dir, pack, 4, list(paths.eval_names), seed=1)
    out = tmp_path / "out"
    common = ["train", "--pack", str(pack), "--out", str(out), "--device", "cpu", "--batch", "2", "--eval-every", "1e9"]
    threads = torch.get_num_threads()
    try:
        assert gpu_sovits.main(common + ["--steps", "2", "--disc-warmup", "1", "--g-warmup", "1", "--name", "a",
                                         "--disc-channels", "1,4,8,8,16,16"]) == 0
        state = torch.load(out / "a-state.pt", weights_only=True)
        s0 = demo_voice_manifest()["build"]["sovits_step"]  # with no --start-step: the step --init records
        assert state["step"] == s0 + 2 and state["disc_channels"] == [1, 4, 8, 8, 16, 16]
        # other widths than the state's are refused; its own (or none) are taken
        with pytest.raises(SystemExit, match="discriminator widths 1,4,8,8,16,16"):
            gpu_sovits.main(common + ["--steps", "1", "--resume", str(out / "a-state.pt"), "--name", "b",
                                      "--disc-channels", "1,8,16,32,64,64"])
        assert gpu_sovits.main(common + ["--steps", "1", "--resume", str(out / "a-state.pt"), "--name", "b"]) == 0
    finally:
        torch.set_num_threads(threads)
    first = [json.loads(line) for line in (out / "a-log.jsonl").read_text().splitlines()]
    resumed = [json.loads(line) for line in (out / "b-log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in resumed] == [s0 + 2, s0 + 3]
    assert resumed[0]["mel_l1"] == pytest.approx(first[-1]["mel_l1"], abs=1e-6)  # the state's weights
    # no warm-up again (default: 200 discriminator-only steps): its one step moved the generator
    assert "train_mel" in resumed[1] and resumed[1]["mel_l1"] != resumed[0]["mel_l1"]
    assert inspect_checkpoint(out / "b-last.pth").info == f"0epoch_{s0 + 3}iteration"
    assert torch.load(out / "b-state.pt", weights_only=True)["step"] == s0 + 3
    # a file that is no state of this script is refused in one line
    with pytest.raises(SystemExit, match="not a training state"):
        gpu_sovits.main(common + ["--steps", "1", "--resume", str(paths.sovits_path)])


def test_bad_input_is_refused_in_one_line_and_nothing_is_deleted(gpu_sovits, tmp_path, capsys):
    paths = demo_voice_paths()
    keep = tmp_path / "work"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not a pack"):  # --out must be a new folder or an earlier pack
        gpu_sovits.pack(paths.exp_dir, keep, 2, list(paths.eval_names), seed=1)
    assert (keep / "notes.txt").read_text() == "mine"
    assert gpu_sovits.main(["train", "--pack", str(tmp_path / "absent"), "--out", str(tmp_path / "o"),
                            "--device", "cpu", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "absent" in err and len(err.strip().splitlines()) == 1
    gpu_sovits.pack(paths.exp_dir, tmp_path / "pack", 2, list(paths.eval_names), seed=1)
    with pytest.raises(SystemExit, match="more than the pack's 2 training items"):
        gpu_sovits.main(["train", "--pack", str(tmp_path / "pack"), "--out", str(tmp_path / "o"),
                         "--device", "cpu", "--steps", "1", "--batch", "3"])
    for bad in (["--batch", "0"], ["--steps", "-1"], ["--disc-warmup", "many"]):
        with pytest.raises(SystemExit):
            gpu_sovits.main(["train", "--pack", str(tmp_path / "pack"), "--out", str(tmp_path / "o")] + bad)


def test_discriminator_widths_are_checked(gpu_sovits):
    assert gpu_sovits.channels_arg("1,16,64,128,256,256") == [1, 16, 64, 128, 256, 256]
    for bad in ("16,64", "2,8,16,32,64,64", "1,8,16,32,64,0"):
        with pytest.raises(Exception, match="six comma-separated"):
            gpu_sovits.channels_arg(bad)
