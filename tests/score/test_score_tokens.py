"""GPT-level agreement: greedy tokens and teacher-forced KL, on tiny models."""

from __future__ import annotations

import copy

import pytest
import torch
from _score_items import item

from autocompress.models.gpt_sovits.config import gpt_tiny
from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
from autocompress.score import gpt_agreement, greedy_tokens, teacher_forced_kl, token_agreement


def test_token_agreement_counts_matches_over_the_longer_sequence():
    t = torch.tensor([1, 2, 3, 4])
    assert token_agreement(t, t.clone()).value == 1.0
    assert token_agreement(t, torch.tensor([1, 2, 9, 4])).value == 0.75
    assert token_agreement(t, torch.tensor([1, 2])).value == 0.5  # stopped early
    assert token_agreement(t, torch.tensor([1, 2, 3, 4, 5, 6, 7, 8])).value == 0.5  # ran on
    assert token_agreement(t, t).kind == "measured"


def test_kl_is_zero_for_equal_logits_and_grows_with_distance():
    logits = torch.randn(5, 1025)
    assert teacher_forced_kl(logits, logits.clone()).value == pytest.approx(0.0, abs=1e-12)
    near = teacher_forced_kl(logits, logits + 0.1 * torch.randn(5, 1025)).value
    far = teacher_forced_kl(logits, logits + 1.0 * torch.randn(5, 1025)).value
    assert 0 < near < far
    with pytest.raises(Exception):
        teacher_forced_kl(logits, logits[:4])


def test_gpt_agreement_of_a_model_with_itself_and_with_a_perturbed_copy():
    torch.manual_seed(0)
    teacher = Text2SemanticGPT(gpt_tiny()).eval()
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in student.h.parameters():
            p.add_(0.2 * torch.randn_like(p))
    prompt, sentences = item(0, 8, 12), [item(1, 10, 20), item(2, 6, 15)]
    same = {m.name: m.value for m in gpt_agreement(teacher, teacher, prompt, sentences, max_new_tokens=16)}
    assert same == {"token_agreement": 1.0, "teacher_forced_kl": pytest.approx(0.0, abs=1e-9)}
    cached = [greedy_tokens(teacher, prompt, s, 16) for s in sentences]
    metrics = gpt_agreement(teacher, student, prompt, sentences, 16, teacher_tokens=cached)
    other = {m.name: m.value for m in metrics}
    assert other["teacher_forced_kl"] > 1e-3
    assert other["token_agreement"] < 1.0
