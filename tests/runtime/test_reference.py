"""A new voice reference from a recording (``synth --ref-wav``): numpy's spectrogram against the
PyTorch model's, other rates and stereo, bad files, and the command on fp32 and Pro bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from autocompress.cli.main import main
from autocompress.exceptions import DataError
from autocompress.models.gpt_sovits.audio import spectrogram as torch_spectrogram
from autocompress.runtime import BundleRunner
from autocompress.runtime.reference import min_samples, read_reference, reference_spectrogram, spectrogram


def _voice_like(rate: int, seconds: float = 1.0, level: float = 0.2, seed: int = 0) -> np.ndarray:
    """A gliding harmonic tone (below 0.45 x the rate and 14 kHz) plus a little noise, float32."""
    t = np.arange(int(rate * seconds)) / rate
    phase = 2 * np.pi * np.cumsum(150 * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))) / rate
    top = min(0.45 * rate, 14000)
    wav = sum(np.sin(k * phase) / k for k in range(1, 60) if k * 170 < top)
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (level * wav + 0.01 * noise).astype(np.float32)


def _model_spec(wav: np.ndarray, *sizes: int, dtype: torch.dtype = torch.float32) -> np.ndarray:
    return torch_spectrogram(torch.from_numpy(wav).to(dtype), *sizes)[0].numpy()


@pytest.mark.parametrize("level", [0.2, 1.7, 6.0])  # peaks above 1 are scaled down as the model does
def test_the_numpy_spectrogram_is_the_model_reference_spectrogram(level) -> None:  # noqa: ANN001
    wav = _voice_like(32000, level=level)
    got = spectrogram(wav)
    want = _model_spec(wav)  # the model's float32 transform
    assert got.shape == want.shape == (1025, 50) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * float(want.max()))
    np.testing.assert_allclose(got, _model_spec(wav, dtype=torch.float64), rtol=1e-6)  # the same maths, exactly


def test_other_stft_sizes_and_the_shortest_audio_match_the_model() -> None:
    wav = _voice_like(32000, seconds=0.3)
    np.testing.assert_allclose(spectrogram(wav, 1024, 256, 800), _model_spec(wav, 1024, 256, 800, dtype=torch.float64),
                               rtol=1e-6)  # fmt: skip
    least = min_samples()
    short = wav[:least]
    np.testing.assert_allclose(spectrogram(short), _model_spec(short, dtype=torch.float64), rtol=1e-6)
    with pytest.raises(DataError, match="too short"):
        spectrogram(wav[: least - 1])
    with pytest.raises(Exception):  # noqa: B017 - the model refuses the same length (reflect pad)
        _model_spec(wav[: least - 1])


def test_a_32k_wav_gives_what_the_model_computes_for_the_same_file(tmp_path) -> None:
    path = tmp_path / "ref.wav"
    sf.write(path, _voice_like(32000, seconds=2.0), 32000, subtype="PCM_16")
    audio, _ = sf.read(path, dtype="float32")  # as the experiment folder loads a reference
    got = reference_spectrogram(path)
    np.testing.assert_allclose(got, _model_spec(audio), rtol=1e-5, atol=1e-6 * float(got.max()))


@pytest.mark.parametrize("rate", [16000, 44100])
def test_other_rates_are_resampled_close_to_torchaudio(tmp_path, rate) -> None:  # noqa: ANN001
    wav = _voice_like(rate, seconds=1.5)
    path = tmp_path / "ref.wav"
    sf.write(path, wav, rate, subtype="FLOAT")
    got = read_reference(path, 32000)
    want = torchaudio.functional.resample(torch.from_numpy(wav), rate, 32000).numpy()
    assert got.shape == want.shape == (48000,)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 0.01  # scipy's polyphase filter, not torchaudio's
    spec, spec_ta = reference_spectrogram(path), spectrogram(want)
    assert spec.shape == spec_ta.shape == (1025, 75)
    assert np.linalg.norm(spec - spec_ta) / np.linalg.norm(spec_ta) < 0.01


def test_stereo_is_mixed_to_mono(tmp_path) -> None:
    left, right = _voice_like(32000, seed=1), _voice_like(32000, level=0.1, seed=2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 32000, subtype="FLOAT")
    mixed = ((left.astype(np.float64) + right) / 2).astype(np.float32)
    np.testing.assert_allclose(read_reference(path, 32000), mixed, atol=1e-7)
    np.testing.assert_allclose(reference_spectrogram(path), spectrogram(mixed), rtol=1e-6)


def _write_bad(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.wav"
    if kind == "empty":
        sf.write(path, np.zeros(0, dtype=np.float32), 32000)
    elif kind == "short":
        sf.write(path, np.full(300, 0.1, dtype=np.float32), 16000)  # 600 samples at 32 kHz
    elif kind == "silent":
        sf.write(path, np.zeros(64000, dtype=np.int16), 32000)
    elif kind == "nan":
        sf.write(path, np.full(4000, np.nan, dtype=np.float32), 32000, subtype="FLOAT")
    elif kind == "text":
        path.write_text("not audio at all\n")
    elif kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
    return path  # "missing": never written


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("empty", "holds no audio samples"),
        ("short", r"too short \(18\.8 ms\); a reference needs at least 705 samples at 32000 Hz"),
        ("silent", r"silent \(every sample is zero\)"),
        ("nan", "NaN or inf"),
        ("text", "cannot be read as audio"),
        ("zero_bytes", "cannot be read as audio"),
        ("missing", "no such file; give the path of a recording"),  # not soundfile's "System error"
        ("folder", "a folder, not a recording; give the recording's file"),
    ],
)
def test_a_bad_recording_is_one_line(tmp_path, kind, message) -> None:  # noqa: ANN001
    path = _write_bad(tmp_path, kind)
    with pytest.raises(DataError, match=message) as caught:
        reference_spectrogram(path)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"--ref-wav {path}: ")


# --------------------------------------------------------------------------- the bundle and the command


def test_the_runner_uses_the_bundle_rate_and_stft_sizes(tmp_path, bundle_fp32) -> None:  # noqa: ANN001
    runner = BundleRunner(bundle_fp32.path, prefer_gpu=False, threads=1)
    path = tmp_path / "ref.wav"
    sf.write(path, _voice_like(44100), 44100)
    spec = runner.reference_spec(path)
    assert spec.shape[0] == runner.manifest.model["spec_channels"]
    np.testing.assert_array_equal(spec, reference_spectrogram(path, runner.sampling_rate))
    item = runner.make_input(1, "HH AH0 L OW1 .", ref_spec=spec)
    assert item.ref_spec is not None and np.array_equal(item.ref_spec, spec)
    np.testing.assert_array_equal(item.prompt_codes, runner.sample_inputs()[1].prompt_codes)  # the GPT prompt stays

    # a manifest without the SoVITS config: the sizes its bins and frame size imply
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_fp32.path, copy)
    data = json.loads((copy / "manifest.json").read_text())
    del data["model"]["sovits_config"]
    (copy / "manifest.json").write_text(json.dumps(data))
    old = BundleRunner(copy, prefer_gpu=False, threads=1, verify=False)
    assert old._stft_sizes() == runner._stft_sizes() == (2048, 640, 2048)


def _synth(bundle: Path, out: Path, *extra: str) -> int:
    return main(["synth", "--bundle", str(bundle), "--out", str(out), "--phones", "HH AH0 L OW1 .", "--sample", "0",
                 "--top-k", "1", "--noise-scale", "0", "--max-tokens", "8", "--cpu", "--threads", "1", *extra])  # fmt: skip


def test_synth_ref_wav_speaks_with_the_recording_style(tmp_path, bundle_fp32, capsys, monkeypatch) -> None:  # noqa: ANN001
    ref = tmp_path / "ref.wav"
    sf.write(ref, np.stack([_voice_like(48000, seed=3), _voice_like(48000, seed=4)], axis=1), 48000)
    styled = []  # the spectrograms the style graph is given
    real_style = BundleRunner.style
    monkeypatch.setattr(BundleRunner, "style", lambda self, spec, sv=None: styled.append(spec) or real_style(self, spec, sv))
    assert _synth(bundle_fp32.path, tmp_path / "own.wav") == 0
    assert _synth(bundle_fp32.path, tmp_path / "new.wav", "--ref-wav", str(ref)) == 0
    capsys.readouterr()
    runner = BundleRunner(bundle_fp32.path, prefer_gpu=False, threads=1)
    own, new = styled
    np.testing.assert_array_equal(own, runner.sample_inputs()[0].ref_spec)
    np.testing.assert_array_equal(new, runner.reference_spec(ref))  # the recording's, at 32 kHz
    assert new.shape == (1025, 50)
    # the sample's GPT prompt is kept: the same codes (greedy), so the same length
    assert sf.read(tmp_path / "new.wav")[0].size == sf.read(tmp_path / "own.wav")[0].size == 8 * 1280


def test_synth_ref_wav_refusals_are_one_line(tmp_path, bundle_fp32, helpers, capsys) -> None:  # noqa: ANN001
    ref = tmp_path / "ref.wav"
    sf.write(ref, _voice_like(32000), 32000)
    out = tmp_path / "x.wav"
    with pytest.raises(SystemExit) as both:  # argparse: one new reference only
        _synth(bundle_fp32.path, out, "--ref-wav", str(ref), "--ref-spec", str(tmp_path / "r.npy"))
    assert both.value.code == 2 and "not allowed with argument" in capsys.readouterr().err

    assert _synth(bundle_fp32.path, out, "--ref-wav", str(_write_bad(tmp_path, "silent"))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "silent" in err and "Traceback" not in err

    assert main(["synth", "--demo", "--text", "Hi.", "--ref-wav", str(ref), "--out", str(out)]) == 2
    assert "--ref-wav" in capsys.readouterr().err

    pro = helpers.version_bundle("v2Pro").path
    assert _synth(pro, out, "--ref-wav", str(ref)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--ref-wav gives a v2Pro bundle" in err and "--ref-sv" in err
    sv = tmp_path / "sv.npy"
    np.save(sv, np.ones(20480, dtype=np.float32))
    assert _synth(pro, out, "--ref-wav", str(ref), "--ref-sv", str(sv)) == 0
    assert sf.read(out)[0].size == 8 * 1280
    assert not out.with_name("y.wav").exists()
    assert _synth(bundle_fp32.path, out.with_name("y.wav"), "--ref-sv", str(sv)) == 2
    assert "give that reference with --ref-spec or --ref-wav" in capsys.readouterr().err


def test_a_pro_bundle_given_ref_spec_alone_names_the_sv_cn_file_itself(tmp_path, helpers, capsys) -> None:  # noqa: ANN001
    """--ref-sv takes the 7-sv_cn .pt itself: the refusal does not send the user to convert it to .npy."""
    spec = tmp_path / "ref.npy"
    np.save(spec, np.ones((1025, 30), dtype=np.float32))
    assert _synth(helpers.version_bundle("v2Pro").path, tmp_path / "x.wav", "--ref-spec", str(spec)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--ref-spec gives a v2Pro bundle" in err
    assert "--ref-sv (GPT-SoVITS's 7-sv_cn/<name>.pt, or a .npy of its values)" in err
    assert not (tmp_path / "x.wav").exists()


def test_a_recording_at_another_rate_is_read_without_torch(tmp_path) -> None:
    """The bundle's light install: the spectrogram and scipy's resampler load no torch."""
    import os
    import subprocess
    import sys

    shim = tmp_path / "shim"
    shim.mkdir()
    # an import of torch fails as where it is not installed (a None in sys.modules trips scipy's torch probe)
    (shim / "sitecustomize.py").write_text(
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchaudio'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
    )
    path = tmp_path / "ref.wav"
    sf.write(path, _voice_like(16000), 16000)
    code = ("import sys\nfrom autocompress.runtime.reference import reference_spectrogram\n"
            "try:\n    import torch\nexcept ImportError:\n    pass\nelse:\n    raise SystemExit('torch was not blocked')\n"
            f"print(reference_spectrogram({str(path)!r}).shape, 'torch' in sys.modules)\n")  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(root), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["(1025,", "50)", "False"]
