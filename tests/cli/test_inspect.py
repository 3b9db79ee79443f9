"""``autocompress inspect``: GPT vs SoVITS detection, tables, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autocompress.cli.main import main
from autocompress.models.gpt_sovits import SynthesizerTrn, Text2SemanticGPT, save_gpt, save_sovits
from autocompress.models.gpt_sovits.config import gpt_tiny, sovits_tiny

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    pro = sovits_tiny().replace(version="v2ProPlus", sv_dim=64, upsample_kernel_sizes=(20, 16, 8, 2, 2))
    pruned = gpt_tiny().replace(layer_heads=(4, 2, 1), layer_ffn=(512, 256, 64))
    (folder / "notes.txt").write_text("not a model\n")
    return {
        "sovits": save_sovits(SynthesizerTrn(pro, include_enc_q=False), folder / "voice.pth", epoch=4, step=80),
        "gpt": save_gpt(Text2SemanticGPT(pruned), folder / "voice.ckpt", epoch=12),
        "text": folder / "notes.txt",
    }


def test_sovits_file(files, capsys):
    assert main(["inspect", str(files["sovits"])]) == 0
    out = capsys.readouterr().out
    assert "SoVITS v2ProPlus" in out and "b'06'" in out and "4epoch_80iteration" in out
    assert "upsample_kernel_sizes" in out and "20, 16, 8, 2, 2" in out
    model = SynthesizerTrn(sovits_tiny().replace(version="v2ProPlus", sv_dim=64, upsample_kernel_sizes=(20, 16, 8, 2, 2)),
                           include_enc_q=False)
    for name in ("enc_p", "dec", "flow", "ref_enc", "sv_emb"):
        n = sum(p.numel() for p in getattr(model, name).parameters())
        assert f"{n:,}" in out, name
    total = sum(p.numel() for p in model.parameters())
    assert f"{total:,}" in out


def test_gpt_file_as_json(files, capsys):
    assert main(["inspect", str(files["gpt"]), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "gpt" and summary["info"] == "GPT-e12"
    assert summary["config"]["layer_heads"] == [4, 2, 1] and summary["config"]["layer_ffn"] == [512, 256, 64]
    model = Text2SemanticGPT(gpt_tiny().replace(layer_heads=(4, 2, 1), layer_ffn=(512, 256, 64)))
    assert summary["param_counts"]["h"] == sum(p.numel() for p in model.h.parameters())


def test_gpt_file_table(files, capsys):
    assert main(["inspect", str(files["gpt"])]) == 0
    out = capsys.readouterr().out
    assert "GPT (text to semantic) v2" in out and "4, 2, 1" in out and "ar_predict_layer" in out


@pytest.mark.parametrize("name", ["text", "missing"])
def test_bad_file_is_one_line_and_exit_2(files, capsys, tmp_path, name):
    path = files.get(name, tmp_path / "missing.pth")
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_subprocess_entry_point(files):
    """The installed entry point: a bad file is one line on stderr, exit 2, no traceback."""
    bad = subprocess.run(
        [sys.executable, "-m", "autocompress", "inspect", str(files["text"])],
        capture_output=True, text=True, cwd=ROOT, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.startswith("error: ") and "not a PyTorch checkpoint" in bad.stderr
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr and bad.stdout == ""


def test_file_strings_are_printed_as_text_not_markup(tmp_path, capsys):
    """Brackets in a file name or in the file's own info string are shown as they are."""
    path = save_sovits(SynthesizerTrn(sovits_tiny(), include_enc_q=False), tmp_path / "voice [v2].pth",
                       info="[/]8epoch [bold]96iteration")
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "voice [v2].pth" in out and "[/]8epoch [bold]96iteration" in out
