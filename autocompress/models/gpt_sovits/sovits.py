"""The SoVITS synthesizer (``SynthesizerTrn``) of GPT-SoVITS v1, v2, v2Pro and v2ProPlus.

Semantic codes + phone ids + a reference spectrogram (+ a speaker-verification vector for
the Pro versions) -> 32 kHz waveform. Built only from a :class:`SoVITSConfig`; submodule
names give upstream's state-dict keys except for weight norm, which uses torch's
parametrizations (see :func:`to_upstream_keys` / :func:`from_upstream_keys`).

Sub-networks, in state-dict order: ``enc_p`` (text/content encoder with MRTE), ``dec``
(HiFi-GAN generator), ``enc_q`` (posterior encoder, training only), ``flow`` (mean-only
coupling flow), ``ref_enc`` (mel style encoder), ``ssl_proj`` + ``quantizer`` (HuBERT
features -> 25 Hz codes) and, for Pro, ``sv_emb``, ``ge_to512``, ``prelu``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from autocompress.exceptions import CompressionError, ConfigError, DataError
from autocompress.models.gpt_sovits.config import SoVITSConfig
from autocompress.models.gpt_sovits.modules import (
    LRELU_SLOPE,
    WN,
    Encoder,
    MultiHeadAttention,
    ResBlock1,
    sequence_mask,
)

_WN_OURS = (".parametrizations.weight.original0", ".parametrizations.weight.original1")
_WN_UPSTREAM = (".weight_g", ".weight_v")


# --------------------------------------------------------------------------- enc_p


class MRTE(nn.Module):
    """Multi-reference timbre encoder: content frames attend to phones, plus the style vector."""

    def __init__(self, content_channels: int, hidden: int, n_heads: int) -> None:
        super().__init__()
        self.cross_attention = MultiHeadAttention(hidden, hidden, n_heads)
        self.c_pre = nn.Conv1d(content_channels, hidden, 1)
        self.text_pre = nn.Conv1d(content_channels, hidden, 1)
        self.c_post = nn.Conv1d(hidden, content_channels, 1)

    def forward(
        self,
        ssl: torch.Tensor,  # [B, C, Ty]
        ssl_mask: torch.Tensor,  # [B, 1, Ty]
        text: torch.Tensor,  # [B, C, Tt]
        text_mask: torch.Tensor,  # [B, 1, Tt]
        ge: torch.Tensor,  # [B, hidden, 1]
    ) -> torch.Tensor:
        attn_mask = text_mask.unsqueeze(2) * ssl_mask.unsqueeze(-1)  # [B, 1, Ty, Tt]
        s = self.c_pre(ssl * ssl_mask)
        u = self.text_pre(text * text_mask)
        x = self.cross_attention(s * ssl_mask, u * text_mask, attn_mask) + s + ge
        return self.c_post(x * ssl_mask)  # [B, C, Ty]


class TextEncoder(nn.Module):
    """``enc_p``: quantized SSL features and phones -> prior mean and log-scale."""

    def __init__(self, config: SoVITSConfig) -> None:
        super().__init__()
        c = config
        hidden = c.hidden_channels
        self.out_channels = c.inter_channels
        self.ssl_proj = nn.Conv1d(c.ssl_dim, hidden, 1)
        self.encoder_ssl = _encoder(c, "encoder_ssl", c.n_layers // 2)
        self.encoder_text = _encoder(c, "encoder_text", c.n_layers)
        self.text_embedding = nn.Embedding(c.n_symbols, hidden)
        self.mrte = MRTE(hidden, c.mrte_hidden, c.mrte_heads)
        self.encoder2 = _encoder(c, "encoder2", c.n_layers // 2)
        self.proj = nn.Conv1d(hidden, 2 * c.inter_channels, 1)

    def forward(
        self,
        y: torch.Tensor,  # [B, ssl_dim, T] quantized features at 50 Hz
        y_lengths: torch.Tensor,  # [B]
        text: torch.Tensor,  # [B, Tt] phone ids
        text_lengths: torch.Tensor,  # [B]
        ge: torch.Tensor,  # [B, mrte_hidden, 1]
        speed: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(y, m_p, logs_p, y_mask)``; with speed != 1 the time axis is resampled."""
        y_mask = sequence_mask(y_lengths, y.size(2)).unsqueeze(1).to(y.dtype)  # [B, 1, T]
        y = self.ssl_proj(y * y_mask) * y_mask
        y = self.encoder_ssl(y * y_mask, y_mask)

        text_mask = sequence_mask(text_lengths, text.size(1)).unsqueeze(1).to(y.dtype)  # [B, 1, Tt]
        t = self.text_embedding(text).transpose(1, 2)  # [B, C, Tt]
        t = self.encoder_text(t * text_mask, text_mask)

        y = self.mrte(y, y_mask, t, text_mask, ge)
        y = self.encoder2(y * y_mask, y_mask)
        if speed != 1:
            frames = int(y.shape[-1] / speed) + 1
            y = F.interpolate(y, size=frames, mode="linear")
            y_mask = F.interpolate(y_mask, size=frames, mode="nearest")

        stats = self.proj(y) * y_mask
        m_p, logs_p = torch.split(stats, self.out_channels, dim=1)
        return y, m_p, logs_p, y_mask


def _encoder(c: SoVITSConfig, name: str, n_layers: int) -> Encoder:
    """One enc_p transformer with its per-layer head counts and FFN widths from the config."""
    return Encoder(
        c.hidden_channels,
        c.filter_channels,
        c.n_heads,
        n_layers,
        c.kernel_size,
        c.p_dropout,
        c.window_size,
        layer_heads=[c.enc_heads_of(name, i) for i in range(n_layers)],
        layer_filters=[c.enc_filter_of(name, i) for i in range(n_layers)],
    )


# --------------------------------------------------------------------------- ref_enc


class _Linear(nn.Module):
    """A Linear layer kept under ``.fc`` (upstream's ``LinearNorm`` key layout)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        nn.init.xavier_uniform_(self.fc.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class _Mish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tanh(F.softplus(x))


class _ConvNorm(nn.Module):
    """A 'same'-padded Conv1d kept under ``.conv``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Conv1dGLU(nn.Module):
    """Residual gated conv: ``x + dropout(a * sigmoid(b))`` with ``[a; b] = conv(x)``."""

    def __init__(self, channels: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.channels = channels
        self.conv1 = _ConvNorm(channels, 2 * channels, kernel_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv1(x)  # [B, 2C, T]
        return x + self.dropout(z[:, : self.channels] * torch.sigmoid(z[:, self.channels :]))


class _StyleAttention(nn.Module):
    """Self-attention of the style encoder: temperature sqrt(d_model), -inf on padded keys."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.temperature = math.sqrt(d_model)
        self.w_qs = nn.Linear(d_model, d_model)
        self.w_ks = nn.Linear(d_model, d_model)
        self.w_vs = nn.Linear(d_model, d_model)
        self.fc = nn.Linear(d_model, d_model)
        self.attn_dropout = nn.Dropout(dropout)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        # [B, T, H, d] -> [H * B, T, d]: row h * B + b (head-major)
        return x.view(b, t, self.n_heads, self.head_dim).permute(2, 0, 1, 3).reshape(-1, t, self.head_dim)

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape  # [B, T, d_model]
        q, k, v = self._heads(self.w_qs(x)), self._heads(self.w_ks(x)), self._heads(self.w_vs(x))
        scores = torch.bmm(q, k.transpose(1, 2)) / self.temperature  # [H * B, T, T]
        if key_padding is not None:
            blocked = key_padding.unsqueeze(1).expand(-1, t, -1).repeat(self.n_heads, 1, 1)
            scores = scores.masked_fill(blocked, float("-inf"))
        p = self.attn_dropout(torch.softmax(scores, dim=2))
        o = torch.bmm(p, v)  # [H * B, T, d]
        o = o.view(self.n_heads, b, t, self.head_dim).permute(1, 2, 0, 3).reshape(b, t, d)
        return self.dropout(self.fc(o)) + x


class MelStyleEncoder(nn.Module):
    """``ref_enc``: reference spectrogram ``[B, bins, T]`` -> style vector ``[B, out, 1]``."""

    def __init__(
        self, in_bins: int, hidden: int, out_channels: int, kernel_size: int, n_heads: int, dropout: float
    ) -> None:
        super().__init__()
        self.spectral = nn.Sequential(
            _Linear(in_bins, hidden), _Mish(), nn.Dropout(dropout),
            _Linear(hidden, hidden), _Mish(), nn.Dropout(dropout),
        )  # fmt: skip
        self.temporal = nn.Sequential(
            _Conv1dGLU(hidden, kernel_size, dropout), _Conv1dGLU(hidden, kernel_size, dropout)
        )
        self.slf_attn = _StyleAttention(hidden, n_heads, dropout)
        self.fc = _Linear(hidden, out_channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        padding = (mask == 0).squeeze(1) if mask is not None else None  # [B, T], True = pad
        x = self.spectral(x.transpose(1, 2))  # [B, T, hidden]
        x = self.temporal(x.transpose(1, 2)).transpose(1, 2)
        if padding is not None:
            x = x.masked_fill(padding.unsqueeze(-1), 0)
        x = self.slf_attn(x, padding)
        x = self.fc(x)  # [B, T, out]
        return _masked_time_mean(x, padding).unsqueeze(-1)  # [B, out, 1]


def _masked_time_mean(x: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
    """Mean over valid frames of ``[B, T, C]``, accumulated in float32 -> ``[B, C]``."""
    xf = x.float()
    if padding is None:
        return xf.mean(dim=1).to(x.dtype)
    valid = (~padding).sum(dim=1, keepdim=True)  # [B, 1]
    xf = xf.masked_fill(padding.unsqueeze(-1), 0)
    return (xf.sum(dim=1) / valid).to(x.dtype)


# --------------------------------------------------------------------------- quantizer


class _Codebook(nn.Module):
    """Codebook state (buffers only, as upstream stores it); nearest-codeword lookup."""

    def __init__(self, dim: int, size: int) -> None:
        super().__init__()
        embed = torch.empty(size, dim)
        nn.init.kaiming_uniform_(embed)
        # inited = 1: we never run upstream's k-means initialisation, the codebook is used as is.
        self.register_buffer("inited", torch.ones(1))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Rows ``[N, D]`` -> codeword ids ``[N]`` (squared-Euclidean nearest)."""
        embed_t = self.embed.t()  # [D, K]
        score = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ embed_t + embed_t.pow(2).sum(0, keepdim=True))
        return score.max(dim=-1).indices


class _VectorQuantizer(nn.Module):
    def __init__(self, dim: int, size: int) -> None:
        super().__init__()
        self._codebook = _Codebook(dim, size)


class _ResidualStack(nn.Module):
    def __init__(self, dim: int, size: int, n_q: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_VectorQuantizer(dim, size) for _ in range(n_q))


class ResidualVectorQuantizer(nn.Module):
    """Frozen residual VQ over ``[B, D, T]`` features (upstream uses one layer)."""

    def __init__(self, dim: int, size: int, n_q: int = 1) -> None:
        super().__init__()
        self.vq = _ResidualStack(dim, size, n_q)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``[B, D, T]`` -> codes ``[n_q, B, T]`` (int64)."""
        b, d, t = x.shape
        residual = x
        codes = []
        for layer in self.vq.layers:
            ids = layer._codebook.encode(residual.transpose(1, 2).reshape(-1, d)).view(b, t)
            codes.append(ids)
            if len(self.vq.layers) > 1:
                residual = residual - F.embedding(ids, layer._codebook.embed).transpose(1, 2)
        return torch.stack(codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[n_q, B, T]`` -> summed codewords ``[B, D, T]``."""
        out = None
        for ids, layer in zip(codes, self.vq.layers):
            q = F.embedding(ids, layer._codebook.embed).transpose(1, 2)  # [B, D, T]
            out = q if out is None else out + q
        return out


# --------------------------------------------------------------------------- flow


class ResidualCouplingLayer(nn.Module):
    """Mean-only affine coupling: the second half is shifted by a WN of the first half."""

    def __init__(
        self, channels: int, hidden: int, kernel_size: int, n_layers: int, gin_channels: int
    ) -> None:
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = WN(hidden, kernel_size, 1, n_layers, gin_channels)
        self.post = nn.Conv1d(hidden, self.half, 1)
        nn.init.zeros_(self.post.weight)  # starts as the identity map
        nn.init.zeros_(self.post.bias)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> torch.Tensor:
        x0, x1 = torch.split(x, [self.half, self.half], dim=1)
        h = self.pre(x0) * mask
        h = self.enc(h, mask, g=g)
        m = self.post(h) * mask
        x1 = (x1 - m) * mask if reverse else m + x1 * mask
        return torch.cat([x0, x1], dim=1)


class Flip(nn.Module):
    """Reverse the channel order (its own inverse)."""

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> torch.Tensor:
        return torch.flip(x, [1])


class ResidualCouplingBlock(nn.Module):
    """``flow``: couplings at even indices of ``flows``, each followed by a :class:`Flip`."""

    def __init__(self, config: SoVITSConfig) -> None:
        super().__init__()
        self.flows = nn.ModuleList()
        for hidden in config.flow_hidden_channels:
            self.flows.append(
                ResidualCouplingLayer(
                    config.inter_channels,
                    hidden,
                    config.flow_kernel_size,
                    config.flow_wn_layers,
                    config.gin_channels,
                )
            )
            self.flows.append(Flip())

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> torch.Tensor:
        flows = reversed(self.flows) if reverse else self.flows
        for flow in flows:
            x = flow(x, mask, g=g, reverse=reverse)
        return x


# --------------------------------------------------------------------------- enc_q, dec


class PosteriorEncoder(nn.Module):
    """``enc_q`` (training only): linear spectrogram -> posterior sample ``z``, mean, log-scale."""

    def __init__(self, config: SoVITSConfig) -> None:
        super().__init__()
        c = config
        self.out_channels = c.inter_channels
        self.pre = nn.Conv1d(c.spec_channels, c.hidden_channels, 1)
        self.enc = WN(c.hidden_channels, c.enc_q_kernel_size, 1, c.enc_q_layers, c.gin_channels)
        self.proj = nn.Conv1d(c.hidden_channels, 2 * c.inter_channels, 1)

    def forward(
        self, spec: torch.Tensor, lengths: torch.Tensor, g: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(z, m_q, logs_q, mask)``; the conditioning ``g`` gets no gradient."""
        if g is not None:
            g = g.detach()
        mask = sequence_mask(lengths, spec.size(2)).unsqueeze(1).to(spec.dtype)
        x = self.pre(spec) * mask
        x = self.enc(x, mask, g=g)
        stats = self.proj(x) * mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        z = (m + torch.randn_like(m) * torch.exp(logs)) * mask
        return z, m, logs, mask


class Generator(nn.Module):
    """``dec``: HiFi-GAN generator, latent ``[B, inter, T]`` -> waveform ``[B, 1, T * prod(rates)]``."""

    def __init__(self, config: SoVITSConfig) -> None:
        super().__init__()
        c = config
        widths = c.decoder_channels  # conv_pre output, then every upsample output
        self.num_kernels = len(c.resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(c.inter_channels, widths[0], 7, 1, padding=3)
        self.ups = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(c.upsample_rates, c.upsample_kernel_sizes)):
            up = nn.ConvTranspose1d(widths[i], widths[i + 1], kernel, rate, padding=(kernel - rate) // 2)
            nn.init.normal_(up.weight, 0.0, 0.01)
            self.ups.append(weight_norm(up))
        self.resblocks = nn.ModuleList(
            ResBlock1(widths[i + 1], k, tuple(d))
            for i in range(len(self.ups))
            for k, d in zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes)
        )
        self.conv_post = nn.Conv1d(widths[-1], 1, 7, 1, padding=3, bias=False)
        if c.gin_channels:
            self.cond = nn.Conv1d(c.gin_channels, widths[0], 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv_pre(x)
        if g is not None:
            x = x + self.cond(g)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs = xs + block(x)
            x = xs / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))  # default slope 0.01 here, not 0.1
        return torch.tanh(x)


def _per_reference(sv_emb: torch.Tensor | Sequence[torch.Tensor], n_refs: int) -> list[torch.Tensor]:
    """Split speaker vectors into one per reference (upstream indexes ``sv_emb[i]``)."""
    if not torch.is_tensor(sv_emb):
        return list(sv_emb)
    if n_refs > 1 and sv_emb.dim() == 2 and sv_emb.size(0) == n_refs:
        return list(sv_emb.unbind(0))  # [n_refs, sv_dim] -> n_refs x [sv_dim]
    return [sv_emb]


# --------------------------------------------------------------------------- SynthesizerTrn


@dataclass
class SoVITSTrainOutput:
    """What the training forward returns (upstream's tuple, named)."""

    o: torch.Tensor  # [B, 1, segment_size] generated waveform slice
    commit_loss: torch.Tensor  # always 0: the quantizer is frozen
    ids_slice: torch.Tensor  # [B] start frame of each slice
    y_mask: torch.Tensor  # [B, 1, T] (upstream returns it twice, as x_mask and z_mask)
    z: torch.Tensor  # [B, inter, T] posterior sample
    z_p: torch.Tensor  # [B, inter, T] flow(z)
    m_p: torch.Tensor  # [B, inter, T] prior mean
    logs_p: torch.Tensor  # [B, inter, T] prior log-scale
    m_q: torch.Tensor  # [B, inter, T] posterior mean
    logs_q: torch.Tensor  # [B, inter, T] posterior log-scale
    quantized: torch.Tensor  # [B, ssl_dim, T] codebook features at 50 Hz
    ge: torch.Tensor  # [B, gin, 1] style vector


class SynthesizerTrn(nn.Module):
    """SoVITS: codes + phones + reference -> waveform, built only from a :class:`SoVITSConfig`.

    Args:
        config: the sizes; every width comes from here.
        include_enc_q: build the posterior encoder (needed for training; upstream's layout).
            Use False, or :meth:`drop_enc_q_` later, for inference-only models.
    """

    def __init__(self, config: SoVITSConfig, include_enc_q: bool = True) -> None:
        super().__init__()
        if not config.is_pro and config.gin_channels != config.mrte_hidden:
            raise ConfigError(
                f"SoVITS {config.version}: the style vector feeds MRTE directly, so gin_channels "
                f"must equal mrte_hidden; got {config.gin_channels} vs {config.mrte_hidden}"
            )
        if config.semantic_frame_rate not in ("25hz", "50hz"):
            raise ConfigError(
                f"semantic_frame_rate must be '25hz' or '50hz', got {config.semantic_frame_rate!r}"
            )
        self.config = config
        self.segment_frames = config.segment_size // config.hop_length
        self.enc_p = TextEncoder(config)
        self.dec = Generator(config)
        if include_enc_q:
            self.enc_q = PosteriorEncoder(config)
        self.flow = ResidualCouplingBlock(config)
        self.ref_enc = MelStyleEncoder(
            config.ref_bins,
            config.style_hidden,
            config.gin_channels,
            config.style_kernel_size,
            config.style_heads,
            config.ref_enc_dropout,
        )
        stride = 2 if config.semantic_frame_rate == "25hz" else 1
        self.ssl_proj = nn.Conv1d(config.ssl_dim, config.ssl_dim, stride, stride=stride)
        self.quantizer = ResidualVectorQuantizer(config.ssl_dim, config.codebook_size, n_q=1)
        if config.is_pro:
            self.sv_emb = nn.Linear(config.sv_dim, config.gin_channels)
            self.ge_to512 = nn.Linear(config.gin_channels, config.mrte_hidden)
            self.prelu = nn.PReLU(num_parameters=config.gin_channels)

    @property
    def has_enc_q(self) -> bool:
        return hasattr(self, "enc_q")

    def drop_enc_q_(self) -> SynthesizerTrn:
        """Delete the training-only posterior encoder in place; returns self."""
        if self.has_enc_q:
            del self.enc_q
        return self

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def decode(
        self,
        codes: torch.Tensor,
        text: torch.Tensor,
        refer: torch.Tensor | Sequence[torch.Tensor],
        noise_scale: float = 0.5,
        speed: float = 1.0,
        sv_emb: torch.Tensor | Sequence[torch.Tensor] | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Synthesize a waveform.

        Args:
            codes: semantic codes ``[1, 1, Tc]`` (int64, 25 Hz).
            text: phone ids of the target text ``[1, Tt]``.
            refer: reference spectrogram ``[1, spec_bins, Tr]`` or a list of them.
            noise_scale: scale of the prior sample (0 = deterministic).
            speed: > 1 speaks faster; the latent is resampled to ``int(2 Tc / speed) + 1`` frames.
            sv_emb: Pro only: speaker-verification vectors, one per reference: a ``[1, sv_dim]``
                tensor or a list of them, or one ``[n_refs, sv_dim]`` tensor.
            noise: replaces the standard-normal draw ``[1, inter, T']`` (for reproducible tests).

        Returns:
            ``[1, 1, T' * samples_per_frame]`` waveform in [-1, 1].
        """
        ge = self.style(refer, sv_emb)  # [1, gin, 1]
        m_p, logs_p, y_mask = self.infer_latent(codes, text, ge, speed)  # [1, inter, T']
        eps = torch.randn_like(m_p) if noise is None else noise
        z_p = m_p + eps * torch.exp(logs_p) * noise_scale
        z = self.flow(z_p, y_mask, g=ge, reverse=True)
        return self.dec(z * y_mask, g=ge)

    def style(
        self,
        refer: torch.Tensor | Sequence[torch.Tensor],
        sv_emb: torch.Tensor | Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Style vector ``ge [1, gin, 1]``: mean over references (after PReLU for Pro)."""
        refers = [refer] if torch.is_tensor(refer) else list(refer)
        if not refers:
            raise DataError("decode needs at least one reference spectrogram, got an empty list")
        svs: list[torch.Tensor | None] = [None] * len(refers)
        if self.config.is_pro:
            if sv_emb is None:
                raise DataError(
                    f"SoVITS {self.config.version} needs sv_emb (one [1, {self.config.sv_dim}] vector "
                    "per reference); got None"
                )
            svs = _per_reference(sv_emb, len(refers))
            if len(svs) != len(refers):
                raise DataError(f"expected one sv_emb per reference ({len(refers)}), got {len(svs)}")
        ges = [self._style_one(r, s) for r, s in zip(refers, svs)]
        return torch.stack(ges, 0).mean(0)

    def _style_one(self, refer: torch.Tensor, sv: torch.Tensor | None) -> torch.Tensor:
        if refer.dim() != 3 or refer.size(1) < self.config.ref_bins:
            raise DataError(
                f"reference spectrogram must be [1, >= {self.config.ref_bins}, T], got {list(refer.shape)}; "
                "compute it with audio.spectrogram"
            )
        mask = torch.ones(refer.size(0), 1, refer.size(2), dtype=refer.dtype, device=refer.device)
        ge = self.ref_enc(refer[:, : self.config.ref_bins] * mask, mask)  # [1, gin, 1]
        if sv is not None:
            ge = self._add_speaker(ge, sv)
        return ge

    def _add_speaker(self, ge: torch.Tensor, sv: torch.Tensor) -> torch.Tensor:
        if sv.dim() == 1:
            sv = sv.unsqueeze(0)
        if sv.size(-1) != self.config.sv_dim:
            raise DataError(f"sv_emb must have {self.config.sv_dim} features, got {list(sv.shape)}")
        ge = ge + self.sv_emb(sv.to(ge.dtype)).unsqueeze(-1)
        return self.prelu(ge)

    def infer_latent(
        self, codes: torch.Tensor, text: torch.Tensor, ge: torch.Tensor, speed: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prior ``(m_p, logs_p, y_mask)`` for codes ``[1, B, Tc]`` and phones ``[B, Tt]``."""
        if codes.dim() != 3 or text.dim() != 2:
            raise DataError(
                f"expected codes [1, 1, Tc] and text [1, Tt], got {list(codes.shape)} and {list(text.shape)}"
            )
        quantized = self._codes_to_features(codes)  # [B, ssl_dim, 2 Tc]
        b = quantized.size(0)
        y_lengths = torch.full((b,), quantized.size(2), dtype=torch.long, device=codes.device)
        text_lengths = torch.full((b,), text.size(-1), dtype=torch.long, device=codes.device)
        _, m_p, logs_p, y_mask = self.enc_p(
            quantized, y_lengths, text, text_lengths, self._text_style(ge), speed
        )
        return m_p, logs_p, y_mask

    def _codes_to_features(self, codes: torch.Tensor) -> torch.Tensor:
        quantized = self.quantizer.decode(codes)  # [B, ssl_dim, Tc]
        if self.config.semantic_frame_rate == "25hz":
            quantized = F.interpolate(quantized, size=int(quantized.shape[-1] * 2), mode="nearest")
        return quantized

    def _text_style(self, ge: torch.Tensor) -> torch.Tensor:
        """The style vector MRTE sees: ``ge`` itself, or ``ge_to512(ge)`` for Pro."""
        if self.config.is_pro:
            return self.ge_to512(ge.transpose(1, 2)).transpose(1, 2)
        return ge

    @torch.no_grad()
    def extract_latent(self, ssl: torch.Tensor) -> torch.Tensor:
        """HuBERT features ``[B, ssl_dim, T50]`` -> semantic codes ``[B, 1, T50 // 2]`` (int64)."""
        if ssl.dim() != 3 or ssl.size(1) != self.config.ssl_dim:
            raise DataError(f"expected ssl features [B, {self.config.ssl_dim}, T], got {list(ssl.shape)}")
        return self.quantizer.encode(self.ssl_proj(ssl)).transpose(0, 1)

    # ------------------------------------------------------------------ training

    def forward(
        self,
        ssl: torch.Tensor,
        spec: torch.Tensor,
        spec_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        sv_emb: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> SoVITSTrainOutput:
        """Training forward: posterior -> flow, random latent slice -> decoder.

        Args:
            ssl: HuBERT features ``[B, ssl_dim, T]`` (padded like ``spec``).
            spec: linear spectrograms ``[B, spec_bins, T]`` (T even, see the collate).
            spec_lengths, text_lengths: ``[B]`` valid lengths.
            text: phone ids ``[B, Tt]``.
            sv_emb: Pro only, ``[B, sv_dim]``.
            generator: optional RNG for the slice positions.
        """
        if not self.has_enc_q:
            raise ConfigError("the training forward needs enc_q; build the model with include_enc_q=True")
        y_mask = sequence_mask(spec_lengths, spec.size(2)).unsqueeze(1).to(spec.dtype)  # [B, 1, T]
        ge = self.ref_enc(spec[:, : self.config.ref_bins] * y_mask, y_mask)  # [B, gin, 1]
        if self.config.is_pro:
            if sv_emb is None:
                raise DataError(
                    f"SoVITS {self.config.version} training needs sv_emb [B, {self.config.sv_dim}]; got None"
                )
            ge = self._add_speaker(ge, sv_emb)

        # The quantizer is frozen: fp32, no gradient, commit loss 0.
        with torch.no_grad(), torch.autocast(device_type=ssl.device.type, enabled=False):
            quantized = self.quantizer.decode(self.quantizer.encode(self.ssl_proj(ssl.float())))
            if self.config.semantic_frame_rate == "25hz":
                quantized = F.interpolate(quantized, size=int(quantized.shape[-1] * 2), mode="nearest")
        commit_loss = torch.zeros((), device=spec.device)
        if quantized.size(2) != spec.size(2):
            raise DataError(
                f"quantized SSL length {quantized.size(2)} != spectrogram length {spec.size(2)}; "
                "pad ssl and spec to the same even length in the collate"
            )

        _, m_p, logs_p, _ = self.enc_p(quantized, spec_lengths, text, text_lengths, self._text_style(ge))
        z, m_q, logs_q, _ = self.enc_q(spec, spec_lengths, g=ge)
        z_p = self.flow(z, y_mask, g=ge)
        z_slice, ids_slice = self._random_slice(z, spec_lengths, generator)
        o = self.dec(z_slice, g=ge)
        return SoVITSTrainOutput(
            o=o, commit_loss=commit_loss, ids_slice=ids_slice, y_mask=y_mask, z=z, z_p=z_p,
            m_p=m_p, logs_p=logs_p, m_q=m_q, logs_q=logs_q, quantized=quantized, ge=ge,
        )  # fmt: skip

    def _random_slice(
        self, x: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``segment_frames`` consecutive frames per item, starting uniformly in the valid part."""
        seg = self.segment_frames
        if x.size(2) < seg:
            raise DataError(f"training items need >= {seg} frames, got a batch of {x.size(2)}")
        u = torch.rand(x.size(0), generator=generator, device=generator.device if generator else x.device)
        starts = (u.to(x.device) * (lengths - seg + 1)).to(torch.long).clamp(0, x.size(2) - seg)
        index = starts[:, None] + torch.arange(seg, device=x.device)  # [B, seg]
        index = index.unsqueeze(1).expand(-1, x.size(1), -1)  # [B, C, seg]
        return x.gather(2, index), starts


# --------------------------------------------------------------------------- keys


def to_upstream_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename parametrized weight-norm entries to upstream's ``weight_g`` / ``weight_v``."""
    return {_rename(k, _WN_OURS, _WN_UPSTREAM): v for k, v in state_dict.items()}


def from_upstream_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename upstream's ``weight_g`` / ``weight_v`` to ``parametrizations.weight.original0/1``."""
    return {_rename(k, _WN_UPSTREAM, _WN_OURS): v for k, v in state_dict.items()}


def _rename(key: str, old: tuple[str, str], new: tuple[str, str]) -> str:
    for o, n in zip(old, new):
        if key.endswith(o):
            return key[: -len(o)] + n
    return key


def remove_weight_norm_(module: nn.Module) -> nn.Module:
    """Fold every weight-norm parametrization into a plain ``weight``, in place; returns module.

    Raises:
        CompressionError: a weight carries other parametrizations stacked with weight norm.
    """
    for name, sub in list(module.named_modules()):
        if not parametrize.is_parametrized(sub, "weight"):
            continue
        chain = sub.parametrizations["weight"]
        kinds = [type(p).__name__ for p in chain]
        if "_WeightNorm" not in kinds:
            continue
        if len(kinds) != 1:
            raise CompressionError(
                f"{name or 'module'}.weight has parametrizations {kinds} besides weight norm; "
                "fold weight norm before adding others"
            )
        parametrize.remove_parametrizations(sub, "weight", leave_parametrized=True)
    return module


__all__ = [
    "Generator",
    "MRTE",
    "MelStyleEncoder",
    "PosteriorEncoder",
    "ResidualCouplingBlock",
    "ResidualVectorQuantizer",
    "SoVITSTrainOutput",
    "SynthesizerTrn",
    "TextEncoder",
    "from_upstream_keys",
    "remove_weight_norm_",
    "to_upstream_keys",
]
