"""Speak one sentence with a voice, deterministically: greedy GPT codes, noise-free SoVITS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from autocompress.models.gpt_sovits.audio import spectrogram
from autocompress.models.gpt_sovits.voice import Voice
from autocompress.search.distill import VoiceItem

EXTRA_CODES = 25  # generation may run one second (25 codes) past 1.5x the sentence's own length
CODES_PER_PHONE = 3  # for text without codes: 1.5x the ~2 codes (25 Hz) per phone of read English


def code_limit(n_phones: int) -> int:
    """Most codes to generate for ``n_phones`` phones of text whose length is not known."""
    return CODES_PER_PHONE * n_phones + EXTRA_CODES


@dataclass(frozen=True)
class Speech:
    """One synthesized sentence."""

    codes: Tensor  # [n] int64 semantic codes
    wav: Tensor  # [N] float32 at the SoVITS sampling rate
    sample_rate: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def reference_prompt(
    voice: Voice, name: str, phones: Sequence[int] | Tensor, wav: Tensor, codes: Tensor, sv: Tensor | None = None
) -> VoiceItem:
    """The prompt of a reference utterance: its phone ids, its codes ``[P]`` and its own
    spectrogram (``wav`` at the SoVITS rate), with zero BERT features (non-Chinese text)."""
    cfg = voice.sovits.config
    ids = torch.as_tensor(phones, dtype=torch.long)
    refer = spectrogram(wav.float(), cfg.filter_length, cfg.hop_length, cfg.win_length)  # [1, bins, Tr]
    bert = torch.zeros(voice.gpt.config.bert_dim, ids.numel())
    return VoiceItem(name, ids, bert, codes.reshape(-1).long(), refer, sv)


@torch.no_grad()
def synthesize(voice: Voice, prompt: VoiceItem, sentence: VoiceItem, style: Tensor | None = None) -> Speech:
    """Say ``sentence`` in the voice of ``prompt`` (its codes, phones and reference spectrogram).

    Deterministic: greedy GPT codes, noise-free SoVITS (how the search scores a voice).

    Args:
        voice: the voice (teacher or student).
        prompt: the reference utterance: GPT prompt (phones + codes) and SoVITS reference.
        sentence: the text to speak (its phones and BERT features; its codes only bound the
            generation length).
        style: the style vector of the prompt's reference, when already known; computed with
            the voice's own reference encoder when None.
    """
    limit = int(1.5 * sentence.codes.numel()) + EXTRA_CODES
    return speak(voice, prompt, sentence.phones, sentence.bert, max_new_tokens=limit, style=style)


@torch.no_grad()
def speak(
    voice: Voice,
    prompt: VoiceItem,
    phones: Tensor,
    bert: Tensor | None = None,
    *,
    top_k: int = 1,
    temperature: float = 1.0,
    noise_scale: float = 0.0,
    seed: int = 0,
    max_new_tokens: int | None = None,
    style: Tensor | None = None,
) -> Speech:
    """Say the phone ids ``phones`` ``[N]`` in the voice of ``prompt``.

    ``top_k=1`` and ``noise_scale=0`` (the defaults) are deterministic; otherwise ``seed``
    fixes the GPT's draws and the prior noise. ``bert`` ``[1024, N]`` is zeros when None (all
    but Chinese text); ``max_new_tokens`` defaults to :func:`code_limit`.
    """
    gpt, sv = voice.gpt, voice.sovits
    device = prompt.codes.device
    phones = phones.to(device)
    if bert is None:
        bert = torch.zeros(prompt.bert.shape[0], phones.numel(), device=device)
    all_phones = torch.cat([prompt.phones, phones])[None]  # [1, Np + Ns]
    all_bert = torch.cat([prompt.bert, bert.to(device)], dim=1)[None]  # [1, 1024, Np + Ns]
    limit = max_new_tokens if max_new_tokens is not None else code_limit(phones.numel())
    rng = torch.Generator(device=device).manual_seed(seed)
    codes = gpt.generate(
        all_phones, all_bert, prompt.codes[None], top_k=top_k, temperature=temperature,
        max_new_tokens=limit, generator=rng,
    )  # [1, n]
    ge = style if style is not None else sv.style(prompt.refer, prompt.sv)  # [1, gin, 1]
    m_p, logs_p, y_mask = sv.infer_latent(codes[None], phones[None], ge)
    z_p = m_p
    if noise_scale > 0:
        noise = torch.randn(m_p.shape, generator=rng, device=device, dtype=m_p.dtype)
        z_p = m_p + noise * torch.exp(logs_p) * noise_scale
    z = sv.flow(z_p, y_mask, g=ge, reverse=True)
    wav = sv.dec(z * y_mask, g=ge)  # [1, 1, N]
    return Speech(codes=codes[0].cpu(), wav=wav.reshape(-1).float().cpu(), sample_rate=sv.config.sampling_rate)


__all__ = ["CODES_PER_PHONE", "EXTRA_CODES", "Speech", "code_limit", "reference_prompt", "speak", "synthesize"]
