"""Build a fresh model from a config and load a state dict into it.

This is how every transform produces its result: never ``copy.deepcopy`` (a deep copy of
a weight-normed module shares its parametrization class, so stripping weight norm on the
copy breaks the original).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from autocompress.exceptions import CompressionError
from autocompress.models.gpt_sovits.config import GPTConfig, SoVITSConfig


def build_model(config: Any, state: Mapping[str, Tensor]) -> nn.Module:
    """A new GPT or SoVITS model of ``config`` holding ``state`` (copied), in eval mode, on
    the state's device.

    A SoVITS model gets ``enc_q`` exactly when ``state`` has it.

    Raises:
        CompressionError: the state does not fit the config.
    """
    from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
    from autocompress.models.gpt_sovits.sovits import SynthesizerTrn

    if isinstance(config, GPTConfig):
        model: nn.Module = Text2SemanticGPT(config)
    elif isinstance(config, SoVITSConfig):
        model = SynthesizerTrn(config, include_enc_q=any(k.startswith("enc_q.") for k in state))
    else:
        raise CompressionError(
            f"cannot build a model from {type(config).__name__}; expected GPTConfig or SoVITSConfig"
        )
    try:
        model.load_state_dict(dict(state), strict=True)
    except RuntimeError as e:
        first = "; ".join(line.strip() for line in str(e).strip().splitlines()[:3])
        raise CompressionError(
            f"the compressed state does not fit a {type(model).__name__} built from its config "
            f"({first}); the model must build every width from the config"
        ) from e
    return model.to(_device_of(state)).eval()


def _device_of(state: Mapping[str, Tensor]) -> torch.device:
    return next((t.device for t in state.values() if t.is_floating_point()), torch.device("cpu"))


def build_group_module(config: Any, state: Mapping[str, Tensor], group: str) -> nn.Module:
    """A new module of one group (the whole GPT, or ``enc_p`` / ``flow`` / ``dec`` /
    ``ref_enc`` of a SoVITS) holding that group's part of ``state``, in eval mode.

    Cheaper than :func:`build_model` when only one group has to run (importance scores).
    """
    if group == "gpt":
        return build_model(config, state)
    from autocompress.models.gpt_sovits import sovits as s

    c = config
    makers = {
        "enc_p": lambda: s.TextEncoder(c),
        "flow": lambda: s.ResidualCouplingBlock(c),
        "dec": lambda: s.Generator(c),
        "ref_enc": lambda: s.MelStyleEncoder(
            c.ref_bins, c.style_hidden, c.gin_channels, c.style_kernel_size, c.style_heads, c.ref_enc_dropout
        ),
    }
    if group not in makers:
        raise CompressionError(f"unknown module group {group!r}; expected gpt or one of {sorted(makers)}")
    module = makers[group]()
    prefix = group + "."
    try:
        module.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CompressionError(f"the compressed {group} state does not fit its config: {first}") from e
    return module.to(_device_of(state)).eval()


def model_config(model: nn.Module) -> Any:
    """The config a GPT or SoVITS model was built from."""
    config = getattr(model, "config", None)
    if not isinstance(config, (GPTConfig, SoVITSConfig)):
        raise CompressionError(
            f"{type(model).__name__} has no GPTConfig/SoVITSConfig in .config; pass a Text2SemanticGPT, "
            "a SynthesizerTrn or a Voice"
        )
    return config


__all__ = ["build_group_module", "build_model", "model_config"]
