"""Export views of the Text2Semantic GPT: the two graphs the runner drives.

``GPTPrefillGraph``: (phones ``[1, N]``, bert ``[1, 1024, N]``, prompt ``[1, P]``) -> (logits
``[1, V]``, ``k_0 .. k_{L-1}``, ``v_0 .. v_{L-1}`` ``[1, S, inner_i]``), S = N + P.

``GPTDecodeGraph``: (token ``[1, 1]``, audio_pos ``[1]``, ``past_k_i``, ``past_v_i``
``[1, pos, inner_i]``) -> (logits ``[1, V]``, ``new_k_i``, ``new_v_i`` ``[1, 1, inner_i]``).

Positions are computed in the graph (:func:`sine_rows`) rather than looked up in a table.
The decode graph reads the filled cache rows and returns only the new row, which the runner
writes into its static cache in place; nothing is concatenated. Attention over
``past + self`` is one softmax split in two parts (a shared max, two exponent sums). The past
is viewed head-major for two batched matrix products: onnxruntime transposes the filled rows
each step, which still measured 2-3x faster than broadcast multiply-and-sum on the cache's
own ``[pos, heads, head_dim]`` layout (24 layers, 160-500 rows, CPU).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT, prefix_lm_allowed


def graph_io_names(n_layer: int) -> dict[str, tuple[list[str], list[str]]]:
    """Input and output names of both GPT graphs for ``n_layer`` layers."""
    kv = [f"k_{i}" for i in range(n_layer)] + [f"v_{i}" for i in range(n_layer)]
    past = [f"past_k_{i}" for i in range(n_layer)] + [f"past_v_{i}" for i in range(n_layer)]
    new = [f"new_k_{i}" for i in range(n_layer)] + [f"new_v_{i}" for i in range(n_layer)]
    return {
        "gpt_prefill": (["phones", "bert", "prompt"], ["logits", *kv]),
        "gpt_decode": (["token", "audio_pos", *past], ["logits", *new]),
    }


def sine_rows(positions: Tensor, dim: int) -> Tensor:
    """Rows of the GPT's sine position table for ``positions`` ``[T]`` -> ``[T, dim]``.

    The same float32 arithmetic as :func:`~autocompress.models.gpt_sovits.gpt.sine_table`
    (even columns sin(p * w_i), odd cos(p * w_i)), computed in the graph instead of shipping
    the 4000-row table (8 MB at full size) in it.
    """
    div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))  # [dim/2]
    angles = positions.to(torch.float32).unsqueeze(1) * div_term  # [T, dim/2]
    return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).reshape(-1, dim)


def _positions(x: Tensor) -> Tensor:
    """0 .. T-1 for a sequence ``[1, T, D]`` (int64, on its device)."""
    return torch.cumsum(torch.ones_like(x[0, :, 0], dtype=torch.int64), 0) - 1


class GPTPrefillGraph(nn.Module):
    """The whole prefix once: logits of the first new code and every layer's keys/values."""

    def __init__(self, gpt: Text2SemanticGPT) -> None:
        super().__init__()
        self.gpt = gpt

    def forward(self, phones: Tensor, bert: Tensor, prompt: Tensor) -> tuple[Tensor, ...]:
        gpt = self.gpt
        d = gpt.config.hidden_dim
        x = gpt.ar_text_embedding(phones) + gpt.bert_proj(bert.transpose(1, 2))  # [1, N, D]
        x = x + gpt.ar_text_position.alpha * sine_rows(_positions(x), d)
        y = gpt.ar_audio_embedding(prompt)  # [1, P, D]
        y = y + gpt.ar_audio_position.alpha * sine_rows(_positions(y), d)
        xy = torch.cat([x, y], dim=1)  # [1, S, D]
        allowed = prefix_lm_allowed(x.shape[1], xy.shape[1], xy.device)  # [S, S]
        ks, vs = [], []
        for layer in gpt.h.layers:
            xy, k, v = layer(xy, allowed)
            ks.append(k)  # [1, S, inner]
            vs.append(v)
        logits = gpt.ar_predict_layer(xy[:, -1])  # [1, V]
        return (logits, *ks, *vs)


class GPTDecodeGraph(nn.Module):
    """One code through every layer, attending to the given cache rows and to itself."""

    def __init__(self, gpt: Text2SemanticGPT) -> None:
        super().__init__()
        self.gpt = gpt
        self.n_layer = len(gpt.h.layers)

    def forward(self, token: Tensor, audio_pos: Tensor, *past: Tensor) -> tuple[Tensor, ...]:
        gpt = self.gpt
        x = gpt.ar_audio_embedding(token)  # [1, 1, D]
        x = x + gpt.ar_audio_position.alpha * sine_rows(audio_pos, gpt.config.hidden_dim)
        new_k, new_v = [], []
        for i, layer in enumerate(gpt.h.layers):
            attn = layer.self_attn
            q, k, v = attn.project(x)  # [1, 1, inner] each
            a = _attend_past_and_self(q, k, v, past[i], past[self.n_layer + i], attn.n_heads, attn.head_dim)
            x = layer._rest(x, attn.out_proj(a))
            new_k.append(k)
            new_v.append(v)
        logits = gpt.ar_predict_layer(x[:, -1])  # [1, V]
        return (logits, *new_k, *new_v)


def _attend_past_and_self(
    q: Tensor, k: Tensor, v: Tensor, past_k: Tensor, past_v: Tensor, n_heads: int, head_dim: int
) -> Tensor:
    """Multi-head attention of one query over ``past`` rows plus its own key/value.

    q, k, v ``[1, 1, inner]``; past_k, past_v ``[1, P, inner]``. Returns ``[1, 1, inner]``
    (heads concatenated, before the output projection). The past is viewed head-major for two
    batched matrix products; the query's own key and value join through a shared softmax
    maximum, so nothing is concatenated.
    """
    scale = 1.0 / math.sqrt(head_dim)
    qh = q.reshape(n_heads, 1, head_dim) * scale  # [H, 1, hd]
    kp = past_k[0].reshape(-1, n_heads, head_dim).permute(1, 2, 0)  # [H, hd, P]
    vp = past_v[0].reshape(-1, n_heads, head_dim).permute(1, 0, 2)  # [H, P, hd]
    s_past = torch.matmul(qh, kp)  # [H, 1, P]
    s_self = (qh * k.reshape(n_heads, 1, head_dim)).sum(dim=-1, keepdim=True)  # [H, 1, 1]
    m = torch.maximum(s_past.amax(dim=-1, keepdim=True), s_self)  # [H, 1, 1]
    e_past = torch.exp(s_past - m)  # [H, 1, P]
    e_self = torch.exp(s_self - m)  # [H, 1, 1]
    denom = e_past.sum(dim=-1, keepdim=True) + e_self  # [H, 1, 1]
    mixed = torch.matmul(e_past, vp) + e_self * v.reshape(n_heads, 1, head_dim)  # [H, 1, hd]
    return (mixed / denom).reshape(1, 1, -1)


__all__ = ["GPTDecodeGraph", "GPTPrefillGraph", "graph_io_names", "sine_rows"]
