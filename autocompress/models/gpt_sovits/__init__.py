"""GPT-SoVITS models: configs, audio front end, the SoVITS synthesizer and its discriminator.

The names below load on first use (PEP 562), so that the torch-free parts (the text front
end in :mod:`.text`, the symbol tables) can be imported without PyTorch, as the ONNX
runtime does.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public names, by the submodule that defines them.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "audio": ("mel_filterbank", "mel_spectrogram", "spec_to_mel", "spectrogram", "spectrogram_raw"),
    "checkpoint": (
        "CheckpointInfo", "GPTCheckpoint", "SoVITSCheckpoint", "inspect_checkpoint",
        "load_gpt", "load_sovits", "read_gpt", "read_sovits", "save_gpt", "save_sovits",
    ),
    "config": (
        "GPTConfig", "SoVITSConfig", "gpt_tiny", "gpt_v1", "gpt_v2", "sovits_preset",
        "sovits_tiny", "sovits_v1", "sovits_v2", "sovits_v2pro", "sovits_v2proplus",
    ),
    "data": (
        "ExperimentFolder", "ExperimentItem", "ExperimentRecord", "GPTBatch", "GPTDataset",
        "SoVITSBatch", "SoVITSDataset", "gpt_collate", "make_synthetic_experiment",
        "sovits_collate", "write_experiment",
    ),
    "discriminator": ("MultiPeriodDiscriminator",),
    "gpt": ("KVCache", "Text2SemanticGPT"),
    "sovits": ("SoVITSTrainOutput", "SynthesizerTrn", "from_upstream_keys", "remove_weight_norm_", "to_upstream_keys"),
    "text": ("english_to_phones", "phones_to_ids", "symbols", "text_to_ids"),
}  # fmt: skip
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
