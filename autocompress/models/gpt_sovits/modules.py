"""VITS building blocks shared by the SoVITS networks.

Channels-first LayerNorm, relative-position multi-head attention, the convolutional FFN, the
post-norm transformer encoder, the gated WaveNet stack (WN) and HiFi-GAN's ResBlock1. Every
tensor is ``[B, C, T]``; masks are float ``[B, 1, T]`` with 1 on valid frames.

Weight-normed convolutions use ``torch.nn.utils.parametrizations.weight_norm`` (dim 0), so
their state-dict entries are ``<name>.parametrizations.weight.original0`` (upstream's
``weight_g``) and ``.original1`` (``weight_v``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from autocompress.exceptions import ConfigError

MASKED_LOGIT = -1e4  # VITS attention fills masked scores with this, not -inf
LRELU_SLOPE = 0.1


def sequence_mask(lengths: torch.Tensor, max_length: int | None = None) -> torch.Tensor:
    """Boolean ``[B, T]`` mask that is True for ``t < lengths[b]``."""
    if max_length is None:
        max_length = int(lengths.max())
    steps = torch.arange(max_length, dtype=lengths.dtype, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """'Same' padding of an odd kernel with the given dilation."""
    return (kernel_size * dilation - dilation) // 2


def wn_conv1d(*args, **kwargs) -> nn.Conv1d:  # noqa: ANN002, ANN003
    """A weight-normed ``nn.Conv1d`` (same arguments)."""
    return weight_norm(nn.Conv1d(*args, **kwargs))


class LayerNorm(nn.Module):
    """LayerNorm over the channel axis of a ``[B, C, T]`` tensor (keys ``gamma``, ``beta``)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, -1)  # [B, T, C]
        x = F.layer_norm(x, (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


class MultiHeadAttention(nn.Module):
    """Multi-head attention over ``[B, C, T]`` with optional relative-position terms.

    With ``window_size`` w, every head adds ``q_i . E_k[j - i + w]`` to its score and
    ``sum_j p_ij E_v[j - i + w]`` to its output for ``|j - i| <= w`` (zero outside the window);
    the tables are shared across heads. Masked scores become ``-1e4``.
    """

    def __init__(
        self,
        channels: int,
        out_channels: int,
        n_heads: int,
        p_dropout: float = 0.0,
        window_size: int | None = None,
        head_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = channels // n_heads if head_dim is None else head_dim
        self.inner = n_heads * self.head_dim  # q/k/v width; < channels after head pruning
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, self.inner, 1)
        self.conv_k = nn.Conv1d(channels, self.inner, 1)
        self.conv_v = nn.Conv1d(channels, self.inner, 1)
        self.conv_o = nn.Conv1d(self.inner, out_channels, 1)
        self.drop = nn.Dropout(p_dropout)
        if window_size is not None:
            scale = self.head_dim**-0.5
            self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.head_dim) * scale)
            self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.head_dim) * scale)
        for conv in (self.conv_q, self.conv_k, self.conv_v):
            nn.init.xavier_uniform_(conv.weight)

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attend from queries ``x [B, C, Tq]`` to keys/values ``c [B, C, Tk]``.

        ``attn_mask`` is ``[B, 1, Tq, Tk]`` (0 = blocked) or None.
        """
        q = self.conv_q(x)
        k = self.conv_k(c)
        v = self.conv_v(c)
        b, _, t_q = q.shape
        t_k = k.shape[2]
        # head-major channel split: channel = h * head_dim + j
        q = q.view(b, self.n_heads, self.head_dim, t_q).transpose(2, 3)  # [B, H, Tq, d]
        k = k.view(b, self.n_heads, self.head_dim, t_k).transpose(2, 3)  # [B, H, Tk, d]
        v = v.view(b, self.n_heads, self.head_dim, t_k).transpose(2, 3)

        q = q / math.sqrt(self.head_dim)
        scores = torch.matmul(q, k.transpose(-2, -1))  # [B, H, Tq, Tk]
        if self.window_size is not None:
            if t_q != t_k:
                raise ValueError("relative attention needs self-attention (equal query/key lengths)")
            rel_k = self.emb_rel_k[0]  # [2w+1, d]
            band = torch.matmul(q, rel_k.t())  # [B, H, T, 2w+1]: offset r = j - i + w
            scores = scores + _band_to_full(band, self.window_size)
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask == 0, MASKED_LOGIT)
        p = F.softmax(scores, dim=-1)
        p = self.drop(p)
        out = torch.matmul(p, v)  # [B, H, Tq, d]
        if self.window_size is not None:
            p_band = _full_to_band(p, self.window_size)  # [B, H, T, 2w+1]
            out = out + torch.matmul(p_band, self.emb_rel_v[0])
        out = out.transpose(2, 3).reshape(b, self.inner, t_q)  # [B, H * d, Tq]
        return self.conv_o(out)


def _band_to_full(band: torch.Tensor, w: int) -> torch.Tensor:
    """Place ``band[..., i, r]`` at column ``j = i + r - w`` of a ``[..., T, T]`` matrix."""
    *lead, t, width = band.shape  # width = 2w + 1
    # Row i of a [T, T + 2w + 1] layout, read back as rows of T + 2w, is shifted right by i.
    padded = F.pad(band, (0, t))  # [..., T, T + 2w + 1]
    flat = padded.reshape(*lead, t * (t + width))[..., : t * (t + width - 1)]
    skewed = flat.reshape(*lead, t, t + width - 1)  # [..., T, T + 2w]; col i + r
    return skewed[..., w : w + t]


def _full_to_band(full: torch.Tensor, w: int) -> torch.Tensor:
    """Inverse of :func:`_band_to_full`: ``out[..., i, r] = full[..., i, i + r - w]`` (0 outside)."""
    *lead, t, _ = full.shape
    width = 2 * w + 1
    padded = F.pad(full, (w, w))  # [..., T, T + 2w]; col i + r holds j = i + r - w
    flat = F.pad(padded.reshape(*lead, t * (t + 2 * w)), (0, t))  # rows of T + 2w + 1
    skewed = flat.reshape(*lead, t, t + 2 * w + 1)  # row i shifted left by i
    return skewed[..., :width]


class FFN(nn.Module):
    """Two 'same'-padded convolutions with a ReLU between, masked before each."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        filter_channels: int,
        kernel_size: int,
        p_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.conv_1 = nn.Conv1d(in_channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, out_channels, kernel_size)
        self.drop = nn.Dropout(p_dropout)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, ((self.kernel_size - 1) // 2, self.kernel_size // 2))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.conv_1(self._pad(x * mask))
        x = self.drop(torch.relu(x))
        x = self.conv_2(self._pad(x * mask))
        return x * mask


class Encoder(nn.Module):
    """Post-norm transformer encoder with relative attention (VITS ``attentions.Encoder``).

    ``layer_heads`` / ``layer_filters`` give per-layer head counts and FFN widths (structured
    pruning); the head width stays ``head_dim``. None means ``n_heads`` / ``filter_channels``.
    """

    def __init__(
        self,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int = 1,
        p_dropout: float = 0.0,
        window_size: int = 4,
        layer_heads: Sequence[int] | None = None,
        layer_filters: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        heads = list(layer_heads) if layer_heads is not None else [n_heads] * n_layers
        filters = list(layer_filters) if layer_filters is not None else [filter_channels] * n_layers
        if len(heads) != n_layers or len(filters) != n_layers or min(heads + filters, default=1) < 1:
            raise ConfigError(
                f"encoder of {n_layers} layers needs that many head counts and FFN widths, all >= 1; "
                f"got heads {heads}, widths {filters}"
            )
        head_dim = hidden_channels // n_heads
        self.n_layers = n_layers
        self.drop = nn.Dropout(p_dropout)
        self.attn_layers = nn.ModuleList(
            MultiHeadAttention(hidden_channels, hidden_channels, h, p_dropout, window_size, head_dim)
            for h in heads
        )
        self.norm_layers_1 = nn.ModuleList(LayerNorm(hidden_channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(
            FFN(hidden_channels, hidden_channels, f, kernel_size, p_dropout) for f in filters
        )
        self.norm_layers_2 = nn.ModuleList(LayerNorm(hidden_channels) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attn_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)  # [B, 1, T, T]
        x = x * mask
        for attn, norm_1, ffn, norm_2 in zip(
            self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2
        ):
            y = self.drop(attn(x, x, attn_mask))
            x = norm_1(x + y)
            y = self.drop(ffn(x, mask))
            x = norm_2(x + y)
        return x * mask


class WN(nn.Module):
    """Non-causal WaveNet stack of gated dilated convolutions with optional global conditioning."""

    def __init__(
        self,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int = 0,
        p_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        self.drop = nn.Dropout(p_dropout)
        for i in range(n_layers):
            dilation = dilation_rate**i
            self.in_layers.append(
                wn_conv1d(
                    hidden_channels,
                    2 * hidden_channels,
                    kernel_size,
                    dilation=dilation,
                    padding=get_padding(kernel_size, dilation),
                )
            )
            last = i == n_layers - 1
            out = hidden_channels if last else 2 * hidden_channels
            self.res_skip_layers.append(wn_conv1d(hidden_channels, out, 1))
        if gin_channels:
            self.cond_layer = wn_conv1d(gin_channels, 2 * hidden_channels * n_layers, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        h = self.hidden_channels
        out = torch.zeros_like(x)
        cond = self.cond_layer(g) if g is not None else None  # [B, 2H * n_layers, 1]
        for i, (in_layer, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            a = in_layer(x)  # [B, 2H, T]
            if cond is not None:
                a = a + cond[:, 2 * h * i : 2 * h * (i + 1)]
            acts = torch.tanh(a[:, :h]) * torch.sigmoid(a[:, h:])
            r = res_skip(self.drop(acts))
            if i < self.n_layers - 1:
                x = (x + r[:, :h]) * mask
                out = out + r[:, h:]
            else:
                out = out + r
        return out * mask


class ResBlock1(nn.Module):
    """HiFi-GAN residual block: per dilation, LReLU -> dilated conv -> LReLU -> conv, + skip."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            _init_normal_wn(
                nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=get_padding(kernel_size, d))
            )
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            _init_normal_wn(nn.Conv1d(channels, channels, kernel_size, padding=get_padding(kernel_size)))
            for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv1, conv2 in zip(self.convs1, self.convs2):
            t = conv1(F.leaky_relu(x, LRELU_SLOPE))
            t = conv2(F.leaky_relu(t, LRELU_SLOPE))
            x = t + x
        return x


def _init_normal_wn(conv: nn.Module, std: float = 0.01) -> nn.Module:
    """HiFi-GAN init (weights ~ N(0, std)) followed by weight norm."""
    nn.init.normal_(conv.weight, 0.0, std)
    return weight_norm(conv)


__all__ = [
    "Encoder",
    "FFN",
    "LayerNorm",
    "MultiHeadAttention",
    "ResBlock1",
    "WN",
    "get_padding",
    "sequence_mask",
    "wn_conv1d",
]
