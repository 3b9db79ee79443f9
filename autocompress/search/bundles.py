"""Export one Pareto trial as an ONNX bundle (:func:`autocompress.export.export_bundle`).

The trial's student is rebuilt exactly from the checkpoint the search saved, and the bundle's
calibration, parity checks and samples use the study's held-out sentences, read from the
teacher cache the search wrote (prompt, reference spectrogram, phones and BERT features).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from optuna.trial import FrozenTrial

from autocompress.compress.plan import CompressionPlan
from autocompress.exceptions import ExportError
from autocompress.runtime.inputs import SynthInput
from autocompress.search.cache import CALIBRATION_SENTENCES, TeacherCache

# torch's TorchScript-based exporter: about 15x faster than dynamo here (7 s against 109 s for a
# micro voice on this CPU); every bundle passes the same parity and end-to-end checks either way.
EXPORTER = "legacy"


def eval_inputs(cache_path: Path) -> list[Any]:
    """The study's held-out sentences as bundle inputs (prompt + sentence each).

    Raises:
        ExportError: the teacher cache is missing or unreadable.
    """
    if not cache_path.is_file():
        raise ExportError(f"the study's teacher cache {cache_path} is missing; hint: rerun the search to rebuild it")
    try:
        cache = TeacherCache.from_dict(torch.load(cache_path, map_location="cpu", weights_only=True))
    except Exception as e:  # noqa: BLE001 - any unreadable cache means the same to the user
        raise ExportError(f"cannot read the teacher cache {cache_path}: {e}") from e
    items = cache.sentences + [i for i in cache.targets.items if i.name not in {s.name for s in cache.sentences}]
    return [synth_input(cache.prompt, s) for s in items[:CALIBRATION_SENTENCES]]


def synth_input(prompt: Any, sentence: Any) -> SynthInput:
    """What a bundle's runner takes to speak ``sentence`` (a search item) prompted by ``prompt``."""
    return SynthInput(
        prompt_phones=prompt.phones.numpy().astype(np.int64),
        text=sentence.phones.numpy().astype(np.int64),
        prompt_codes=prompt.codes.numpy().astype(np.int64),
        ref_spec=prompt.refer[0].numpy().astype(np.float32),
        bert=torch.cat([prompt.bert, sentence.bert], dim=1).numpy().astype(np.float32),
        ref_sv=None if prompt.sv is None else prompt.sv.reshape(-1).numpy().astype(np.float32),
    )


def onnx_exporter(cache_path: Path):  # noqa: ANN201 - returns a TrialExporter
    """A Pareto exporter writing ONNX bundles, with eval inputs from ``cache_path``."""
    inputs: list[Any] = []

    def export(trial: FrozenTrial, src: Path, dest: Path, target: Any) -> str:
        from autocompress.export import export_bundle
        from autocompress.search.pipeline import load_ranges, load_student

        if not inputs:
            inputs.extend(eval_inputs(cache_path))
        plan = CompressionPlan.from_json((src / "plan.json").read_text())
        voice = load_student(src)
        export_bundle(
            voice, plan, dest, target, inputs, metrics=trial.user_attrs.get("metrics", []), exporter=EXPORTER,
            activation_ranges=load_ranges(src),  # int8 graphs round to the ranges the trial was scored with
        )
        return "onnx"

    return export


def rebuild_untrained_student(plan: CompressionPlan, gpt: Path, sovits: Path, dest: Path) -> None:
    """Write to ``dest`` the student folder a trial of ``plan`` that trains nothing saved: the
    teacher of these GPT and SoVITS files compressed by ``plan``, exactly as the search made it.

    Such a plan changes no group beyond a 16-bit cast (:func:`~autocompress.search.pipeline.needs_finetune`),
    so it has no int8 weights or inputs and its student carries no calibrated activation ranges.

    Raises:
        ExportError: the plan trains some group (its student cannot be rebuilt without the fine-tune).
        CheckpointError: a voice file cannot be loaded.
    """
    from autocompress.compress import compress, strip_fake_quant_
    from autocompress.compress.fake_quant import voice_activation_ranges
    from autocompress.models.gpt_sovits import load_gpt, load_sovits
    from autocompress.models.gpt_sovits.voice import Voice
    from autocompress.search.pipeline import _save_student, needs_finetune

    trained = needs_finetune(plan)
    if trained:
        raise ExportError(f"the plan fine-tunes {', '.join(sorted(trained))}: its student cannot be rebuilt "
                          "from the voice files; export it from the artifact folder the search used")
    teacher_sovits = load_sovits(sovits)
    teacher_sovits.drop_enc_q_()  # as the search loads its teacher
    teacher = Voice(load_gpt(gpt, map_location="cpu").eval(), teacher_sovits.eval())
    student = compress(teacher, plan)
    for p in list(student.gpt.parameters()) + list(student.sovits.parameters()):
        p.requires_grad_(False)
    if voice_activation_ranges(student):  # none without int8 inputs; never guessed
        raise ExportError("the plan's student needs calibrated int8 input ranges: it cannot be rebuilt from the "
                          "voice files; export it from the artifact folder the search used")
    strip_fake_quant_(student.gpt)
    strip_fake_quant_(student.sovits)
    _save_student(student, plan, dest)


__all__ = ["EXPORTER", "eval_inputs", "onnx_exporter", "rebuild_untrained_student"]
