"""``synth --ref-sv``: a .npy, or GPT-SoVITS's own 7-sv_cn/<name>.pt, read without running pickled code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from autocompress.cli.synth_cmd import load_speaker_vector, make_inputs
from autocompress.exceptions import DataError


class _Planted:
    """Pickles to a call that writes a file: loading it must not run that call."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # noqa: ANN204
        return (Path.write_text, (self.target, "ran"))


def _args(tmp_path: Path, sv: Path) -> argparse.Namespace:
    np.save(tmp_path / "ref.npy", np.ones((1025, 30), dtype=np.float32))
    return argparse.Namespace(ref_wav=None, ref_spec=str(tmp_path / "ref.npy"), ref_sv=str(sv), text=None,
                              phones=None, sample=0)


def test_the_sv_cn_file_itself_is_the_speaker_vector(tmp_path):
    vector = torch.randn(1, 20480)
    torch.save(vector, tmp_path / "a.wav.pt")
    runner = SimpleNamespace(needs_speaker_vector=True, symbols=lambda: ["."], make_input=lambda *a: a)
    ((sample, phones, ref, sv),) = make_inputs(_args(tmp_path, tmp_path / "a.wav.pt"), runner)
    assert sv.dtype == np.float32 and sv.shape == (20480,)
    np.testing.assert_array_equal(sv, vector.numpy().reshape(-1))
    torch.save(vector.half(), tmp_path / "half.pt")  # upstream writes fp16 when it runs half
    assert load_speaker_vector(str(tmp_path / "half.pt")).dtype == np.float32
    np.save(tmp_path / "sv.npy", vector.numpy().reshape(-1))  # a .npy still reads as before
    np.testing.assert_array_equal(load_speaker_vector(str(tmp_path / "sv.npy")), sv)


def test_a_pt_of_the_wrong_shape_or_content_is_one_line(tmp_path):
    torch.save(torch.zeros(2, 20480), tmp_path / "two.pt")
    with pytest.raises(DataError, match=r"two.pt: a tensor of shape \[2, 20480\], expected one speaker vector"):
        load_speaker_vector(str(tmp_path / "two.pt"))
    torch.save({"sv": torch.zeros(1, 20480)}, tmp_path / "dict.pt")
    with pytest.raises(DataError, match=r"dict.pt: holds a dict, expected a float tensor \[1, 20480\]"):
        load_speaker_vector(str(tmp_path / "dict.pt"))
    (tmp_path / "text.pt").write_text("not a tensor\n")
    with pytest.raises(DataError, match=r"text.pt: not a .npy file .* nor a PyTorch .pt tensor file"):
        load_speaker_vector(str(tmp_path / "text.pt"))


def test_a_pt_holding_code_is_refused_without_running_it(tmp_path):
    planted = tmp_path / "planted.txt"
    torch.save(_Planted(planted), tmp_path / "evil.pt")
    with pytest.raises(DataError) as e:
        load_speaker_vector(str(tmp_path / "evil.pt"))
    assert "cannot be loaded as a tensor file" in str(e.value) and "\n" not in str(e.value)
    assert not planted.exists()


def test_without_torch_a_pt_says_how_to_convert_it(tmp_path, monkeypatch):
    torch.save(torch.zeros(1, 20480), tmp_path / "a.pt")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    with pytest.raises(DataError) as e:
        load_speaker_vector(str(tmp_path / "a.pt"))
    message = str(e.value)
    assert "\n" not in message and "install torch" in message and "numpy.save" in message
