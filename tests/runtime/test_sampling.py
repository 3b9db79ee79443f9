"""The numpy sampler against the torch model's sampler, and upstream's EOS rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autocompress.exceptions import ConfigError
from autocompress.models.gpt_sovits.gpt import apply_repetition_penalty_ as torch_penalty
from autocompress.models.gpt_sovits.gpt import sampling_probs as torch_probs
from autocompress.runtime.sampling import (
    SamplingConfig,
    apply_repetition_penalty_,
    choose_token,
    sampling_probs,
    seen_mask,
)

VOCAB, EOS = 1025, 1024


@pytest.mark.parametrize(("top_k", "top_p", "temperature"), [(1, 1.0, 1.0), (15, 1.0, 1.0), (5, 0.8, 0.7), (50, 0.5, 1.3)])
def test_probabilities_match_the_torch_sampler(top_k: int, top_p: float, temperature: float) -> None:
    logits = np.random.default_rng(top_k).standard_normal(VOCAB).astype(np.float32) * 3
    want = torch_probs(torch.from_numpy(logits)[None], top_k, top_p, temperature)[0].numpy()
    got = sampling_probs(logits, top_k, top_p, temperature)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.count_nonzero(got) == min(top_k, np.count_nonzero(want))


def test_repetition_penalty_matches_torch_including_repeats() -> None:
    logits = np.random.default_rng(0).standard_normal(VOCAB).astype(np.float32)
    previous = np.array([3, 3, 10, 500, 10, 7])
    want = torch_penalty(torch.from_numpy(logits.copy())[None], torch.from_numpy(previous)[None], 1.35)[0]
    got = apply_repetition_penalty_(logits.copy(), seen_mask(previous, VOCAB), 1.35)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-7)
    assert got[3] != logits[3] and got[4] == logits[4]


def test_eos_is_banned_for_the_first_eleven_steps() -> None:
    logits = np.zeros(VOCAB, dtype=np.float32)
    logits[EOS] = 50.0  # EOS would win every draw
    logits[42] = 10.0
    rng = np.random.default_rng(0)
    greedy = SamplingConfig(top_k=1, repetition_penalty=1.0)
    for step in range(11):
        assert choose_token(logits, seen_mask(np.array([], dtype=np.int64), VOCAB), step, EOS, greedy, rng) == (42, False)
    token, stop = choose_token(logits, seen_mask(np.array([], dtype=np.int64), VOCAB), 11, EOS, greedy, rng)
    assert stop and token == EOS


def test_argmax_eos_stops_even_when_another_token_is_drawn() -> None:
    logits = np.full(VOCAB, -5.0, dtype=np.float32)
    logits[EOS] = 2.0
    logits[7] = 1.9
    config = SamplingConfig(top_k=2, repetition_penalty=1.0)
    draws = {choose_token(logits, np.zeros(VOCAB, bool), 20, EOS, config, np.random.default_rng(s)) for s in range(40)}
    assert {stop for _, stop in draws} == {True}  # the argmax is EOS: every step stops
    assert {token for token, _ in draws} == {7, EOS}  # though the draw itself varies


def test_sampling_follows_the_probabilities() -> None:
    logits = np.log(np.array([0.6, 0.3, 0.1] + [1e-9] * (VOCAB - 3), dtype=np.float32))
    config = SamplingConfig(top_k=3, repetition_penalty=1.0)
    rng = np.random.default_rng(0)
    tokens = [choose_token(logits, np.zeros(VOCAB, bool), 0, EOS, config, rng)[0] for _ in range(3000)]
    freq = np.bincount(tokens, minlength=3)[:3] / 3000
    np.testing.assert_allclose(freq, [0.6, 0.3, 0.1], atol=0.04)


def test_bad_settings_are_reported_together() -> None:
    with pytest.raises(ConfigError, match="top_k.*top_p"):
        SamplingConfig(top_k=0, top_p=1.5)
    assert SamplingConfig.from_dict(SamplingConfig(top_k=3).to_dict()) == SamplingConfig(top_k=3)


@pytest.mark.parametrize("field", ["temperature", "repetition_penalty"])
def test_nan_settings_are_refused(field: str) -> None:
    with pytest.raises(ConfigError, match=f"{field} must be"):
        SamplingConfig(**{field: float("nan")})
    assert SamplingConfig(temperature=0.0).temperature == 0.0  # zero: greedy within top-k
