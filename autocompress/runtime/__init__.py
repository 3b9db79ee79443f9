"""The torch-free bundle runner: onnxruntime sessions, the GPT token loop, numpy sampling.

Nothing in this package imports torch; ``autocompress synth`` runs a bundle with only
onnxruntime, numpy and soundfile installed (and scipy to resample a ``--ref-wav`` recording
that is not at the voice's rate).
"""

from __future__ import annotations

from autocompress.runtime.files import atomic_write_bytes, atomic_write_json, atomic_write_text, sha256_file
from autocompress.runtime.gpt_loop import GenerationOutput, GPTLoop
from autocompress.runtime.inputs import SynthInput, load_inputs, save_inputs
from autocompress.runtime.manifest import (
    MANIFEST_NAME,
    PRECISIONS,
    GraphEntry,
    Manifest,
    MetricEntry,
    ModuleEntry,
    read_manifest,
)
from autocompress.runtime.runner import BundleRunner, Synthesis
from autocompress.runtime.sampling import SamplingConfig, choose_token
from autocompress.runtime.wav import wav_bytes, write_wav

__all__ = [
    "BundleRunner",
    "GPTLoop",
    "GenerationOutput",
    "GraphEntry",
    "MANIFEST_NAME",
    "Manifest",
    "MetricEntry",
    "ModuleEntry",
    "PRECISIONS",
    "SamplingConfig",
    "SynthInput",
    "Synthesis",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "choose_token",
    "load_inputs",
    "read_manifest",
    "save_inputs",
    "sha256_file",
    "wav_bytes",
    "write_wav",
]
