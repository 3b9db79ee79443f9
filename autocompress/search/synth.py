"""Speak one sentence with a voice, deterministically: greedy GPT codes, noise-free SoVITS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from autocompress.models.gpt_sovits.voice import Voice
from autocompress.search.distill import VoiceItem

EXTRA_CODES = 25  # generation may run one second (25 codes) past 1.5x the sentence's own length


@dataclass(frozen=True)
class Speech:
    """One synthesized sentence."""

    codes: Tensor  # [n] int64 semantic codes
    wav: Tensor  # [N] float32 at the SoVITS sampling rate
    sample_rate: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@torch.no_grad()
def synthesize(voice: Voice, prompt: VoiceItem, sentence: VoiceItem, style: Tensor | None = None) -> Speech:
    """Say ``sentence`` in the voice of ``prompt`` (its codes, phones and reference spectrogram).

    Args:
        voice: the voice (teacher or student).
        prompt: the reference utterance: GPT prompt (phones + codes) and SoVITS reference.
        sentence: the text to speak (its phones and BERT features; its codes only bound the
            generation length).
        style: the style vector of the prompt's reference, when already known; computed with
            the voice's own reference encoder when None.
    """
    gpt, sv = voice.gpt, voice.sovits
    phones = torch.cat([prompt.phones, sentence.phones])[None]  # [1, Np + Ns]
    bert = torch.cat([prompt.bert, sentence.bert], dim=1)[None]  # [1, 1024, Np + Ns]
    limit = int(1.5 * sentence.codes.numel()) + EXTRA_CODES
    codes = gpt.generate(phones, bert, prompt.codes[None], top_k=1, max_new_tokens=limit)  # [1, n]
    ge = style if style is not None else sv.style(prompt.refer)  # [1, gin, 1]
    m_p, _logs_p, y_mask = sv.infer_latent(codes[None], sentence.phones[None], ge)  # noise scale 0: z_p = m_p
    z = sv.flow(m_p, y_mask, g=ge, reverse=True)
    wav = sv.dec(z * y_mask, g=ge)  # [1, 1, N]
    return Speech(codes=codes[0].cpu(), wav=wav.reshape(-1).float().cpu(), sample_rate=sv.config.sampling_rate)


__all__ = ["EXTRA_CODES", "Speech", "synthesize"]
