"""SoVITS training discriminator: HiFi-GAN's multi-period discriminator plus one scale branch.

``discriminators.0`` looks at the raw waveform with grouped strided 1-D convolutions; each
further entry folds the waveform into ``[T / p, p]`` for one period ``p`` and applies 2-D
convolutions along time. Every convolution is weight-normed (torch parametrizations; see
:func:`autocompress.models.gpt_sovits.sovits.to_upstream_keys` for upstream key names).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from autocompress.models.gpt_sovits.config import SoVITSConfig
from autocompress.models.gpt_sovits.modules import LRELU_SLOPE, get_padding

# DiscriminatorS: (in, out, kernel, stride, groups, padding) per conv.
_SCALE_CONVS = (
    (1, 16, 15, 1, 1, 7),
    (16, 64, 41, 4, 4, 20),
    (64, 256, 41, 4, 16, 20),
    (256, 1024, 41, 4, 64, 20),
    (1024, 1024, 41, 4, 256, 20),
    (1024, 1024, 5, 1, 1, 2),
)
_PERIOD_CHANNELS = (1, 32, 128, 512, 1024, 1024)
# A reduced period discriminator (about 1/200 of the compute) for CPU training of small voices.
LIGHT_PERIOD_CHANNELS = (1, 8, 16, 32, 64, 64)


class DiscriminatorS(nn.Module):
    """Waveform-scale discriminator ``[B, 1, T]`` -> (logits ``[B, N]``, feature maps)."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv1d(i, o, k, s, groups=g, padding=p)) for i, o, k, s, g, p in _SCALE_CONVS
        )
        self.conv_post = weight_norm(nn.Conv1d(1024, 1, 3, 1, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class DiscriminatorP(nn.Module):
    """Period-``p`` discriminator on the waveform folded to ``[B, 1, T / p, p]``."""

    def __init__(
        self, period: int, kernel_size: int = 5, stride: int = 3, channels: tuple[int, ...] = _PERIOD_CHANNELS
    ) -> None:
        super().__init__()
        self.period = period
        pad = (get_padding(kernel_size, 1), 0)
        n = len(channels) - 1
        self.convs = nn.ModuleList(
            weight_norm(
                nn.Conv2d(
                    channels[i],
                    channels[i + 1],
                    (kernel_size, 1),
                    (stride if i < n - 1 else 1, 1),
                    padding=pad,
                )
            )
            for i in range(n)
        )
        self.conv_post = weight_norm(nn.Conv2d(channels[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            extra = self.period - t % self.period
            x = F.pad(x, (0, extra), "reflect")
            t += extra
        p = self.period
        # A (k, 1) kernel never mixes the p phases: run them as p rows of 1-D convolutions
        # (faster on CPU than the 2-D form) and hand out [B, C, T / p, p] views as upstream does.
        h = x.view(b, c, t // p, p).permute(0, 3, 1, 2).reshape(b * p, c, t // p)
        fmap = []
        for conv in self.convs:
            h = F.leaky_relu(F.conv1d(h, conv.weight[..., 0], conv.bias, conv.stride[0], conv.padding[0]), LRELU_SLOPE)
            fmap.append(_fold(h, b, p))
        h = F.conv1d(h, self.conv_post.weight[..., 0], self.conv_post.bias, 1, self.conv_post.padding[0])
        out = _fold(h, b, p)
        fmap.append(out)
        return torch.flatten(out, 1, -1), fmap


def _fold(h: torch.Tensor, b: int, p: int) -> torch.Tensor:
    """``[B * p, C, T']`` rows of phases -> the 2-D layout ``[B, C, T', p]`` (a view)."""
    return h.view(b, p, h.shape[1], h.shape[2]).permute(0, 2, 3, 1)


class MultiPeriodDiscriminator(nn.Module):
    """One :class:`DiscriminatorS` and one :class:`DiscriminatorP` per ``config.mpd_periods``.

    The defaults are upstream's discriminator (same keys and shapes). ``period_channels`` and
    ``include_scale=False`` make a reduced one, for example :data:`LIGHT_PERIOD_CHANNELS`.
    """

    def __init__(
        self,
        config: SoVITSConfig,
        period_channels: tuple[int, ...] = _PERIOD_CHANNELS,
        include_scale: bool = True,
    ) -> None:
        super().__init__()
        scale = [DiscriminatorS()] if include_scale else []
        periods = [DiscriminatorP(p, channels=period_channels) for p in config.mpd_periods]
        self.discriminators = nn.ModuleList(scale + periods)

    def forward(
        self, y: torch.Tensor, y_hat: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[list[torch.Tensor]], list[list[torch.Tensor]]]:
        """Score real ``y`` and generated ``y_hat`` (both ``[B, 1, T]``).

        Returns:
            ``(d_r, d_g, fmap_r, fmap_g)``: per-discriminator logits and feature maps.
        """
        d_r, fmap_r = self.score(y)
        d_g, fmap_g = self.score(y_hat)
        return d_r, d_g, fmap_r, fmap_g

    def score(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """Per-discriminator logits and feature maps of one waveform batch ``[B, 1, T]``."""
        logits, fmaps = [], []
        for disc in self.discriminators:
            d, f = disc(x)
            logits.append(d)
            fmaps.append(f)
        return logits, fmaps


__all__ = ["LIGHT_PERIOD_CHANNELS", "DiscriminatorP", "DiscriminatorS", "MultiPeriodDiscriminator"]
