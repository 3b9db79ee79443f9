"""Locate the built-in demo voice shipped in ``autocompress/assets/demo``.

The demo voice is a small GPT-SoVITS teacher trained from scratch on Piper-synthesised
English (see ``autocompress/assets/demo/VOICE.md`` and ``scripts/build_demo_voice.py``). Its
content features are the DSP stand-in of :mod:`autocompress.models.gpt_sovits.standin`,
not HuBERT.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from autocompress.exceptions import DataError

if TYPE_CHECKING:
    from torch import Tensor

DEMO_DIR = Path(__file__).resolve().parents[2] / "assets" / "demo"
DEMO_GPT = "demo-gpt.ckpt"
DEMO_SOVITS = "demo-sovits.pth"
DEMO_EXP = "exp"
DEMO_MANIFEST = "demo.json"


class DemoVoicePaths(NamedTuple):
    """Where the demo voice's files are."""

    gpt_path: Path
    sovits_path: Path
    exp_dir: Path  # upstream experiment folder (2-name2text, 4-cnhubert, 5-wav32k, 6-semantic)
    eval_names: list[str]  # held-out items of exp_dir (not used for training the teacher)


def demo_voice_paths(root: str | Path | None = None) -> DemoVoicePaths:
    """Return ``(gpt_path, sovits_path, exp_dir, eval_names)`` of the shipped demo voice.

    Args:
        root: the demo folder; the packaged ``autocompress/assets/demo`` when None.

    Raises:
        DataError: when a file is missing (the assets were not built or not installed).
    """
    base = Path(root) if root is not None else DEMO_DIR
    manifest = demo_voice_manifest(base)
    return DemoVoicePaths(
        gpt_path=base / DEMO_GPT,
        sovits_path=base / DEMO_SOVITS,
        exp_dir=base / DEMO_EXP,
        eval_names=list(manifest["eval_names"]),
    )


def demo_voice_manifest(root: str | Path | None = None) -> dict:
    """Return the demo's ``demo.json``: eval_names, train_names, reference_name, build figures.

    ``standin_version`` says which stand-in content features (:mod:`.standin`) the voice uses.

    Raises:
        DataError: when a file is missing or the manifest is malformed.
    """
    base = Path(root) if root is not None else DEMO_DIR
    manifest_path = base / DEMO_MANIFEST
    needed = [manifest_path, base / DEMO_GPT, base / DEMO_SOVITS, base / DEMO_EXP / "2-name2text.txt"]
    for path in needed:
        if not path.exists():
            raise DataError(
                f"demo voice file {path} is missing; hint: build it with "
                "'python scripts/build_demo_voice.py --stage all' or reinstall autocompress with its assets"
            )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest["eval_names"] = [str(n) for n in manifest["eval_names"]]
        manifest["train_names"] = [str(n) for n in manifest["train_names"]]
        manifest["reference_name"] = str(manifest["reference_name"])
        manifest["standin_version"] = int(manifest.get("standin_version", 1))  # voices before v2: 1
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(
            f"{manifest_path}: expected JSON with eval_names, train_names, reference_name; got an error: {e}"
        ) from e
    return manifest


PROMPT_PAD_16K = 9600  # upstream appends 0.6 s of zeros to the prompt audio at 16 kHz before coding it


def demo_prompt_codes(sovits: Any, wav32k: Tensor, standin_version: int) -> Tensor:
    """Semantic codes ``[P]`` of prompt audio (32 kHz) for a voice built on the stand-in.

    Coded the way upstream's inference codes a prompt (0.6 s of silence appended at 16 kHz),
    with the stand-in features of the voice's ``standin_version`` in place of HuBERT.
    """
    import torch
    import torch.nn.functional as F
    import torchaudio

    from autocompress.models.gpt_sovits.standin import STANDIN_SAMPLE_RATE, standin_features

    wav16 = torchaudio.functional.resample(wav32k.float(), sovits.config.sampling_rate, STANDIN_SAMPLE_RATE)
    with torch.no_grad():
        features = standin_features(F.pad(wav16, (0, PROMPT_PAD_16K)), standin_version)  # [1, 768, T50]
        return sovits.extract_latent(features)[0, 0]  # [P]


__all__ = [
    "DEMO_DIR",
    "PROMPT_PAD_16K",
    "DemoVoicePaths",
    "demo_prompt_codes",
    "demo_voice_manifest",
    "demo_voice_paths",
]
