"""Choosing the next semantic code from GPT logits, in numpy, with upstream's rules.

Order per step (upstream ``infer_panel_naive``, spec §5.6): drop the EOS column while
``step < eos_ban_steps``; repetition penalty over every earlier code, prompt included
(``l * r`` where ``l < 0`` else ``l / r``); top-p (only when < 1: remove tokens whose
inclusive cumulative probability exceeds p, keeping the first); temperature; top-k (keep
logits >= the k-th largest, ties kept); softmax; draw ``argmax(p / q)`` with
``q ~ Exponential(1)``. The loop stops when the penalised logits' argmax is EOS or EOS is
drawn, and that step's token is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autocompress.exceptions import ConfigError

EOS_BAN_STEPS = 11  # upstream bans EOS for steps 0..10 of the naive decoder


@dataclass(frozen=True)
class SamplingConfig:
    """Sampler settings of the GPT loop (upstream defaults except top_k, which the WebUI sets)."""

    top_k: int = 15
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35
    eos_ban_steps: int = EOS_BAN_STEPS

    def __post_init__(self) -> None:
        problems = []
        if self.top_k < 1:
            problems.append(f"top_k must be >= 1, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        if not self.temperature >= 0:  # NaN too
            problems.append(f"temperature must be >= 0, got {self.temperature}")
        if not self.repetition_penalty > 0:
            problems.append(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.eos_ban_steps < 0:
            problems.append(f"eos_ban_steps must be >= 0, got {self.eos_ban_steps}")
        if problems:
            raise ConfigError("bad sampling settings: " + "; ".join(problems))

    def to_dict(self) -> dict[str, float | int]:
        return {
            "top_k": self.top_k,
            "top_p": self.top_p,
            "temperature": self.temperature,
            "repetition_penalty": self.repetition_penalty,
            "eos_ban_steps": self.eos_ban_steps,
        }

    @classmethod
    def from_dict(cls, data: dict[str, float | int]) -> SamplingConfig:
        return cls(
            top_k=int(data.get("top_k", 15)),
            top_p=float(data.get("top_p", 1.0)),
            temperature=float(data.get("temperature", 1.0)),
            repetition_penalty=float(data.get("repetition_penalty", 1.35)),
            eos_ban_steps=int(data.get("eos_ban_steps", EOS_BAN_STEPS)),
        )


def apply_repetition_penalty_(logits: np.ndarray, seen: np.ndarray, penalty: float) -> np.ndarray:
    """Penalise every earlier code once, in place.

    Args:
        logits: ``[V']`` (V' = V, or V - 1 while EOS is banned).
        seen: boolean ``[V]``, True for every code that occurred (prompt included).
        penalty: the repetition penalty r.
    """
    if penalty == 1.0:
        return logits
    mask = seen[: logits.shape[0]]
    score = logits[mask]
    logits[mask] = np.where(score < 0, score * penalty, score / penalty)
    return logits


def seen_mask(previous: np.ndarray, vocab: int) -> np.ndarray:
    """Boolean ``[vocab]``: True for every code in ``previous``."""
    seen = np.zeros(vocab, dtype=bool)
    seen[previous.astype(np.int64)] = True
    return seen


def sampling_probs(logits: np.ndarray, top_k: int, top_p: float, temperature: float) -> np.ndarray:
    """Probabilities ``[V]`` after top-p, temperature and top-k, in upstream's order."""
    logits = logits.astype(np.float32, copy=True)
    if top_p < 1.0:
        order = np.argsort(-logits, kind="stable")
        cumulative = np.cumsum(_softmax(logits[order]))
        remove_sorted = cumulative > top_p
        remove_sorted[0] = False
        remove = np.zeros_like(remove_sorted)
        remove[order] = remove_sorted
        logits[remove] = -np.inf
    logits = logits / np.float32(max(temperature, 1e-5))
    k = min(top_k, logits.shape[0])
    pivot = np.partition(logits, -k)[-k]
    logits[logits < pivot] = -np.inf
    return _softmax(logits)


def choose_token(
    logits: np.ndarray,
    seen: np.ndarray,
    step: int,
    eos: int,
    config: SamplingConfig,
    rng: np.random.Generator,
) -> tuple[int, bool]:
    """Pick the code for generation step ``step`` from raw logits ``[V]``.

    Args:
        logits: the GPT's output for this step (full vocabulary, EOS last) ``[V]``.
        seen: boolean ``[V]`` marking every code so far, prompt included (:func:`seen_mask`).
        step: 0-based generation step (EOS is banned while ``step < config.eos_ban_steps``).
        eos: the EOS id (the last vocabulary entry).
        config: sampler settings.
        rng: the random stream for the exponential draw.

    Returns:
        (token, stop): ``stop`` is True when this step ends generation (EOS drawn or the
        penalised argmax is EOS); the token of a stopping step is to be dropped.
    """
    step_logits = logits[:eos] if step < config.eos_ban_steps else logits
    step_logits = step_logits.astype(np.float32, copy=True)
    apply_repetition_penalty_(step_logits, seen, config.repetition_penalty)
    probs = sampling_probs(step_logits, config.top_k, config.top_p, config.temperature)
    q = rng.exponential(1.0, size=probs.shape).astype(np.float32)
    token = int(np.argmax(probs / q))
    stop = int(np.argmax(step_logits)) == eos or token == eos
    return token, stop


def _softmax(x: np.ndarray) -> np.ndarray:
    m = np.max(x)
    e = np.exp(x - m)
    return e / e.sum()


__all__ = [
    "EOS_BAN_STEPS",
    "SamplingConfig",
    "apply_repetition_penalty_",
    "choose_token",
    "sampling_probs",
    "seen_mask",
]
