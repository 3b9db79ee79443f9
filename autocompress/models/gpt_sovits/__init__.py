"""GPT-SoVITS models: configs, audio front end, the SoVITS synthesizer and its discriminator."""

from __future__ import annotations

from autocompress.models.gpt_sovits.audio import (
    mel_filterbank,
    mel_spectrogram,
    spec_to_mel,
    spectrogram,
    spectrogram_raw,
)
from autocompress.models.gpt_sovits.checkpoint import (
    CheckpointInfo,
    GPTCheckpoint,
    SoVITSCheckpoint,
    inspect_checkpoint,
    load_gpt,
    load_sovits,
    read_gpt,
    read_sovits,
    save_gpt,
    save_sovits,
)
from autocompress.models.gpt_sovits.config import (
    GPTConfig,
    SoVITSConfig,
    gpt_tiny,
    gpt_v1,
    gpt_v2,
    sovits_preset,
    sovits_tiny,
    sovits_v1,
    sovits_v2,
    sovits_v2pro,
    sovits_v2proplus,
)
from autocompress.models.gpt_sovits.data import (
    ExperimentFolder,
    ExperimentItem,
    ExperimentRecord,
    GPTBatch,
    GPTDataset,
    SoVITSBatch,
    SoVITSDataset,
    gpt_collate,
    make_synthetic_experiment,
    sovits_collate,
    write_experiment,
)
from autocompress.models.gpt_sovits.discriminator import MultiPeriodDiscriminator
from autocompress.models.gpt_sovits.gpt import KVCache, Text2SemanticGPT
from autocompress.models.gpt_sovits.sovits import (
    SoVITSTrainOutput,
    SynthesizerTrn,
    from_upstream_keys,
    remove_weight_norm_,
    to_upstream_keys,
)
from autocompress.models.gpt_sovits.text import english_to_phones, phones_to_ids, symbols, text_to_ids

__all__ = [
    # checkpoints (load / save / inspect) and the GPT
    "CheckpointInfo",
    "GPTCheckpoint",
    "KVCache",
    "SoVITSCheckpoint",
    "Text2SemanticGPT",
    "inspect_checkpoint",
    "load_gpt",
    "load_sovits",
    "read_gpt",
    "read_sovits",
    "save_gpt",
    "save_sovits",
    # presets
    "gpt_tiny",
    "gpt_v1",
    "gpt_v2",
    "sovits_tiny",
    "sovits_v1",
    "sovits_v2",
    "sovits_v2pro",
    "sovits_v2proplus",
    "GPTConfig",
    "MultiPeriodDiscriminator",
    "SoVITSConfig",
    "SoVITSTrainOutput",
    "SynthesizerTrn",
    "from_upstream_keys",
    "mel_filterbank",
    "mel_spectrogram",
    "remove_weight_norm_",
    "sovits_preset",
    "spec_to_mel",
    "spectrogram",
    "spectrogram_raw",
    "to_upstream_keys",
    # experiment folders and datasets
    "ExperimentFolder",
    "ExperimentItem",
    "ExperimentRecord",
    "GPTBatch",
    "GPTDataset",
    "SoVITSBatch",
    "SoVITSDataset",
    "gpt_collate",
    "make_synthetic_experiment",
    "sovits_collate",
    "write_experiment",
    # text front end
    "english_to_phones",
    "phones_to_ids",
    "symbols",
    "text_to_ids",
]
