"""Calibration batches for data-driven importance, built from a voice and a few utterances.

Each group's batches feed that group's module exactly what it sees at inference: the
teacher computes the inputs once (codes -> features, reference -> style vector, prior ->
flow -> decoder latent, noise scale 0), and every batch replays them. The GPT batches
return the teacher-forced cross entropy (a real loss for Taylor importance); the SoVITS
batches return the module's output (Taylor then uses its energy as the loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autocompress.compress.importance import Calibration, CalibrationBatch
from autocompress.models.gpt_sovits.voice import Voice


@dataclass(frozen=True)
class CalibrationExample:
    """One utterance: what the GPT reads and what SoVITS decodes.

    Attributes:
        phones: ``[1, N]`` phone ids (prompt + target) for the GPT.
        bert: ``[1, bert_dim, N]`` BERT features.
        codes: ``[1, 1, Tc]`` semantic codes of the target (what SoVITS decodes; the GPT is
            teacher-forced on them).
        text: ``[1, Tt]`` target phone ids for SoVITS.
        refer: ``[1, spec_bins, Tr]`` reference linear spectrogram.
        sv: ``[1, sv_dim]`` speaker-verification vector of the reference (v2Pro/v2ProPlus only).
    """

    phones: Tensor
    bert: Tensor
    codes: Tensor
    text: Tensor
    refer: Tensor
    sv: Tensor | None = None


def voice_calibration(teacher: Voice, examples: Sequence[CalibrationExample]) -> Calibration:
    """Per module group, one calibration batch per example (see the module docstring)."""
    out: dict[str, list[CalibrationBatch]] = {g: [] for g in ("gpt", "enc_p", "flow", "dec", "ref_enc")}
    for ex in examples:
        out["gpt"].append(_gpt_batch(ex))
        for group, batch in _sovits_batches(teacher.sovits, ex).items():
            out[group].append(batch)
    return out


def _gpt_batch(ex: CalibrationExample) -> CalibrationBatch:
    codes = ex.codes.reshape(1, -1)
    device = ex.phones.device
    lengths = (torch.tensor([ex.phones.shape[1]], device=device), torch.tensor([codes.shape[1]], device=device))

    def run(gpt: nn.Module) -> Tensor:
        logits, targets = gpt.forward_train(ex.phones, lengths[0], ex.bert, codes, lengths[1])
        return F.cross_entropy(logits.transpose(1, 2), targets)

    return run


@torch.no_grad()
def _sovits_batches(sovits: nn.Module, ex: CalibrationExample) -> dict[str, CalibrationBatch]:
    config = sovits.config
    refer = ex.refer[:, : config.ref_bins]
    refer_mask = torch.ones(1, 1, refer.shape[2], device=refer.device)
    ge = sovits.style(ex.refer, ex.sv)  # [1, gin, 1]
    ge_text = sovits.ge_to512(ge.transpose(1, 2)).transpose(1, 2) if config.is_pro else ge
    features = sovits.quantizer.decode(ex.codes.transpose(0, 1))  # [1, ssl_dim, Tc]
    if config.semantic_frame_rate == "25hz":
        features = F.interpolate(features, size=features.shape[-1] * 2, mode="nearest")
    lengths = torch.tensor([features.shape[-1]], device=features.device)
    text_lengths = torch.tensor([ex.text.shape[1]], device=ex.text.device)
    _, m_p, _, y_mask = sovits.enc_p(features, lengths, ex.text, text_lengths, ge_text)
    z = sovits.flow(m_p, y_mask, g=ge, reverse=True)  # noise scale 0
    return {
        "ref_enc": lambda m: m(refer * refer_mask, refer_mask),
        "enc_p": lambda m: m(features, lengths, ex.text, text_lengths, ge_text)[1],
        "flow": lambda m: m(m_p, y_mask, g=ge, reverse=True),
        "dec": lambda m: m(z * y_mask, g=ge),
    }


__all__ = ["CalibrationExample", "voice_calibration"]
