"""The GPT-SoVITS trial pipeline: plan -> compress -> fine-tune -> score -> save.

:meth:`VoiceTrialRunner.prepare` loads what every trial shares, once per search: the teacher
voice, the experiment folder's training items, and the teacher cache (held-out targets, the
prompt's style vector, the teacher's speech). :meth:`VoiceTrialRunner.run` then handles one
plan: :func:`autocompress.compress.compress` builds the student, :func:`~autocompress.search.
finetune.finetune` distils it, :func:`~autocompress.search.scoring.score_student` scores it for
the target, and the student is saved (upstream-format checkpoints plus exact fp32 weights) for
the Pareto export, with two or three audio samples for the artifact store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pickle
import platform
import shlex
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile
import torch

from autocompress.compress import compress, strip_fake_quant_, weight_norm_parts
from autocompress.compress.fake_quant import voice_activation_ranges
from autocompress.compress.plan import CompressionPlan, precision_bits
from autocompress.exceptions import CheckpointError, DataError
from autocompress.models.gpt_sovits import (
    ExperimentFolder,
    GPTConfig,
    SoVITSConfig,
    SynthesizerTrn,
    Text2SemanticGPT,
    inspect_checkpoint,
    load_gpt,
    load_sovits,
    save_gpt,
    save_sovits,
)
from autocompress.models.gpt_sovits.data import SEMANTIC
from autocompress.models.gpt_sovits.demo import demo_prompt_codes
from autocompress.models.gpt_sovits.text import PUNCTUATION, symbols
from autocompress.models.gpt_sovits.voice import Voice, check_phone_coverage
from autocompress.score.metric import host_device
from autocompress.score.timing import contention_in
from autocompress.score.voice_cost import CODE_RATE_HZ
from autocompress.search.cache import TeacherCache, fingerprint
from autocompress.search.config import ResolvedSearch
from autocompress.search.distill import VoiceItem, compressed_groups, load_items
from autocompress.search.finetune import TeacherLatentCache, finetune
from autocompress.search.scoring import score_quality, score_student
from autocompress.search.space import FinetuneSettings
from autocompress.search.trial import TrialHooks, TrialJob, TrialOutcome

N_SAMPLES = 3  # audio samples uploaded per trial
STUDENT_FILE = "student.pt"  # exact fp32 student weights beside the upstream-format files
RANGES_FILE = "activation_ranges.json"  # the static int8 input ranges the student was scored with
RANGES_FORM_KEY = "int8"  # in RANGES_FILE: the int8 form of the ranges, "s8" or "u8" (absent in older files)
MAX_TRAIN_ITEMS = 512  # training items kept in memory
log = logging.getLogger(__name__)
EVAL_FRACTION = 0.1  # held-out share of a user's experiment folder


def choose_items(with_codes: Sequence[str], held_out: Sequence[str], eval_items: int) -> tuple[list[str], list[str]]:
    """The fine-tune's (training, evaluation) item names among those with semantic codes.

    Held-out items never train; the first ``eval_items`` of them evaluate. With none held out,
    the last item evaluates; with every one held out, the first of them trains instead.
    """
    coded = set(with_codes)
    held = [n for n in held_out if n in coded] or list(with_codes[-1:])
    train = [n for n in with_codes if n not in set(held)]
    if not train:
        train, held = held[:1], held[1:]
    return train, held[:eval_items]


def choose_threads(stable: bool = False) -> int:
    """Torch threads for this search: the cores other processes leave free (at least one).

    On a shared machine, more threads than free cores makes every op wait for the slowest
    thread (measured here: the demo decoder 10x slower with 2 threads than with 1 at load 6).
    An explicit ``OMP_NUM_THREADS`` wins. ``stable`` (a target whose latency is measured
    here): all cores, whatever the load, so that every run of a study measures alike.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if stable:
        return cores
    free = cores - os.getloadavg()[0]
    return max(1, min(cores, int(free + 0.5)))


def needs_finetune(plan: CompressionPlan) -> set[str]:
    """Groups whose weights the plan changes beyond a 16-bit cast (the ones worth fine-tuning).

    int8 activations alone change nothing to train: only layers with 5- to 8-bit weights take
    int8 inputs (:func:`~autocompress.compress.fake_quant.layer_activations`), and those are
    low-bit already."""
    out = set()
    for g in compressed_groups(plan):
        gp = plan.group(g)
        low_bits = any(precision_bits(p) < 16 for p in gp.quant.precisions)
        if low_bits or not gp.student.is_identity or not gp.prune.is_identity:
            out.add(g)
    return out


@dataclass
class VoiceTrialRunner:
    """Runs the trials of one search on one teacher voice."""

    resolved: ResolvedSearch
    teacher: Voice
    train_items: list[VoiceItem]
    cache: TeacherCache
    device: torch.device
    device_label: str
    settings: FinetuneSettings
    latents: TeacherLatentCache

    @classmethod
    def prepare(
        cls, resolved: ResolvedSearch, cache_path: Path, progress: Callable[[str], None] | None = None
    ) -> VoiceTrialRunner:
        """Load the teacher, the data and the teacher cache; ``progress`` gets a line as each
        step starts (a full-size voice takes minutes).

        Raises:
            CheckpointError: a model file cannot be loaded.
            DataError: the experiment folder is missing, malformed or too small.
        """
        device = torch.device(resolved.device)
        if device.type == "cpu":
            torch.set_num_threads(choose_threads(stable=resolved.target.measured))
        voice = resolved.voice
        if progress is not None:
            progress("loading the voice")
        # SoVITS stays on the CPU until a demo prompt is coded: the stand-in features are made there.
        gpt, sovits = load_voice_files(voice.gpt, voice.sovits, device)
        sovits.drop_enc_q_()
        teacher = Voice(gpt.eval(), sovits.eval())
        for p in list(teacher.gpt.parameters()) + list(teacher.sovits.parameters()):
            p.requires_grad_(False)
        folder = ExperimentFolder(voice.data, version=sovits.config.version)
        check_phone_coverage(teacher.gpt.config, (p for item in folder for p in item.phones), folder.version)
        with_codes = [n for n in folder.names if folder[n].codes]
        if not (Path(voice.data) / SEMANTIC).is_file():
            raise DataError(
                f"{voice.data}: no {SEMANTIC}; fine-tuning needs the items' semantic codes, which "
                "GPT-SoVITS's data preparation writes there"
            )
        if len(with_codes) < 2:
            raise DataError(
                f"{voice.data}: {len(with_codes)} items with semantic codes; fine-tuning needs at least 2 "
                "(one to train on, one held out)"
            )
        settings = resolved.space.finetune
        held_out = voice.eval_names or folder.split(eval_fraction=EVAL_FRACTION, seed=0)[1]
        train_names, eval_names = choose_items(with_codes, held_out, settings.eval_items)
        cfg = sovits.config
        train_items = _to(load_items(folder, train_names[:MAX_TRAIN_ITEMS], cfg), device)
        eval_items = _to(load_items(folder, eval_names, cfg), device)
        prompt = _closed(_reference(train_items, voice.reference_name), folder.version)
        if voice.standin_version:  # the demo: its prompt coded as upstream's inference codes one
            codes = demo_prompt_codes(sovits, folder[prompt.name].load_wav(), voice.standin_version)
            prompt = dataclasses.replace(prompt, codes=codes.to(device))
        sovits.to(device)
        sentences = eval_items[: settings.quality_items]
        key = fingerprint(
            [voice.gpt, voice.sovits], [*train_names, "|", *eval_names],
            {"seg": teacher.sovits.segment_frames, "quality_items": settings.quality_items, "device": str(device),
             "prompt_codes": prompt.codes.tolist()},
        )
        with exact_fp32(device):
            cache = TeacherCache.load_or_build(cache_path, teacher, eval_items, prompt, sentences, key, progress=progress)
        return cls(
            resolved=resolved, teacher=teacher, train_items=train_items, cache=cache, device=device,
            device_label=host_device(device), settings=settings, latents=TeacherLatentCache(teacher),
        )

    def describe(self) -> dict[str, Any]:
        return {
            "device": self.device_label,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "host": platform.node(),
            "pid": os.getpid(),
        }

    def labels(self) -> dict[str, str]:
        t = self.resolved.target
        where = f"measured on {self.device_label}" if t.measured else f"projected for {t.name}"
        return {"quality": f"measured on {self.device_label}", "latency_ms": where, "memory_mb": f"projected for {t.name}"}

    def run(self, job: TrialJob, hooks: TrialHooks) -> TrialOutcome:
        hooks.phase("compress")
        student = compress(self.teacher, job.plan)
        groups = needs_finetune(job.plan)
        hooks.phase("fine-tune" if groups and job.steps else "distance")
        torch.manual_seed(job.seed)
        result = finetune(
            student, self.teacher, groups, self.train_items, self.cache.targets, job.steps if groups else 0,
            self.settings, job.abort, on_step=hooks.step, seed=job.seed, latents=self.latents,
            measure=compressed_groups(job.plan),
        )
        for p in list(student.gpt.parameters()) + list(student.sovits.parameters()):
            p.requires_grad_(False)
        hooks.phase("score")
        with exact_fp32(self.device):
            quality = score_quality(student, job.plan, self.cache, self.resolved.target.symmetric_int8)
            ranges = voice_activation_ranges(student)  # its int8 graphs are made to round to these, as scored
            strip_fake_quant_(student.gpt)  # from here on: the deployable student
            strip_fake_quant_(student.sovits)
            scores = score_student(
                student, job.plan, self.cache, self.resolved.target, self.device_label, result.distance, quality
            )
        hooks.phase("save")
        _save_student(student, job.plan, job.student_dir, ranges, symmetric=self.resolved.target.symmetric_int8)
        samples = _write_samples(scores.speech, job.samples_dir, job.number, self.cache)
        notes = [f"fine-tuning stopped: {result.stopped}" + (
            "; each group scored at its best check ("
            + ", ".join(f"{g} step {s}" for g, s in sorted(result.best_steps.items())) + ")"
            if result.best_steps else ""  # nothing trained: no checks to choose from
        )]
        shared = next((m for m in scores.metrics if m.kind == "measured" and contention_in(m.note)), None)
        if shared is not None:
            why = contention_in(shared.note)
            notes.append(f"{shared.name}: {why}")
            log.warning("trial %d: its latency was timed on a shared machine (%s); run one search at a time on "
                        "the measured target, or compare this trial with care", job.number, why)
        return TrialOutcome(
            objectives=scores.objectives, metrics=scores.metrics, constraints=scores.constraints,
            curve=result.curve, group_curves=result.group_curves, steps_done=result.steps_done, samples=samples,
            device_info=self.describe(), notes=tuple(notes), floor_reason=quality.report.floor_reason,
        )


def load_voice_files(
    gpt_path: Path, sovits_path: Path, device: str | torch.device = "cpu"
) -> tuple[Text2SemanticGPT, SynthesizerTrn]:
    """The voice's GPT (on ``device``) and SoVITS (on the CPU), as given by ``--gpt`` and ``--sovits``.

    Raises:
        CheckpointError: a file cannot be loaded; a GPT given as ``--sovits`` or a SoVITS given as
            ``--gpt`` is named by its flag, and the two files given the wrong way round say so.
    """
    try:
        sovits = load_sovits(sovits_path)
    except CheckpointError as e:
        if _kind_of(sovits_path) != "gpt":
            raise
        if _kind_of(gpt_path) == "sovits":
            raise CheckpointError(
                f"--gpt and --sovits are swapped: {sovits_path} is the GPT and {gpt_path} the SoVITS; pass "
                f"--gpt {shlex.quote(str(sovits_path))} --sovits {shlex.quote(str(gpt_path))}"
            ) from e
        raise CheckpointError(
            f"--sovits {sovits_path} is a GPT (text-to-semantic) .ckpt; give it as --gpt, and as --sovits the "
            "SoVITS .pth (SoVITS_weights*/)"
        ) from e
    try:
        gpt = load_gpt(gpt_path, map_location=device)
    except CheckpointError as e:
        if _kind_of(gpt_path) != "sovits":
            raise
        raise CheckpointError(
            f"--gpt {gpt_path} is a SoVITS .pth; give as --gpt the GPT .ckpt (GPT_weights*/) trained with it"
        ) from e
    return gpt, sovits


def _kind_of(path: Path) -> str | None:
    """The kind of a GPT-SoVITS model file ("gpt" or "sovits"); None for any other file."""
    try:
        return inspect_checkpoint(path).kind
    except CheckpointError:
        return None


def _to(items: list[VoiceItem], device: torch.device) -> list[VoiceItem]:
    if device.type == "cpu":
        return items
    return [
        VoiceItem(i.name, i.phones.to(device), i.bert.to(device), i.codes.to(device), i.refer.to(device),
                  None if i.sv is None else i.sv.to(device))
        for i in items
    ]


@contextlib.contextmanager
def exact_fp32(device: torch.device):  # noqa: ANN201 - a context manager
    """Within: fp32 convolutions and matrix products on a CUDA device computed in fp32, not
    TF32 (10 mantissa bits, torch's default for cuDNN convolutions on Ampere and newer), so
    that teacher outputs and scores are what an fp32 bundle computes; fine-tuning keeps TF32."""
    if device.type != "cuda":
        yield
        return
    conv, matmul = torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    torch.backends.cudnn.conv.fp32_precision = torch.backends.cuda.matmul.fp32_precision = "ieee"
    try:
        yield
    finally:
        torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = conv, matmul


def _save_student(
    student: Voice, plan: CompressionPlan, dest: Path, ranges: dict[str, tuple[float, float]] | None = None,
    symmetric: bool | None = None,
) -> None:
    """Write the (stripped) student for export: upstream-format ``gpt.ckpt`` / ``sovits.pth``
    (fp16, loadable by upstream GPT-SoVITS and :func:`load_sovits`), the exact fp32 weights
    in ``student.pt`` (configs + state dicts, read with ``weights_only=True``), ``plan.json``
    and, when it was scored with static int8 inputs, their ``ranges`` in ``activation_ranges.json``
    with the int8 form they were calibrated in (``symmetric``: s8, else u8; None: not recorded).
    """
    gpt, sovits = rebuilt(student)
    tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_gpt(gpt, tmp / "gpt.ckpt")
    save_sovits(sovits, tmp / "sovits.pth")
    torch.save(
        {
            "gpt_config": gpt.config.to_dict(),
            "sovits_config": sovits.config.to_dict(),
            "gpt": {k: v.detach().cpu() for k, v in gpt.state_dict().items()},
            "sovits": {k: v.detach().cpu() for k, v in sovits.state_dict().items()},
        },
        tmp / STUDENT_FILE,
    )
    (tmp / "plan.json").write_text(plan.to_json())
    if ranges:
        saved = {"ranges": {k: list(v) for k, v in sorted(ranges.items())}}
        if symmetric is not None:
            saved = {RANGES_FORM_KEY: "s8" if symmetric else "u8", **saved}
        (tmp / RANGES_FILE).write_text(json.dumps(saved, indent=1))
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def rebuilt(student: Voice) -> tuple[Text2SemanticGPT, SynthesizerTrn]:
    """Fresh models of the student's configs holding its (stripped) weights, weight norm restored.

    Stripping fake quantization folds weight norm into plain weights; a fresh model has weight
    norm again, and ``g = |W|`` (norm over every axis but 0), ``v = W`` reproduce ``W`` exactly
    (an all-zero row keeps a non-zero ``v``: see :func:`weight_norm_parts`).
    """
    with torch.no_grad():
        gpt = Text2SemanticGPT(student.gpt.config)
        gpt.load_state_dict(student.gpt.state_dict(), strict=True)
        sovits = SynthesizerTrn(student.sovits.config, include_enc_q=False)
        own = sovits.state_dict()
        state = {}
        for key, value in student.sovits.state_dict().items():
            base = key[: -len("weight")]
            g_key, v_key = base + "parametrizations.weight.original0", base + "parametrizations.weight.original1"
            if key not in own and key.endswith(".weight") and g_key in own:
                g, state[v_key] = weight_norm_parts(value)
                state[g_key] = g.reshape(own[g_key].shape)
            else:
                state[key] = value
        sovits.load_state_dict(state, strict=True)
    return gpt.eval(), sovits.eval()


PROMPT_SECONDS = (3.0, 10.0)  # the prompt audio upstream's inference accepts


def _reference(items: list[VoiceItem], name: str) -> VoiceItem:
    """The prompt item: ``name``; else the first item upstream's inference would accept as a
    prompt (3 to 10 s); else the first item."""
    lo, hi = (int(s * CODE_RATE_HZ) for s in PROMPT_SECONDS)
    named = [i for i in items if i.name == name]
    fits = [i for i in items if lo <= i.codes.numel() <= hi]
    if not named and not fits:
        log.warning("no training item is %g to %g s long, the prompt lengths upstream's inference accepts; "
                    "prompting with %s (%.1f s)", *PROMPT_SECONDS, items[0].name, items[0].codes.numel() / CODE_RATE_HZ)
    return (named or fits or items)[0]


def _closed(prompt: VoiceItem, version: str) -> VoiceItem:
    """The prompt's text as upstream's inference reads it: closed by "." when it ends without
    a mark (its BERT column zero: exact for all but Chinese text)."""
    table = symbols(version)
    if prompt.phones.numel() and table[int(prompt.phones[-1])] in PUNCTUATION:
        return prompt
    stop = torch.tensor([table.index(".")], dtype=prompt.phones.dtype, device=prompt.phones.device)
    bert = torch.cat([prompt.bert, prompt.bert.new_zeros(prompt.bert.shape[0], 1)], dim=1)
    return dataclasses.replace(prompt, phones=torch.cat([prompt.phones, stop]), bert=bert)


def load_student(folder: Path, device: str | torch.device = "cpu") -> Voice:
    """The exact student a trial saved with :func:`_save_student` (fp32).

    Raises:
        CheckpointError: the file is missing or does not fit its configs.
    """
    path = folder / STUDENT_FILE
    try:
        data = torch.load(path, map_location=device, weights_only=True)
        gpt = Text2SemanticGPT(GPTConfig.from_dict(data["gpt_config"]))
        gpt.load_state_dict(data["gpt"], strict=True)
        sovits = SynthesizerTrn(SoVITSConfig.from_dict(data["sovits_config"]), include_enc_q=False)
        sovits.load_state_dict(data["sovits"], strict=True)
    except (OSError, RuntimeError, KeyError, pickle.UnpicklingError) as e:
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: cannot rebuild the trial's student ({first})") from e
    return Voice(gpt.eval(), sovits.eval())


class ScoredRanges(dict):
    """A student's int8 input ranges (weight path -> ``(low, high)``) and the int8 form they were
    calibrated in: ``symmetric`` True for s8, False for u8, None where the file did not record
    it (the export then infers it from the ranges)."""

    symmetric: bool | None = None


def load_ranges(folder: Path) -> ScoredRanges | None:
    """The int8 input ranges a trial's student was scored with (:func:`~autocompress.compress.fake_quant.voice_activation_ranges`),
    with their int8 form where it was recorded, or None when it saved none (no static int8 input,
    or a student saved before they were kept).

    Raises:
        CheckpointError: the file is there but is not such ranges.
    """
    path = folder / RANGES_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        form = None
        if isinstance(data, dict) and isinstance(data.get("ranges"), dict):  # {"int8": "s8"|"u8", "ranges": {...}}
            form = data.get(RANGES_FORM_KEY)
            if form not in (None, "s8", "u8"):
                raise ValueError(f"int8 form {form!r} is neither s8 nor u8")
            data = data["ranges"]
        ranges = ScoredRanges({str(k): (float(v[0]), float(v[1])) for k, v in data.items() if len(v) == 2})
        if len(ranges) != len(data):
            raise ValueError("each range is a [low, high] pair")
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: not the student's activation ranges ({e})") from e
    ranges.symmetric = None if form is None else form == "s8"
    return ranges


def _write_samples(speech: list, folder: Path, number: int, cache: TeacherCache) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (s, item) in enumerate(zip(speech[:N_SAMPLES], cache.sentences)):
        path = folder / f"trial-{number}-sample-{i}-{Path(item.name).stem}.wav"
        soundfile.write(str(path), s.wav.clamp(-1, 1).numpy(), s.sample_rate, subtype="PCM_16")
        out.append(path)
    return out


__all__ = ["STUDENT_FILE", "VoiceTrialRunner", "choose_threads", "load_student", "needs_finetune", "rebuilt"]
