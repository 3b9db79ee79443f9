"""Upstream-format copies of a compressed voice: a GPT ``.ckpt`` and a SoVITS ``.pth``.

Written only where upstream's constructors can build the compressed shapes
(``config.is_upstream_expressible``); weights are fp16, as upstream stores them. Weight norm
is put back on the decoder layers upstream keeps it on (``weight_g``, ``weight_v`` chosen so
that ``g * v / |v|`` equals the plain weight).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.nn.utils import parametrize

from autocompress.compress import weight_norm_parts
from autocompress.exceptions import ExportError
from autocompress.models.gpt_sovits.checkpoint import save_gpt, save_sovits
from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
from autocompress.models.gpt_sovits.sovits import SynthesizerTrn

GPT_FILE = "upstream/gpt.ckpt"
SOVITS_FILE = "upstream/sovits.pth"


def write_upstream(gpt: Text2SemanticGPT, sovits: SynthesizerTrn, folder: Path) -> dict[str, Any]:
    """Write the upstream-format files that can be written; return a manifest section.

    Args:
        gpt, sovits: plain (parametrization-free) fp32 models.
        folder: the bundle folder being built.

    Returns:
        ``{"files": [...], "skipped": {"gpt" | "sovits": reason}, "precision": "fp16"}``.
    """
    section: dict[str, Any] = {"files": [], "skipped": {}, "precision": "fp16"}
    if gpt.config.is_upstream_expressible:
        save_gpt(gpt, _prepare(folder / GPT_FILE), info="autocompress export")
        section["files"].append(GPT_FILE)
    else:
        section["skipped"]["gpt"] = "per-layer head counts or FFN widths upstream's config cannot express"
    if sovits.config.is_upstream_expressible:
        save_sovits(with_weight_norm(sovits), _prepare(folder / SOVITS_FILE), info="autocompress export")
        section["files"].append(SOVITS_FILE)
    else:
        section["skipped"]["sovits"] = (
            "some widths differ from the ones upstream's code hard-codes (a pruned or student model, "
            "or a reduced config such as the demo voice's)"
        )
    return section


@torch.no_grad()
def with_weight_norm(plain: SynthesizerTrn) -> SynthesizerTrn:
    """A SoVITS built from ``plain``'s config (weight norm where upstream has it) with its weights."""
    model = SynthesizerTrn(plain.config, include_enc_q=False)
    normed = {name for name, m in model.named_modules() if parametrize.is_parametrized(m, "weight")}
    state = plain.state_dict()
    direct = {k: v for k, v in state.items() if k.rsplit(".", 1)[0] not in normed or not k.endswith(".weight")}
    missing, unexpected = model.load_state_dict(direct, strict=False)
    left = [k for k in missing if ".parametrizations." not in k]
    if left or unexpected:
        raise ExportError(f"cannot rebuild SoVITS with weight norm: missing {left[:5]}, unexpected {unexpected[:5]}")
    modules = dict(model.named_modules())
    for name in normed:
        if f"{name}.weight" not in state:  # still weight-normed in ``plain``: loaded as it is above
            continue
        g, v = weight_norm_parts(state[f"{name}.weight"])  # not the right inverse: a zero row would give 0/0
        originals = modules[name].parametrizations.weight
        originals.original0.copy_(g.reshape(originals.original0.shape))
        originals.original1.copy_(v)
    return model.eval()


def _prepare(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


__all__ = ["GPT_FILE", "SOVITS_FILE", "with_weight_norm", "write_upstream"]
