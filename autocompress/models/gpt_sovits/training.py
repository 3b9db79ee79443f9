"""Teacher training from scratch: codebook fitting, losses and single optimisation steps.

Used by ``scripts/build_demo_voice.py`` to train the demo voice on a CPU. The recipe is a
reduced version of upstream's (§4 of the architecture spec), chosen for a 2-core machine:

* The top-level ``ssl_proj`` (768 -> 768, kernel 2, stride 2) is fixed to the mean of each
  pair of 50 Hz frames, and the quantizer codebook is fitted by k-means on those 25 Hz
  vectors, then frozen (upstream gets both from its pretrained model and never trains them).
* SoVITS is trained without a discriminator by default: mel L1 (weight ``c_mel``),
  multi-resolution STFT loss (spectral convergence + log magnitude), an L1 on each slice's
  mean (DC offset, which no spectral loss constrains) and the VITS KL term.
  An optional adversarial term uses whatever discriminator the caller passes.
* The GPT is trained with mean token cross-entropy on teacher-forced logits.

The recipe itself (:class:`TrainOptions`, the learning-rate schedule of the GPT and the rules
that pick the best checkpoint) lives here too, so that the CPU build script and the GPU
scripts (``scripts/gpu_sovits.py``, ``scripts/gpu_gpt.py``, which cannot import the build script)
share one copy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autocompress.exceptions import ConfigError, DataError
from autocompress.models.gpt_sovits.audio import mel_spectrogram
from autocompress.models.gpt_sovits.config import SoVITSConfig
from autocompress.models.gpt_sovits.modules import sequence_mask

if TYPE_CHECKING:
    from autocompress.models.gpt_sovits.sovits import SoVITSTrainOutput

CODEBOOK_PREFIX = "quantizer.vq.layers.0._codebook."


# --------------------------------------------------------------------------- codebook


@torch.no_grad()
def init_ssl_proj_pair_mean_(conv: nn.Conv1d) -> nn.Conv1d:
    """Set a kernel-2 ``ssl_proj`` to output the mean of each pair of input frames.

    Raises:
        ConfigError: when the conv is not square with kernel 2.
    """
    out_ch, in_ch, k = conv.weight.shape
    if out_ch != in_ch or k != 2:
        raise ConfigError(f"ssl_proj must be [C, C, 2] for the pair mean, got {list(conv.weight.shape)}")
    eye = torch.eye(in_ch, dtype=conv.weight.dtype)
    conv.weight.copy_(0.5 * eye[:, :, None].expand(-1, -1, 2))
    if conv.bias is not None:
        conv.bias.zero_()
    return conv


@torch.no_grad()
def kmeans(
    x: Tensor, n_codes: int, iters: int = 25, seed: int = 0, chunk: int = 8192
) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means with k-means++ seeding (deterministic for a seed).

    Args:
        x: vectors ``[N, D]`` (float32).
        n_codes: number of centroids K; when N < K the extra centroids are copies of data
            points plus a tiny seeded offset, so every row is distinct.
        iters: Lloyd iterations.
        seed: seeds the initialisation.
        chunk: rows per distance block (bounds memory).

    Returns:
        (centroids ``[K, D]``, counts ``[K]`` of vectors assigned to each).

    Raises:
        DataError: when ``x`` is empty or not 2-D.
    """
    if x.dim() != 2 or x.shape[0] == 0:
        raise DataError(f"k-means needs vectors [N, D] with N >= 1, got shape {list(x.shape)}")
    x = x.float()
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    k_data = min(n_codes, n)
    centroids = _kmeans_pp(x, k_data, gen, chunk)
    for _ in range(iters):
        assign = _nearest(x, centroids, chunk)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k_data).float()
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, sums / counts.clamp(min=1)[:, None])
        if bool(empty.any()):  # reseed empty clusters on random points
            idx = torch.randint(0, n, (int(empty.sum()),), generator=gen)
            centroids[empty] = x[idx]
    assign = _nearest(x, centroids, chunk)
    counts = torch.bincount(assign, minlength=k_data).float()
    if k_data < n_codes:
        extra = centroids[torch.randint(0, k_data, (n_codes - k_data,), generator=gen)]
        extra = extra + 1e-3 * torch.randn(extra.shape, generator=gen)
        centroids = torch.cat([centroids, extra])
        counts = torch.cat([counts, torch.zeros(n_codes - k_data)])
    return centroids, counts


def _nearest(x: Tensor, centroids: Tensor, chunk: int) -> Tensor:
    c_sq = centroids.square().sum(1)  # [K]
    out = []
    for start in range(0, x.shape[0], chunk):
        block = x[start : start + chunk]
        dist = c_sq[None, :] - 2.0 * block @ centroids.T  # [n, K], ||x||^2 dropped
        out.append(dist.argmin(1))
    return torch.cat(out)


def _kmeans_pp(x: Tensor, k: int, gen: torch.Generator, chunk: int) -> Tensor:
    n = x.shape[0]
    x_sq = x.square().sum(1)  # [N]
    first = int(torch.randint(0, n, (1,), generator=gen))
    chosen = [first]
    best = (x_sq - 2.0 * (x @ x[first]) + x_sq[first]).clamp(min=0)  # [N] to the nearest chosen
    for _ in range(1, k):
        total = float(best.sum())
        probs = best / total if total > 0 else torch.full_like(best, 1.0 / n)
        idx = int(torch.multinomial(probs, 1, generator=gen))
        chosen.append(idx)
        best = torch.minimum(best, (x_sq - 2.0 * (x @ x[idx]) + x_sq[idx]).clamp(min=0))
    del chunk
    return x[chosen].clone()


def codebook_state(centroids: Tensor, counts: Tensor) -> dict[str, Tensor]:
    """State-dict entries of a fitted, frozen quantizer codebook (upstream's four buffers)."""
    return {
        CODEBOOK_PREFIX + "inited": torch.ones(1),
        CODEBOOK_PREFIX + "cluster_size": counts.float().clone(),
        CODEBOOK_PREFIX + "embed": centroids.float().clone(),
        CODEBOOK_PREFIX + "embed_avg": (centroids * 1.0).float().clone(),
    }


# --------------------------------------------------------------------------- SoVITS losses


def kl_loss(z_p: Tensor, logs_q: Tensor, m_p: Tensor, logs_p: Tensor, mask: Tensor) -> Tensor:
    """VITS KL term, normalised by the number of valid frames (upstream's ``kl_loss``).

    All tensors ``[B, C, T]`` except ``mask`` ``[B, 1, T]``.
    """
    z_p, logs_q, m_p, logs_p = (t.float() for t in (z_p, logs_q, m_p, logs_p))
    kl = logs_p - logs_q - 0.5 + 0.5 * (z_p - m_p).square() * torch.exp(-2.0 * logs_p)
    return (kl * mask).sum() / mask.sum()


# (n_fft, hop, window) triples of the multi-resolution STFT loss at 32 kHz
STFT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))


def multi_resolution_stft_loss(y_hat: Tensor, y: Tensor) -> Tensor:
    """Spectral convergence + log-magnitude L1, averaged over :data:`STFT_RESOLUTIONS`.

    Args:
        y_hat, y: waveforms ``[B, N]`` or ``[B, 1, N]``.
    """
    y_hat = y_hat.reshape(y_hat.shape[0], -1).float()
    y = y.reshape(y.shape[0], -1).float()
    total = y.new_zeros(())
    for n_fft, hop, win in STFT_RESOLUTIONS:
        window = torch.hann_window(win, device=y.device)
        mags = []
        for w in (y_hat, y):
            s = torch.stft(w, n_fft, hop, win, window, center=True, return_complex=True)
            mags.append(torch.sqrt(s.real.square() + s.imag.square() + 1e-7))
        m_hat, m = mags
        sc = torch.linalg.norm(m - m_hat) / torch.linalg.norm(m).clamp(min=1e-7)
        log_mag = F.l1_loss(torch.log(m_hat), torch.log(m))
        total = total + sc + log_mag
    return total / len(STFT_RESOLUTIONS)


def slice_segments(x: Tensor, starts: Tensor, size: int) -> Tensor:
    """Take ``x[b, :, starts[b] : starts[b] + size]`` for each row -> ``[B, C, size]``."""
    return torch.stack([x[i, :, int(s) : int(s) + size] for i, s in enumerate(starts)])


@dataclass(frozen=True)
class SoVITSLossWeights:
    """Weights of the discriminator-free SoVITS objective."""

    mel: float = 45.0  # upstream c_mel
    kl: float = 1.0  # upstream c_kl
    stft: float = 2.0  # multi-resolution STFT (not in upstream; replaces part of the GAN's role)
    dc: float = 45.0  # L1 of the slice's mean (DC): no spectral loss sees it, and it drifts
    adv: float = 1.0  # adversarial + feature matching, when a discriminator is used


def sovits_vits_forward(
    model: nn.Module,
    ssl: Tensor,
    spec: Tensor,
    spec_lengths: Tensor,
    wav: Tensor,
    text: Tensor,
    text_lengths: Tensor,
) -> tuple[SoVITSTrainOutput, Tensor]:
    """Upstream's training forward (posterior, flow, a random decoder slice) and the real slice.

    Args:
        model: ``SynthesizerTrn`` with ``enc_q``, in train mode.
        ssl: ``[B, 768, T50]``; spec: ``[B, 1025, T]``; wav: ``[B, 1, N]`` at 32 kHz.
        text: ``[B, L]`` phone ids; the lengths are ``[B]``.

    Returns:
        (the model's output, whose ``o`` is the generated slice ``[B, 1, S]``; the real slice).
    """
    out = model(ssl, spec, spec_lengths, text, text_lengths)
    hop = model.config.hop_length
    y = slice_segments(wav, out.ids_slice * hop, (out.o.shape[-1] // hop) * hop)  # [B, 1, S]
    return out, y


def sovits_generator_losses(
    out: SoVITSTrainOutput, y: Tensor, cfg: SoVITSConfig, weights: SoVITSLossWeights,
    discriminator: nn.Module | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Generator loss of :func:`sovits_vits_forward`: :func:`waveform_losses`, KL and commitment.

    With a discriminator, step it on ``(y, out.o)`` before calling this (its adversarial and
    feature-matching terms use the discriminator as it is now).

    Returns:
        (total loss, float parts for logging).
    """
    total, parts = waveform_losses(cfg, out.o, y, weights, discriminator)
    loss_kl = kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.y_mask)
    total = total + weights.kl * loss_kl + out.commit_loss.float().mean()
    parts["kl"] = loss_kl.item()
    parts["total"] = total.item()
    return total, parts


def waveform_losses(
    cfg: SoVITSConfig, o: Tensor, y: Tensor, weights: SoVITSLossWeights, discriminator: nn.Module | None = None
) -> tuple[Tensor, dict[str, float]]:
    """Generator loss of a generated slice ``o`` against the real slice ``y`` (both ``[B, 1, S]``).

    Mel L1 (both mels computed from the waveforms), multi-resolution STFT, DC, and with a
    discriminator least-squares adversarial plus feature-matching terms.
    """
    mel_kw = dict(
        n_fft=cfg.filter_length, n_mels=cfg.n_mel_channels, sampling_rate=cfg.sampling_rate,
        hop_length=cfg.hop_length, win_length=cfg.win_length,
    )  # fmt: skip
    loss_mel = F.l1_loss(mel_spectrogram(o.squeeze(1).float(), **mel_kw), mel_spectrogram(y.squeeze(1).float(), **mel_kw))
    loss_stft = multi_resolution_stft_loss(o, y)
    loss_dc = F.l1_loss(o.float().mean(-1), y.float().mean(-1))
    total = weights.mel * loss_mel + weights.stft * loss_stft + weights.dc * loss_dc
    parts = {"mel": loss_mel.item(), "stft": loss_stft.item(), "dc": loss_dc.item()}
    if discriminator is not None:
        with torch.no_grad():
            _, real_maps = discriminator.score(y)
        fake_out, fake_maps = discriminator.score(o)
        adv = sum(torch.mean((1.0 - d.float()) ** 2) for d in fake_out)
        fm = sum(
            torch.mean(torch.abs(r.detach().float() - g.float()))
            for rm, gm in zip(real_maps, fake_maps)
            for r, g in zip(rm, gm)
        )
        total = total + weights.adv * (adv + 2.0 * fm)
        parts.update(adv=float(adv.detach()), fm=float(fm.detach()))
    return total, parts


def sovits_decode_forward(
    model: nn.Module,
    codes: Tensor,
    codes_lengths: Tensor,
    text: Tensor,
    text_lengths: Tensor,
    refer: Tensor,
    refer_lengths: Tensor,
    wav: Tensor,
    noise_scale: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """A random slice of the inference path itself: codes -> enc_p -> reverse flow -> dec.

    This is what ``decode`` computes (batched, with masks), so it trains exactly the model
    that synthesizes; it needs no posterior encoder. Each row may draw its prior sample at
    its own ``noise_scale`` (``[B]``; None = 0, deterministic).

    Args:
        codes: semantic codes ``[B, Tc]`` at 25 Hz (right-padded); ``codes_lengths`` ``[B]``.
        text: phone ids ``[B, Tt]``; ``text_lengths`` ``[B]``.
        refer: reference spectrograms ``[B, spec_bins, Tr]``; ``refer_lengths`` ``[B]``.
        wav: ``[B, 1, N]`` at 32 kHz, frame ``t`` of the latent covering ``wav[t*hop:(t+1)*hop]``.

    Returns:
        (generated slice ``[B, 1, S]``, the real slice at the same place).
    """
    cfg = model.config
    if cfg.semantic_frame_rate != "25hz":
        raise ConfigError("sovits_decode_forward expects 25 Hz semantic codes")
    ref_mask = sequence_mask(refer_lengths, refer.size(2)).unsqueeze(1).to(refer.dtype)
    ge = model.ref_enc(refer[:, : cfg.ref_bins] * ref_mask, ref_mask)  # [B, gin, 1]
    with torch.no_grad():
        quantized = model._codes_to_features(codes[None])  # [B, ssl_dim, 2 Tc]
    y_lengths = 2 * codes_lengths
    _, m_p, logs_p, y_mask = model.enc_p(quantized, y_lengths, text, text_lengths, model._text_style(ge))
    z_p = m_p
    if noise_scale is not None:
        eps = torch.randn(m_p.shape, generator=generator, device=m_p.device)
        z_p = m_p + eps * torch.exp(logs_p) * noise_scale.to(m_p)[:, None, None]
    z = model.flow(z_p, y_mask, g=ge, reverse=True) * y_mask
    z_slice, starts = model._random_slice(z, y_lengths, generator)
    o = model.dec(z_slice, g=ge)
    hop = cfg.hop_length
    return o, slice_segments(wav, starts * hop, z_slice.shape[-1] * hop)


def discriminator_loss(discriminator: nn.Module, y: Tensor, y_hat: Tensor) -> Tensor:
    """Least-squares discriminator loss on real ``y`` and detached generated ``y_hat``."""
    real_out, fake_out, _, _ = discriminator(y, y_hat.detach())
    return sum(torch.mean((1.0 - r.float()) ** 2) + torch.mean(g.float() ** 2) for r, g in zip(real_out, fake_out))


# --------------------------------------------------------------------------- GPT loss


def gpt_loss(
    model: nn.Module, phones: Tensor, phones_len: Tensor, codes: Tensor, codes_len: Tensor,
    history_noise: float = 0.0, generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Mean token cross-entropy of the GPT on a right-padded batch (BERT features are zero).

    Padded target positions (EOS beyond each item's own EOS) are excluded from the mean.
    ``history_noise`` p > 0 replaces a random share p of the codes the model reads as history
    by its own teacher-forced guesses (one extra forward without gradients; the targets stay
    the true codes), so that it learns to continue from its own mistakes as in free running.
    """
    bert = phones.new_zeros((phones.shape[0], model.config.bert_dim, phones.shape[1]), dtype=torch.float32)
    history = None
    if history_noise > 0:
        with torch.no_grad():
            guesses = model.forward_train(phones, phones_len, bert, codes, codes_len)[0][:, :-1, : model.config.eos]
        swap = torch.rand(codes.shape, generator=generator, device=codes.device) < history_noise
        history = torch.where(swap, guesses.argmax(-1), codes)
    logits, targets = model.forward_train(phones, phones_len, bert, codes, codes_len, history=history)  # [B, T+1, V]
    t = torch.arange(targets.shape[1], device=targets.device)[None, :]
    valid = t <= codes_len[:, None]  # the codes and one EOS
    ce = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # [B, T+1]
    loss = (ce * valid).sum() / valid.sum()
    with torch.no_grad():
        acc = ((logits.argmax(-1) == targets) & valid).sum() / valid.sum()
    return loss, {"ce": loss.item(), "acc": acc.item()}


# --------------------------------------------------------------------------- the demo recipe


@dataclass(frozen=True)
class TrainOptions:
    """How the demo teachers are trained (the demo voice's VOICE.md records what actually ran)."""

    sovits_objective: str = "decode"  # "decode": the inference path itself; "vits": posterior + KL
    discriminator: str = "light"  # "none", or "light": LIGHT_PERIOD_CHANNELS without the scale branch
    init_from: Path | None = None  # start new training state from the checkpoints in this folder
    gpt_batch: int = 16
    max_noise_scale: float = 0.5  # decode objective: each row's prior noise scale ~ U(0, this)
    sovits_lr: float = 3e-4  # AdamW learning rate of SoVITS (and its discriminator)
    prompt_silence: bool = True  # GPT: joined rows use the first item's prompt codes
    mel_weight: float = 15.0  # weight of the mel L1 (upstream's c_mel is 45); lower lets the other terms count more
    stft_weight: float = 45.0  # weight of the multi-resolution STFT loss; its fine FFTs are what ask for harmonics
    gta_share: float = 0.0  # decode objective: share of rows decoding ground-truth-aligned codes
    gpt_history_noise: float = 0.0  # GPT: share of history codes replaced by its own guesses (gpt_loss)
    gpt_size: str | None = None  # GPT size of new GPT training; None: the default, or the size resumed/initialised from
    gpt_lr: float = 1e-3  # GPT peak learning rate (gpt_learning_rate)
    gpt_lr_halflife: float = 1000.0  # GPT steps per halving of the learning rate


GPT_WARMUP_STEPS = 300


def gpt_learning_rate(step: int, peak: float = 1e-3, halflife: float = 1000.0) -> float:
    """The GPT's rate at ``step``: a linear warm-up over :data:`GPT_WARMUP_STEPS`, then a halving
    every ``halflife`` steps, never below a tenth of ``peak``.

    The default (1e-3, halving every 1000) is what the tiny GPT trained with: it started to
    overfit 18 minutes of codes after ~600 steps at 1e-3. A warm start from a trained GPT
    (whose optimiser state is lost) may want a lower peak.
    """
    warmup = min(1.0, (step + 1) / GPT_WARMUP_STEPS)
    return max(peak / 10, peak * warmup * 0.5 ** (step / halflife))


SELECT_RULES = {
    # a GPT that stops early or never stops is worse than its cross-entropy says, and so is one
    # that speaks every sentence 20 % fast while staying inside the window
    "gpt": "ce + share of held-out items whose greedy length is outside 0.7-1.3x the source's"
           " + mean |ln(greedy length / source length)|"
           " + share of UNSEEN_TEXTS whose greedy decoding never stops",
    "sovits": "mel_l1 - 0.5 * (distillmos - 1) - 0.5 * voiced_recall",
    # training on ground-truth-aligned codes: the GTA codes' mel L1 counts as much as the true codes'
    "sovits_gta": "(mel_l1 + gta_mel_l1) / 2 - 0.5 * (distillmos - 1) - 0.5 * voiced_recall",
}  # fmt: skip


# sentences no model trains on (the first and last are README's examples): GPTs that ran on in
# silence after some of them passed the held-out checks in the fifth build
UNSEEN_TEXTS = (
    "The red boat is here.", "Hello there.", "She bought a lamp and two chairs.",
    "Where did you put the green book?", "The red boat is here at three.",
)  # fmt: skip


def gpt_optimizer(params, lr: float = 1e-3) -> torch.optim.Optimizer:  # noqa: ANN001
    """The AdamW of the demo GPT (its rate is set every step by :func:`gpt_learning_rate`)."""
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.01)


def gpt_batch(rows: Sequence[Sequence[Any]]) -> tuple[Tensor, ...]:
    """Right-padded (phones, phones_len, codes, codes_len) of training rows.

    Each row joins one or more items (anything with ``phones``, ``codes`` and ``prompt_codes``
    tensors; ``prompt_codes`` may be None). Every item but the last contributes its
    ``prompt_codes`` when it has them: at inference the prompt audio ends in 0.6 s of appended
    zeros (upstream), and a GPT that never saw that silence before more speech learns to stop
    after it.
    """
    phones = [torch.cat([it.phones for it in row]) for row in rows]
    codes = [
        torch.cat([it.prompt_codes if it.prompt_codes is not None else it.codes for it in row[:-1]] + [row[-1].codes])
        for row in rows
    ]
    device = phones[0].device
    p_len = torch.tensor([len(p) for p in phones], device=device)
    c_len = torch.tensor([len(c) for c in codes], device=device)
    return (torch.nn.utils.rnn.pad_sequence(phones, batch_first=True), p_len,
            torch.nn.utils.rnn.pad_sequence(codes, batch_first=True), c_len)  # fmt: skip


def english_utterance(phones: Tensor, bert_dim: int, codes: Tensor | None = None) -> SimpleNamespace:
    """Phone ids [+ codes] as :mod:`autocompress.score.tokens` reads an utterance; English has no
    BERT features (upstream feeds zeros), so ``bert`` is zeros on ``phones``' device."""
    bert = torch.zeros(bert_dim, phones.numel(), device=phones.device)
    return SimpleNamespace(phones=phones, bert=bert, codes=codes)


@torch.no_grad()
def gpt_greedy_checks(
    gpt: nn.Module, prompt_phones: Tensor, prompt_codes: Tensor, held_out: Sequence[tuple[Tensor, int]],
    unseen: Sequence[tuple[Tensor, int]], max_ratio: float = 2.0,
) -> tuple[list[float], float]:
    """What :func:`gpt_select` reads of greedy decoding, with ``gpt``'s weights rounded to fp16 as
    it ships (greedy ties are that close), prompted with ``prompt_phones`` and ``prompt_codes``.

    ``held_out``: (phone ids, true code count) of each held-out item, whose greedy length / true
    length is returned (decoding stops at ``max_ratio`` times the true length); ``unseen``:
    (phone ids, code limit) of each :data:`UNSEEN_TEXTS` sentence, of which the share that runs to
    its limit (never stops) is returned.
    """
    from autocompress.score.tokens import greedy_tokens

    shipped = copy.deepcopy(gpt).eval()
    for t in list(shipped.parameters()) + list(shipped.buffers()):
        t.data = t.data.half().float() if t.is_floating_point() else t.data
    dim, device = shipped.config.bert_dim, next(shipped.parameters()).device

    def utterance(phones: Tensor, codes: Tensor | None = None) -> SimpleNamespace:  # on the GPT's device
        return english_utterance(phones.to(device), dim, None if codes is None else codes.to(device))

    ref = utterance(prompt_phones, prompt_codes)
    ratios = [greedy_tokens(shipped, ref, utterance(phones), int(max_ratio * n) + 1).numel() / n for phones, n in held_out]
    runaway = sum(greedy_tokens(shipped, ref, utterance(phones), limit).numel() >= limit for phones, limit in unseen)
    return ratios, runaway / max(1, len(unseen))


def gpt_select(ce: float, length_ratios: Sequence[float], runaway: float) -> dict[str, float]:
    """:data:`SELECT_RULES` ``["gpt"]`` and its parts (``select``: lower is better).

    ``length_ratios``: greedy length / true length of each held-out item; ``runaway``: the share
    of :data:`UNSEEN_TEXTS` whose greedy decoding never stopped.
    """
    if not length_ratios:
        raise DataError("gpt_select needs the greedy length of at least one held-out item")
    off = sum(not 0.7 <= r <= 1.3 for r in length_ratios) / len(length_ratios)
    log_error = sum(abs(math.log(max(r, 1e-3))) for r in length_ratios) / len(length_ratios)
    return {"ce": ce, "length_ratio": sum(length_ratios) / len(length_ratios), "length_off": off,
            "length_log_error": log_error, "unseen_runaway": runaway,
            "select": ce + off + log_error + runaway}  # fmt: skip


def save_atomic(obj: object, path: Path) -> None:
    """``torch.save`` through a temporary file and a rename: a run killed while saving keeps the
    file it had (training states and best models)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def sovits_optimizer(params, lr: float) -> torch.optim.Optimizer:  # noqa: ANN001
    """The AdamW of the SoVITS and its discriminator (upstream's betas and eps)."""
    return torch.optim.AdamW(params, lr=lr, betas=(0.8, 0.99), eps=1e-9)


def sovits_select(mel_l1: float, voiced_recall: float, distillmos: float = 1.0) -> float:
    """:data:`SELECT_RULES` ``["sovits"]`` (lower is better): the held-out log-mel L1, less half
    of what DistillMOS gained over 1 (its floor for audio that is not yet speech, where it cannot
    rank models), less half the voiced recall (a noise-like decoder can have the lower mel L1;
    one that makes harmonics is nearer to speech). Without a DistillMOS (a machine that lacks
    the scorer) its term is 0."""
    return mel_l1 - 0.5 * (distillmos - 1.0) - 0.5 * voiced_recall


__all__ = [
    "CODEBOOK_PREFIX",
    "GPT_WARMUP_STEPS",
    "SELECT_RULES",
    "STFT_RESOLUTIONS",
    "SoVITSLossWeights",
    "TrainOptions",
    "UNSEEN_TEXTS",
    "codebook_state",
    "discriminator_loss",
    "english_utterance",
    "gpt_batch",
    "gpt_greedy_checks",
    "gpt_learning_rate",
    "gpt_loss",
    "gpt_optimizer",
    "gpt_select",
    "init_ssl_proj_pair_mean_",
    "kl_loss",
    "kmeans",
    "multi_resolution_stft_loss",
    "save_atomic",
    "slice_segments",
    "sovits_decode_forward",
    "sovits_generator_losses",
    "sovits_optimizer",
    "sovits_select",
    "sovits_vits_forward",
    "waveform_losses",
]
