"""Helpers for the compression tests: random tiny models and fixed inputs per module group."""

from __future__ import annotations

import torch
from torch import nn




class LinearThenConv(nn.Module):
    """A linear layer then a convolution, so that each op kind can take its own precision."""

    def __init__(self, in_features: int = 16) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 8)
        self.conv = nn.Conv1d(8, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, T, in_features]
        return self.conv(self.linear(x).transpose(1, 2))

def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter random, well-scaled values (fresh models start with zero biases,
    identity flows and tiny decoder weights, which would hide pruning mistakes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("original0"):  # weight-norm g: row norms
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            elif name.endswith(("gamma", "norm1.weight", "norm2.weight")):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return model.eval()


def gpt_batch(config, seed: int = 0) -> dict[str, torch.Tensor]:  # noqa: ANN001
    """A right-padded training batch of two items for ``forward_train``."""
    gen = torch.Generator().manual_seed(seed)
    phones = torch.randint(1, 300, (2, 9), generator=gen)
    codes = torch.randint(0, 1024, (2, 12), generator=gen)
    return {
        "phones": phones,
        "phones_len": torch.tensor([9, 7]),
        "bert": torch.randn(2, config.bert_dim, 9, generator=gen),
        "codes": codes,
        "codes_len": torch.tensor([12, 10]),
    }


def sovits_inputs(config, seed: int = 0) -> dict[str, torch.Tensor]:  # noqa: ANN001
    """Fixed inputs for each SoVITS group's module."""
    gen = torch.Generator().manual_seed(seed)
    t = 8  # frames: short, the decoder is the slow part
    return {
        "ssl": torch.randn(1, config.ssl_dim, t, generator=gen),
        "lengths": torch.tensor([t]),
        "text": torch.randint(1, 300, (1, 11), generator=gen),
        "text_lengths": torch.tensor([11]),
        "ge": torch.randn(1, config.gin_channels, 1, generator=gen),
        "z": torch.randn(1, config.inter_channels, t, generator=gen),
        "mask": torch.ones(1, 1, t),
        "spec": torch.rand(1, config.ref_bins, 30, generator=gen),
        "spec_mask": torch.ones(1, 1, 30),
    }


def run_group(model: nn.Module, group: str, seed: int = 0) -> torch.Tensor:
    """Run one group's module of a GPT or SoVITS model on fixed inputs; one output tensor."""
    with torch.no_grad():
        if group == "gpt":
            logits, _ = model.forward_train(**gpt_batch(model.config, seed))
            return logits
        x = sovits_inputs(model.config, seed)
        if group == "enc_p":
            ge = model._text_style(x["ge"])  # a Pro enc_p reads the style through ge_to512
            _, m_p, logs_p, _ = model.enc_p(x["ssl"], x["lengths"], x["text"], x["text_lengths"], ge)
            return torch.cat([m_p, logs_p], 1)
        if group == "flow":
            return torch.cat([model.flow(x["z"], x["mask"], g=x["ge"], reverse=r) for r in (False, True)], 1)
        if group == "dec":
            return model.dec(x["z"], g=x["ge"])
        if group == "ref_enc":
            return model.ref_enc(x["spec"], x["spec_mask"])
    raise KeyError(group)
