"""Shared tiny voice, eval inputs and exported bundles for the export and runtime tests.

Exporting is the slow step, so one :class:`VoiceExport` of the tiny voice is made per test
session and every bundle variant is written from it once (cached here, in a temporary folder
removed at exit). The shared export uses the legacy exporter, which is several times faster on
a small CPU; the dynamo path is tested on its own in ``test_onnx_export.py``.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from autocompress.export import Bundle, VoiceExport
from autocompress.models.gpt_sovits.config import gpt_tiny, sovits_tiny
from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
from autocompress.models.gpt_sovits.sovits import SynthesizerTrn
from autocompress.models.gpt_sovits.voice import Voice
from autocompress.runtime.inputs import SynthInput

EVAL_TOKENS = 16  # greedy codes per eval input in the shared export (keeps checks quick)
MAX_TOKENS = 48

# Bundle variants: per-group precisions. With the plan-driven bundle of test_bundle.py (GPT
# and decoder fp16) every group is stored in fp32, fp16 and int8, and the GPT in int4 too.
# "mixed_a" puts int2 on the decoder on purpose: it must fail its floor and fall back.
VARIANTS: dict[str, dict[str, str]] = {
    "fp32": {g: "fp32" for g in ("gpt", "ref_enc", "enc_p", "flow", "dec")},
    "mixed_a": {"gpt": "int4", "ref_enc": "fp16", "enc_p": "int8", "flow": "fp16", "dec": "int2"},
    "mixed_b": {"gpt": "int8", "ref_enc": "int8", "enc_p": "fp16", "flow": "int8", "dec": "int8"},
}


def make_voice(seed: int = 0) -> Voice:
    """gpt_tiny + sovits_tiny with random weights; the flow's zero-initialised output layers
    get small random weights so the flow is not the identity."""
    torch.manual_seed(seed)
    gpt = Text2SemanticGPT(gpt_tiny()).eval()
    sovits = SynthesizerTrn(sovits_tiny(), include_enc_q=False).eval()
    with torch.no_grad():
        for name, p in sovits.flow.named_parameters():
            if ".post." in f".{name}":
                p.normal_(0.0, 0.05)
    return Voice(gpt, sovits)


def calibrated_student(quantize: Callable[[Voice], object], symmetric: bool = True) -> Voice:
    """The tiny voice with the fake quantization ``quantize`` adds to it, its int8 inputs
    calibrated (s8, or u8 when not ``symmetric``) on other utterances than the exports'."""
    from autocompress.compress.fake_quant import calibrate_activations_
    from autocompress.export.references import reference_runs

    student = make_voice()  # not a copy of the shared voice: stripping a copy's weight norm strips the original's
    quantize(student)
    with torch.no_grad():
        calibrate_activations_(
            (student.gpt, student.sovits),
            lambda: reference_runs(student.gpt, student.sovits, make_inputs(3, seed=7), 8, 1.35, 0.5),
            symmetric=symmetric,
        )
    return student


def int8_gpt_and_decoder(voice: Voice) -> None:
    """Add int8 weight and input fake quantization to ``voice``'s GPT and decoder."""
    from autocompress.compress.fake_quant import add_fake_quant_
    from autocompress.compress.plan import QuantConfig

    add_fake_quant_(voice.gpt, QuantConfig("int8", "int8"))
    add_fake_quant_(voice.sovits.dec, QuantConfig("int8", "int8"))


def stripped_export(student: Voice, ranges: dict[str, tuple[float, float]]) -> VoiceExport:
    """``student`` stripped of its fake quantization, as the search saves it, and its export
    with the int8 input ``ranges`` of the student as scored."""
    from autocompress.compress.fake_quant import strip_fake_quant_

    strip_fake_quant_(student.gpt)
    strip_fake_quant_(student.sovits)
    return VoiceExport(
        student, make_inputs(), exporter="legacy", max_tokens=MAX_TOKENS, eval_tokens=EVAL_TOKENS, work_parent=_root(),
        activation_ranges=ranges,
    )  # fmt: skip


def make_inputs(n: int = 2, seed: int = 0) -> list[SynthInput]:
    """Random utterances: phone ids of the v2 table, codes, a positive 'spectrogram'."""
    rng = np.random.default_rng(seed)
    return [
        SynthInput(
            prompt_phones=rng.integers(0, 700, 8),
            text=rng.integers(0, 700, 10),
            prompt_codes=rng.integers(0, 1024, 12),
            ref_spec=np.abs(rng.standard_normal((1025, 40))).astype(np.float32),
        )
        for _ in range(n)
    ]


def make_version_voice(version: str) -> Voice:
    """A micro voice of SoVITS ``version`` (``v1`` also gets the v1 GPT; the Pro ones a 1024-wide style)."""
    torch.manual_seed(0)
    own = {"v1": {"n_symbols": 322}, "v2": {}}.get(version, {"gin_channels": 1024})  # Pro: ge_to512 takes 1024
    sovits_cfg = sovits_tiny().replace(
        **{
            "inter_channels": 32, "hidden_channels": 32, "filter_channels": 64, "n_layers": 1, "gin_channels": 32,
            "mrte_hidden": 32, "mrte_heads": 2, "style_hidden": 32, "upsample_initial_channel": 32,
            "flow_wn_layers": 1, "n_flows": 1, "enc_q_layers": 1, "resblock_kernel_sizes": (3,),
            "resblock_dilation_sizes": ((1, 3, 5),), "version": version, **own,
        }
    )  # fmt: skip
    gpt_cfg = gpt_tiny().replace(hidden_dim=32, n_head=2, n_layer=1, ffn_dim=128)
    if version == "v1":
        gpt_cfg = gpt_cfg.replace(phoneme_vocab_size=512, version="v1")
    return Voice(Text2SemanticGPT(gpt_cfg).eval(), SynthesizerTrn(sovits_cfg, include_enc_q=False).eval())


def make_version_inputs(version: str, n: int = 2, seed: int = 0) -> list[SynthInput]:
    """:func:`make_inputs` for a voice of ``version``: phone ids of its table, a speaker vector for Pro."""
    rng = np.random.default_rng(seed)
    n_symbols = 322 if version == "v1" else 732
    pro = version in ("v2Pro", "v2ProPlus")
    return [
        SynthInput(
            prompt_phones=rng.integers(0, n_symbols, 8),
            text=rng.integers(0, n_symbols, 10),
            prompt_codes=rng.integers(0, 1024, 12),
            ref_spec=np.abs(rng.standard_normal((1025, 40))).astype(np.float32),
            ref_sv=rng.standard_normal(20480).astype(np.float32) if pro else None,
        )
        for _ in range(n)
    ]


@functools.lru_cache(maxsize=None)
def version_bundle(version: str) -> Bundle:
    """An fp32 bundle of the micro voice of SoVITS ``version``, no target limits, 1 sample."""
    with VoiceExport(
        make_version_voice(version), make_version_inputs(version), exporter="legacy", max_tokens=MAX_TOKENS,
        eval_tokens=EVAL_TOKENS, work_parent=_root(),
    ) as export:  # fmt: skip
        return export.bundle(None, _root() / f"bundle_{version}", None, n_samples=1, upstream=False, threads=1)


@functools.lru_cache(maxsize=1)
def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="autocompress-export-tests."))
    atexit.register(shutil.rmtree, root, True)
    return root


@functools.lru_cache(maxsize=1)
def shared_voice() -> Voice:
    return make_voice()


@functools.lru_cache(maxsize=1)
def shared_inputs() -> tuple[SynthInput, ...]:
    return tuple(make_inputs())


@functools.lru_cache(maxsize=1)
def shared_export() -> VoiceExport:
    export = VoiceExport(
        shared_voice(), shared_inputs(), exporter="legacy", max_tokens=MAX_TOKENS, eval_tokens=EVAL_TOKENS,
        work_parent=_root(),
    )  # fmt: skip
    atexit.register(export.close)
    return export


@functools.lru_cache(maxsize=None)
def shared_bundle(variant: str) -> Bundle:
    """The tiny voice exported at one of :data:`VARIANTS`, no target limits, 2 samples."""
    return shared_export().bundle(
        None, _root() / f"bundle_{variant}", None, precisions=VARIANTS[variant], n_samples=2, threads=1
    )


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    err = float(np.sum((ref - got.astype(np.float64)) ** 2))
    return float("inf") if err == 0 else 10 * np.log10(float(np.sum(ref * ref)) / err)
