"""The torch-free runner on the tiny voice's bundles: greedy parity, caching, CLI, no torch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from autocompress.exceptions import DataError
from autocompress.runtime import BundleRunner, SamplingConfig

ROOT = Path(__file__).resolve().parents[2]


def test_greedy_codes_equal_torch_at_fp32(bundle_fp32, helpers) -> None:
    voice, inputs = helpers.shared_voice(), helpers.shared_inputs()
    runner = BundleRunner(bundle_fp32.path, prefer_gpu=False)
    for item in inputs:
        got = runner.generate(item, SamplingConfig(top_k=1), max_new_tokens=30, keep_logits=True)
        with torch.no_grad():
            want = voice.gpt.generate_detailed(
                torch.from_numpy(item.phones)[None], torch.from_numpy(item.bert_features())[None],
                torch.from_numpy(item.prompt_codes)[None], top_k=1, max_new_tokens=30,
            )  # fmt: skip
        np.testing.assert_array_equal(got.tokens, want.tokens[0].numpy())
        assert got.stop_reason == want.stop_reason
        steps = got.logits.shape[0]
        np.testing.assert_allclose(got.logits, want.logits_raw[:steps].numpy(), atol=1e-4, rtol=1e-4)


def test_style_vector_is_cached_per_voice(bundle_fp32, monkeypatch) -> None:
    runner = BundleRunner(bundle_fp32.path, prefer_gpu=False)
    calls = []
    run = runner._run
    monkeypatch.setattr(runner, "_run", lambda graph, feeds: calls.append(graph) or run(graph, feeds))
    item = runner.sample_inputs()[0]
    first = runner.style(item.ref_spec)
    again = runner.style(item.ref_spec.copy())
    other = runner.style(item.ref_spec * 2)
    assert calls == ["ref_enc", "ref_enc"]  # the second voice only
    assert first is again and not np.allclose(first, other)


def test_inputs_from_phones_and_reference(bundle_fp32) -> None:
    runner = BundleRunner(bundle_fp32.path, prefer_gpu=False)
    table = runner.symbols()
    item = runner.make_input(1, "HH AH0 L OW1")
    assert [table[i] for i in item.text] == ["HH", "AH0", "L", "OW1"]
    assert np.array_equal(item.prompt_codes, runner.sample_inputs()[1].prompt_codes)
    assert np.array_equal(runner.make_input(0, "3,4,5").text, [3, 4, 5])
    ref = np.ones((1025, 17), dtype=np.float32)
    assert runner.make_input(0, ref_spec=ref).ref_spec.shape == (1025, 17)
    for bad in ({"phones": "NOT_A_PHONE"}, {"sample": 9}, {"ref_spec": np.ones((704, 5))}):
        with pytest.raises(DataError):
            runner.make_input(**bad)


def test_new_text_keeps_the_prompts_bert_features(tmp_path, bundle_fp32, helpers) -> None:
    """A voice prompted with a Chinese transcript has BERT features for it; new English text keeps them."""
    import dataclasses
    import shutil

    from autocompress.runtime import save_inputs

    copy = tmp_path / "b"
    shutil.copytree(bundle_fp32.path, copy)
    rng = np.random.default_rng(0)
    stored = [
        dataclasses.replace(item, bert=rng.standard_normal((1024, item.phones.size)).astype(np.float32))
        for item in helpers.shared_inputs()
    ]
    (copy / "inputs.npz").write_bytes(save_inputs(stored))
    runner = BundleRunner(copy, prefer_gpu=False, verify=False)
    item = runner.make_input(1, "HH AH0 L OW1 .")
    n_prompt = stored[1].prompt_phones.size
    np.testing.assert_array_equal(item.bert[:, :n_prompt], stored[1].bert[:, :n_prompt])
    assert item.bert.shape == (1024, n_prompt + 5) and not item.bert[:, n_prompt:].any()
    got = runner.generate(item, SamplingConfig(top_k=1), max_new_tokens=20).tokens
    with torch.no_grad():
        want = helpers.shared_voice().gpt.generate_detailed(
            torch.from_numpy(item.phones)[None], torch.from_numpy(item.bert)[None],
            torch.from_numpy(item.prompt_codes)[None], top_k=1, max_new_tokens=20,
        )  # fmt: skip
    np.testing.assert_array_equal(got, want.tokens[0].numpy())


def _torch_free_env(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH with a sitecustomize that makes ``import torch`` fail."""
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    # The bundle README's light install: no torch, nor the search's packages (import X -> ImportError).
    blocked = ("torch", "optuna", "sqlalchemy", "rich", "croniter")
    (shim / "sitecustomize.py").write_text("import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(shim), str(ROOT), env.get("PYTHONPATH", "")])
    return env


def test_runtime_never_imports_torch(tmp_path) -> None:
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        try:
            import torch
        except ImportError:
            pass
        else:
            raise SystemExit("the shim did not block torch")
        import autocompress.runtime as rt
        for info in pkgutil.iter_modules(rt.__path__):
            importlib.import_module("autocompress.runtime." + info.name)
        import autocompress.cli.synth_cmd
        print("ok", sorted(m for m in sys.modules if m.startswith("autocompress.runtime")))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=_torch_free_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "autocompress.runtime.runner" in result.stdout


def test_synth_text_reaches_the_runner_as_the_bundle_table_ids(bundle_fp32) -> None:
    import argparse

    from autocompress.cli.synth_cmd import make_inputs

    runner = BundleRunner(bundle_fp32.path, prefer_gpu=False)
    table = runner.symbols()
    stored = runner.sample_inputs()[1]
    args = argparse.Namespace(text="Hello, world.", phones=None, ref_spec=None, sample=1)
    (item,) = make_inputs(args, runner)
    assert [table[i] for i in item.text] == ["HH", "AH0", "L", "OW1", ",", "W", "ER1", "L", "D", "."]
    np.testing.assert_array_equal(item.prompt_codes, stored.prompt_codes)  # the sample's prompt is kept

    # two sentences: two utterances, each with the sample's prompt; --max-piece-phones 0 keeps one
    args.text = "Hello, world. The red boat is here."
    first, second = make_inputs(args, runner)
    assert [table[i] for i in first.text] == ["HH", "AH0", "L", "OW1", ",", "W", "ER1", "L", "D", "."]
    assert [table[i] for i in second.text][:3] == ["DH", "AH0", "R"] and table[second.text[-1]] == "."
    np.testing.assert_array_equal(second.prompt_codes, stored.prompt_codes)
    args.max_piece_phones = 0
    (whole,) = make_inputs(args, runner)
    np.testing.assert_array_equal(whole.text, np.concatenate([first.text, second.text]))


def test_synth_command_without_torch(tmp_path, bundle_fp32) -> None:
    out = tmp_path / "out.wav"
    cmd = [sys.executable, "-m", "autocompress", "synth", "--bundle", str(bundle_fp32.path), "--out", str(out),
           "--phones", "HH AH0 L OW1 .", "--sample", "1", "--top-k", "1", "--max-tokens", "20", "--threads", "1"]  # fmt: skip
    result = subprocess.run(cmd, env=_torch_free_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    audio, rate = sf.read(out)
    assert rate == 32000
    codes = int(result.stdout.split(" codes")[0].rsplit(" ", 1)[1])
    assert audio.size == codes * 1280 and np.isfinite(audio).all()
    assert "on cpu" in result.stdout

    # English text through the front end, still without torch.
    said = tmp_path / "said.wav"
    cmd = [sys.executable, "-m", "autocompress", "synth", "--bundle", str(bundle_fp32.path), "--out", str(said),
           "--text", "Hello, world.", "--top-k", "1", "--max-tokens", "20", "--threads", "1"]  # fmt: skip
    result = subprocess.run(cmd, env=_torch_free_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    codes = int(result.stdout.split(" codes")[0].rsplit(" ", 1)[1])
    assert sf.read(said)[0].size == codes * 1280

    # two sentences are spoken one at a time, with upstream's 0.3 s of silence between them
    cmd[cmd.index("Hello, world.")] = "Hello, world. The red boat is here."
    result = subprocess.run(cmd, env=_torch_free_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert " codes in 2 pieces (" in result.stdout
    codes = int(result.stdout.split(" codes")[0].rsplit(" ", 1)[1])
    two = sf.read(said)[0]
    assert two.size == codes * 1280 + 9600
    silent_run = np.convolve((two == 0).astype(float), np.ones(9600), mode="valid")
    assert silent_run.max() == 9600  # the pause is there, whole

    bad = subprocess.run(
        [sys.executable, "-m", "autocompress", "synth", "--bundle", str(tmp_path), "--out", str(out)],
        env=_torch_free_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith(f"error: --bundle {tmp_path}: no manifest.json")


def test_a_light_install_names_what_a_search_command_needs(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "autocompress", "search", "--target", "rtx3060"],
        env=_torch_free_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: autocompress search needs the package") and "pip install" in result.stderr


def test_non_finite_audio_and_settings_are_refused(tmp_path, bundle_fp32, capsys) -> None:
    from autocompress.cli.main import main
    from autocompress.runtime import wav_bytes

    with pytest.raises(DataError, match="1 NaN or inf samples; nothing written"):
        wav_bytes(np.array([0.1, np.nan, 0.2], dtype=np.float32), 32000)
    out = tmp_path / "n.wav"
    base = ["synth", "--bundle", str(bundle_fp32.path), "--phones", "HH AH0 L OW1 .", "--out", str(out), "--cpu"]
    for flag in ("--noise-scale", "--temperature"):
        with pytest.raises(SystemExit) as exit_info:
            main([*base, flag, "nan"])
        assert exit_info.value.code == 2 and "finite number" in capsys.readouterr().err
    np.save(tmp_path / "nan.npy", np.full((1025, 20), np.nan, dtype=np.float32))
    (tmp_path / "not.npy").write_text("name = 'x'\n")
    assert main([*base, "--ref-spec", str(tmp_path / "nan.npy")]) == 2
    assert "ref_spec holds NaN or inf values" in capsys.readouterr().err
    assert main([*base, "--ref-spec", str(tmp_path / "not.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --ref-spec") and "not a .npy file" in err and "pickled" not in err
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))  # a .npy of pickled objects
    assert main([*base, "--ref-spec", str(tmp_path / "obj.npy")]) == 2
    assert "cannot be read as a .npy array" in capsys.readouterr().err
    np.save(tmp_path / "sv.npy", np.zeros(20480, dtype=np.float32))
    assert main([*base, "--ref-sv", str(tmp_path / "sv.npy")]) == 2  # alone, it would be ignored
    assert "give that reference with --ref-spec" in capsys.readouterr().err
    assert not out.exists()


def test_an_empty_reference_a_bad_input_shape_and_a_negative_seed_are_one_line_errors(
    tmp_path, bundle_fp32, capsys
) -> None:
    from autocompress.cli.main import main
    from autocompress.exceptions import ConfigError

    runner = BundleRunner(bundle_fp32.path, prefer_gpu=False)
    with pytest.raises(DataError, match="ref_spec has no frames"):
        runner.make_input(0, ref_spec=np.ones((1025, 0), dtype=np.float32))
    with pytest.raises(DataError, match=r"takes ref_spec of shape \[1, 1025, Tr\], got \[1, 704, 5\]"):
        runner.style(np.ones((704, 5), dtype=np.float32))  # onnxruntime's own error is a traceback
    with pytest.raises(ConfigError, match="seed must be >= 0, got -1"):
        runner.synthesize(runner.sample_inputs()[0], seed=-1)

    base = ["synth", "--bundle", str(bundle_fp32.path), "--phones", "HH AH0 L OW1 .", "--out", str(tmp_path / "o.wav")]
    np.save(tmp_path / "empty.npy", np.ones((1025, 0), dtype=np.float32))
    assert main([*base, "--cpu", "--ref-spec", str(tmp_path / "empty.npy")]) == 2
    assert "ref_spec has no frames" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the flag itself is refused, for bundles as for the demo
        main([*base, "--cpu", "--seed", "-1"])
    assert "--seed: must be 0 or more, got -1" in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("version", ["v1", "v2Pro", "v2ProPlus"])
def test_every_voice_version_speaks_text_from_its_bundle(tmp_path, helpers, version, capsys) -> None:
    from autocompress.cli.main import main

    bundle = helpers.version_bundle(version)
    out = tmp_path / "o.wav"
    base = ["synth", "--bundle", str(bundle.path), "--out", str(out), "--cpu", "--max-tokens", "16"]
    assert main([*base, "--text", "Hello, 12 cats! Is it 3:30 p.m.? Yes."]) == 0
    assert " codes in 2 pieces (" in capsys.readouterr().out and np.isfinite(sf.read(out)[0]).all()
    if version == "v1":
        return
    # A Pro voice's new reference needs its speaker vector, of the length the style graph takes.
    np.save(tmp_path / "ref.npy", np.abs(np.random.default_rng(0).standard_normal((1025, 30))).astype(np.float32))
    np.save(tmp_path / "short.npy", np.ones(100, dtype=np.float32))
    np.save(tmp_path / "sv.npy", np.ones(20480, dtype=np.float32))
    new_ref = [*base, "--phones", "HH AH0 L OW1 .", "--ref-spec", str(tmp_path / "ref.npy"), "--ref-sv"]
    assert main([*new_ref, str(tmp_path / "short.npy")]) == 2
    assert capsys.readouterr().err == "error: graph ref_enc takes ref_sv of shape [1, 20480], got [1, 100]\n"
    assert main([*new_ref, str(tmp_path / "sv.npy")]) == 0
