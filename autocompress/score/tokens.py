"""GPT-level agreement of a student with its teacher: greedy tokens and teacher-forced KL.

- **Token agreement**: both models decode greedily (top-k 1, same prompt, same cap); the score is
  the fraction of positions ``0 .. max(n_teacher, n_student) - 1`` where both produced a token
  and it is the same. A student that stops early or runs on loses the extra positions.
- **Teacher-forced KL**: both models read the same sequence (the prompt codes followed by the
  teacher's greedy codes); at every position that predicts a generated code or the final EOS,
  ``KL(p_teacher || p_student)`` in nats over the full vocabulary, averaged.

Utterances are duck-typed: anything with ``phones [N]`` (int64), ``bert [1024, N]`` and
``codes [T]`` (int64) attributes (the search's ``VoiceItem`` is one).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from autocompress.exceptions import DataError
from autocompress.score.metric import Metric, host_device, measured


class Utterance(Protocol):
    """What the voice-level scorers read from one utterance."""

    phones: Tensor  # [N] int64 phone ids
    bert: Tensor  # [1024, N] float32
    codes: Tensor  # [T] int64 semantic codes (25 Hz)
    refer: Tensor  # [1, spec_bins, Tr] linear spectrogram of the utterance's audio


def token_agreement_value(teacher_tokens: Tensor, student_tokens: Tensor) -> float:
    """Fraction of positions where both sequences hold the same token (see the module docstring)."""
    t = teacher_tokens.reshape(-1).cpu()
    s = student_tokens.reshape(-1).cpu()
    n = max(t.numel(), s.numel())
    if n == 0:
        return 1.0
    m = min(t.numel(), s.numel())
    return float((t[:m] == s[:m]).sum()) / n


def kl_value(teacher_logits: Tensor, student_logits: Tensor) -> float:
    """Mean over positions of KL(softmax(teacher) || softmax(student)), nats; logits ``[..., V]``."""
    if teacher_logits.shape != student_logits.shape:
        raise DataError(
            "teacher and student logits differ in shape: "
            f"{list(teacher_logits.shape)} vs {list(student_logits.shape)}"
        )
    lt = F.log_softmax(teacher_logits.double(), dim=-1)
    ls = F.log_softmax(student_logits.double(), dim=-1)
    return float((lt.exp() * (lt - ls)).sum(-1).mean())


def token_agreement(teacher_tokens: Tensor, student_tokens: Tensor, device: str | None = None) -> Metric:
    """:func:`token_agreement_value` as a measured metric ``token_agreement`` (1 = identical)."""
    return measured("token_agreement", token_agreement_value(teacher_tokens, student_tokens), "", device)


def teacher_forced_kl(teacher_logits: Tensor, student_logits: Tensor, device: str | None = None) -> Metric:
    """:func:`kl_value` as a measured metric ``teacher_forced_kl`` (0 = identical)."""
    return measured("teacher_forced_kl", kl_value(teacher_logits, student_logits), "nats", device)


def _prefix(prompt: Utterance, sentence: Utterance, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    phones = torch.cat([prompt.phones, sentence.phones])[None].to(device)  # [1, N]
    bert = torch.cat([prompt.bert, sentence.bert], dim=1)[None].to(device)  # [1, 1024, N]
    return phones, bert, prompt.codes[None].to(device)  # prompt codes [1, P]


@torch.no_grad()
def greedy_tokens(gpt: Any, prompt: Utterance, sentence: Utterance, max_new_tokens: int) -> Tensor:
    """Greedy codes ``[n]`` of ``gpt`` for ``sentence`` prompted by ``prompt`` (upstream's rules)."""
    device = next(gpt.parameters()).device
    phones, bert, codes = _prefix(prompt, sentence, device)
    return gpt.generate(phones, bert, codes, top_k=1, max_new_tokens=max_new_tokens)[0].cpu()


@torch.no_grad()
def forced_logits(gpt: Any, prompt: Utterance, sentence: Utterance, tokens: Tensor) -> Tensor:
    """Logits ``[n + 1, V]`` of ``gpt`` predicting each of ``tokens`` and then EOS, teacher-forced."""
    device = next(gpt.parameters()).device
    phones, bert, codes = _prefix(prompt, sentence, device)
    seq = torch.cat([codes, tokens.reshape(1, -1).to(device)], dim=1)  # [1, P + n]
    n_phones = torch.tensor([phones.shape[1]], device=device)
    n_codes = torch.tensor([seq.shape[1]], device=device)
    logits, _ = gpt.forward_train(phones, n_phones, bert, seq, n_codes)  # [1, P + n + 1, V]
    return logits[0, codes.shape[1] :].float().cpu()


def gpt_agreement(
    teacher: Any,
    student: Any,
    prompt: Utterance,
    sentences: Sequence[Utterance],
    max_new_tokens: int,
    teacher_tokens: Sequence[Tensor] | None = None,
) -> list[Metric]:
    """Mean token agreement and teacher-forced KL of ``student`` against ``teacher``.

    Args:
        teacher, student: ``Text2SemanticGPT`` models (eval mode).
        prompt: the reference utterance (its phones, BERT features and codes prefix every sentence).
        sentences: the evaluation sentences.
        max_new_tokens: the greedy decoding cap, the same for both models.
        teacher_tokens: the teacher's greedy codes per sentence when already known (cache them
            once per study); decoded here when None.

    Returns:
        ``token_agreement`` and ``teacher_forced_kl`` (means over sentences), measured.
    """
    if not sentences:
        raise DataError("gpt_agreement needs at least one sentence")
    device = host_device(next(student.parameters()).device)
    agree, kl = [], []
    for i, sentence in enumerate(sentences):
        if teacher_tokens is not None:
            ref = teacher_tokens[i]
        else:
            ref = greedy_tokens(teacher, prompt, sentence, max_new_tokens)
        agree.append(token_agreement_value(ref, greedy_tokens(student, prompt, sentence, max_new_tokens)))
        t_logits = forced_logits(teacher, prompt, sentence, ref)
        kl.append(kl_value(t_logits, forced_logits(student, prompt, sentence, ref)))
    return [
        measured("token_agreement", sum(agree) / len(agree), "", device),
        measured("teacher_forced_kl", sum(kl) / len(kl), "nats", device),
    ]
