"""Export views of the SoVITS synthesizer: one graph per module group.

The decode path ``SynthesizerTrn.decode`` is cut at its module boundaries so each group gets
its own precision and its own fallback, and the style vector can be cached per voice:

- ``ref_enc``: reference spectrogram ``[1, spec_bins, Tr]`` -> style vector ``ge`` ``[1, gin, 1]``;
  the Pro versions also take the reference's speaker-verification vector ``ref_sv``
  ``[1, sv_dim]`` (made by GPT-SoVITS's ERes2Net at data preparation, not by the bundle).
- ``enc_p``: codes ``[1, 1, Tc]``, phones ``[1, Tt]``, ``ge`` -> prior ``m_p``, ``logs_p``
  ``[1, inter, 2 Tc]`` (codebook lookup, 2x upsampling and the text encoder).
- ``flow``: ``z_p`` ``[1, inter, T]``, ``ge`` -> ``z`` (the flow run in reverse).
- ``dec``: ``z`` ``[1, inter, T]``, ``ge`` -> waveform ``[1, 1, T * samples_per_frame]``.

Between ``enc_p`` and ``flow`` the runner draws the prior sample itself:
``z_p = m_p + noise * exp(logs_p) * noise_scale``. Speed is fixed at 1 (the speed resampling
has a data-dependent length that the graphs do not express); masks are all ones, as in
upstream's ``decode``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from autocompress.models.gpt_sovits.sovits import SynthesizerTrn


class StyleGraph(nn.Module):
    """``ref_enc``: reference spectrogram (and, for Pro, its speaker vector) -> style vector ``ge``."""

    def __init__(self, sovits: SynthesizerTrn) -> None:
        super().__init__()
        self.sovits = sovits

    def forward(self, ref_spec: Tensor, ref_sv: Tensor | None = None) -> Tensor:
        return self.sovits.style(ref_spec, ref_sv)  # [1, gin, 1]


class PriorGraph(nn.Module):
    """``enc_p``: codes and phones -> prior mean and log-scale at 50 Hz."""

    def __init__(self, sovits: SynthesizerTrn) -> None:
        super().__init__()
        self.sovits = sovits

    def forward(self, codes: Tensor, text: Tensor, ge: Tensor) -> tuple[Tensor, Tensor]:
        sovits = self.sovits
        features = sovits.quantizer.decode(codes.transpose(0, 1))  # [1, ssl_dim, Tc]
        if sovits.config.semantic_frame_rate == "25hz":
            # Nearest 2x upsampling, written as a repeat so the length stays symbolic on export
            # (SynthesizerTrn.infer_latent computes a Python int size, which tracing freezes).
            features = torch.repeat_interleave(features, 2, dim=2)  # [1, ssl_dim, 2 Tc]
        y_lengths = torch.ones_like(codes[0, :, 0]) * features.shape[2]  # [1]
        text_lengths = torch.ones_like(codes[0, :, 0]) * text.shape[1]  # [1]
        _, m_p, logs_p, _ = sovits.enc_p(features, y_lengths, text, text_lengths, sovits._text_style(ge))
        return m_p, logs_p  # [1, inter, 2 Tc] each


class FlowGraph(nn.Module):
    """``flow`` in reverse: prior sample -> latent."""

    def __init__(self, sovits: SynthesizerTrn) -> None:
        super().__init__()
        self.sovits = sovits

    def forward(self, z_p: Tensor, ge: Tensor) -> Tensor:
        mask = torch.ones_like(z_p[:, :1])  # [1, 1, T]
        return self.sovits.flow(z_p, mask, g=ge, reverse=True)


class DecoderGraph(nn.Module):
    """``dec``: latent -> waveform."""

    def __init__(self, sovits: SynthesizerTrn) -> None:
        super().__init__()
        self.sovits = sovits

    def forward(self, z: Tensor, ge: Tensor) -> Tensor:
        return self.sovits.dec(z, g=ge)  # [1, 1, T * samples_per_frame]


__all__ = ["DecoderGraph", "FlowGraph", "PriorGraph", "StyleGraph"]
