"""Build an ONNX bundle of a trial's voice: export, store per-group precision, check, write.

Steps of :func:`export_bundle`:

1. Rebuild the trial's GPT and SoVITS without parametrizations (weight norm and fake
   quantization folded into plain weights) and run them over the evaluation inputs: these
   runs are the references every check compares with.
2. Export six fp32 graphs (``gpt_prefill``, ``gpt_decode``, ``ref_enc``, ``enc_p``, ``flow``,
   ``dec``); torch's dynamo exporter first, the legacy one for a graph dynamo cannot do.
3. Per module group, store its graphs at the precision the plan asks for (mapped onto what
   the target can run) and check each against the references; a graph that misses its
   fidelity floor sends its group, and only its group, one rung up (fp32 always passes or
   the export fails). Every attempt is kept in the manifest. An integer graph rounding its
   inputs to the scored student's own int8 ranges is checked against the scored model (the
   plain one with that fake quantization), not the plain one (see :mod:`.parity`). A trial
   scored with s8 inputs exported for a u8 target rounds exactly as scored; one scored with u8
   inputs exported for an s8 target cannot, and is held to the model as scored too; either
   form change is logged in one line and noted on the module. An integer rung's float parts
   (KV cache, norms, attention, activations between layers) are stored in the float the plan's
   group runs (:attr:`~.precision.GroupRequest.floats`: fp16 for a GPU target's plan, fp32 for
   the ``cpu`` target's), the GPT's KV cache inputs/outputs with them; each module's notes say
   which.
4. Check the assembled bundle end to end with the torch-free runner: file hashes, the greedy
   GPT codes (identical to torch's when the GPT is fp32; for a GPT checked against the scored
   model, its logits along its own greedy decoding at that model's faithfulness floor) and the
   SoVITS waveform SNR against the chain of the torch models the graphs were checked against;
   a GPT miss sends the GPT up a rung, a waveform miss the lowest-precision SoVITS group.
5. Write sample wavs, upstream-format ``.ckpt``/``.pth`` copies where upstream can express
   the shapes, a README and ``manifest.json``, all in a temporary folder beside ``out_dir``
   which is then renamed onto it. A bundle that fails its own check is never written.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from autocompress.exceptions import DataError, ExportError
from autocompress.compress.fake_quant import layer_activations, voice_activation_ranges
from autocompress.compress.plan import graph_float
from autocompress.export.onnx_export import export_graph
from autocompress.export.ort_quant import RANGES_NOTE, ActivationRange, quantize_graph
from autocompress.export.parity import ParityBounds, compare_outputs, judge, snr_db, top1_agreement
from autocompress.export.precision import (
    CPU_INT8_NOTE,
    PLAN_OP_TYPES,
    TARGET_OP_KIND,
    GroupRequest,
    candidate_precisions,
    request_from_plan,
    to_export_precision,
    weight_op_types,
)
from autocompress.export.references import (
    GROUP_GRAPHS,
    References,
    chain_wavs,
    graph_outputs,
    graph_specs,
    graph_views,
    greedy_runs,
    plain_copy,
    range_group,
    reference_runs,
    scored_copy,
)
from autocompress.export.upstream import write_upstream
from autocompress.export.weights import share_initializers
from autocompress.runtime.files import atomic_write_json, atomic_write_text, publish_dir, sibling_temp_dir
from autocompress.runtime.inputs import SynthInput, save_inputs
from autocompress.runtime.manifest import (
    MANIFEST_NAME,
    PRECISIONS,
    GraphEntry,
    Manifest,
    MetricEntry,
    ModuleEntry,
    hash_files,
    read_manifest,
)
from autocompress.runtime.runner import BundleRunner
from autocompress.runtime.sampling import SamplingConfig
from autocompress.runtime.session import describe_device, open_session
from autocompress.runtime.wav import write_wav

INPUTS_FILE = "inputs.npz"
GPT_WEIGHTS_FILE = "gpt_weights.bin"  # initializers shared by gpt_prefill and gpt_decode
SYMBOLS_FILE = "symbols.json"
SAMPLES_DIR = "samples"
# What the exporter makes of the same student for the same target: raise it whenever that changes,
# so that an export folder rebuilds its bundles instead of keeping ones an older exporter wrote.
# 1: until 2026-12-07; 2: int8 graphs round only weight layers' inputs (no outputs, no products of
# two run-time tensors, and other readers of a rounded input read the float tensor), as scored;
# 3: int8 inputs take the scored student's calibrated ranges where it carries them; 4: such int8
# graphs are checked against the scored model, not the plain one (a faithful int8 decoder ships);
# 5: s8-scored ranges in a u8 graph take the s8 grid (zero point 128); u8-scored ones in an s8
# graph are also held to the model as scored; a scored int8 GPT's decoding is checked end to end;
# 6: an int4/int2 rung's scored model rounds only its int8 part (low-bit layers as stored, float
# inputs); where the student also rounded the low-bit layers' inputs, held to that model too;
# 7: bf16 groups are stored, and held to the model scored, as fp16; a float-activation note says
# what the graph runs; the bundle README documents synth --ref-wav and --provider tensorrt; an op
# kind kept at fp32 keeps only its weight layers (not attention's products), repeated Casts are
# dropped (such graphs failed to load), and int4/int2 leave folded position tables float, as scored;
# 8: a GPU target's int8 / int4 / int2 graphs run their float parts and the GPT's KV cache in fp16
# (opset 19: fp16 QuantizeLinear / DequantizeLinear; an int4 group's int8 part with them), held to
# faithfulness floors 2 dB lower.
EXPORT_REVISION = 8
DEFAULT_MAX_TOKENS = 500  # 20 s of audio at 25 codes/s: sizes the runner's static KV cache
EVAL_TOKENS = 40  # greedy codes generated per eval input for the references and checks
NEAR_TIE = 1e-4  # logit margin below which fp32 rounding may flip a greedy choice
WARMUP_CODES = 16  # codes the timing warm-up of the sample synthesis generates
_MAX_E2E_ROUNDS = 8  # end-to-end fallbacks before giving up (there are at most 4 rungs x 4 groups)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bundle:
    """A written bundle: its folder and its manifest."""

    path: Path
    manifest: Manifest


@dataclass
class _GroupChoice:
    """The precision a group ended with, and how it got there."""

    request: GroupRequest
    candidates: list[str]
    symmetric_int8: bool = True
    used: str = "fp32"
    fallbacks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cpu_conv: bool = False  # a CPU target, and the group has convolutions (the int8 note applies)
    range_notes: list[str] = field(default_factory=list)  # where the used rung's int8 input ranges came from
    scored: bool = False  # the used rung was checked against the scored model (see _ScoredReference)


def export_bundle(
    voice: Any,
    plan: Any,
    out_dir: str | Path,
    target: Any,
    eval_inputs: Sequence[SynthInput],
    *,
    precisions: Mapping[str, str] | None = None,
    keep_fp32: Mapping[str, Sequence[str]] | None = None,
    bounds: ParityBounds | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    sampling: SamplingConfig | None = None,
    noise_scale: float = 0.5,
    n_samples: int = 3,
    exporter: str = "dynamo",
    upstream: bool = True,
    metrics: Sequence[Any] = (),
    threads: int | None = None,
    seed: int = 0,
    activation_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> Bundle:
    """Export ``voice`` as a checked ONNX bundle in ``out_dir`` (replaced atomically).

    Args:
        voice: the trial's :class:`~autocompress.models.gpt_sovits.voice.Voice` (not modified).
        plan: its ``CompressionPlan`` (per-group weight precision), or None for fp32.
        out_dir: the bundle folder to write.
        target: a ``Target``, a target name, or None (no deployability limits).
        eval_inputs: evaluation utterances (calibration, parity, samples); at least one.
        precisions: per-group precision overriding the plan (``"int8"``, ``"int4"``...).
        keep_fp32: per group, torch module paths whose layers stay at fp32.
        bounds: parity floors (default :class:`ParityBounds`).
        max_tokens: default and static-cache size of the runner's GPT loop.
        sampling: default sampler settings recorded for the runner.
        noise_scale: default prior noise scale recorded for the runner.
        n_samples: sample wavs to write (at most one per eval input).
        exporter: ``dynamo`` (dynamo, then legacy per graph) or ``legacy``.
        upstream: also write upstream-format ``.ckpt``/``.pth`` where expressible.
        metrics: extra metrics (``score.Metric`` or dicts) to record, e.g. the trial's scores.
        threads: onnxruntime threads for checks and timings (None: its default).
        seed: seed of the reference noise and samples.
        activation_ranges: as in :class:`VoiceExport`.

    Returns:
        the written :class:`Bundle`.

    Raises:
        ExportError: a graph cannot be exported or the bundle fails its own check.
    """
    with VoiceExport(
        voice, eval_inputs, exporter=exporter, max_tokens=max_tokens, sampling=sampling,
        noise_scale=noise_scale, seed=seed, work_parent=Path(out_dir).parent, activation_ranges=activation_ranges,
    ) as export:  # fmt: skip
        return export.bundle(
            plan, out_dir, target, precisions=precisions, keep_fp32=keep_fp32, bounds=bounds,
            n_samples=n_samples, upstream=upstream, metrics=metrics, threads=threads,
        )  # fmt: skip


class VoiceExport:
    """A voice's fp32 graphs and torch references, made once; any number of bundles from them.

    Exporting is the slow part (tens of seconds per graph on a small CPU); writing a bundle at
    some precision mix only quantizes, checks and copies. Use as a context manager (or call
    :meth:`close`) to remove the working folder.

    Args:
        voice: the trial's voice (not modified).
        eval_inputs: evaluation utterances; at least one.
        exporter: ``dynamo`` (dynamo, then legacy per graph) or ``legacy``.
        max_tokens, sampling, noise_scale, seed: as in :func:`export_bundle`.
        eval_tokens: greedy codes generated per eval input for the references and checks.
        work_parent: folder for the working folder (default: the system temp folder).
        activation_ranges: the static int8 input ranges the scored student used, per weight
            (``gpt.<path>`` / ``sovits.<path>``, as
            :func:`~autocompress.compress.fake_quant.static_activation_ranges` names them);
            None: the ones ``voice`` itself carries (calibrated fake quantization), if any.
            int8 graphs round those inputs to exactly these ranges; inputs without one are
            calibrated on ``eval_inputs`` (the manifest's module notes say which). An integer
            graph of a group with such ranges is checked against the scored model (see
            :mod:`autocompress.export.parity`).
    """

    def __init__(
        self,
        voice: Any,
        eval_inputs: Sequence[SynthInput],
        *,
        exporter: str = "dynamo",
        max_tokens: int = DEFAULT_MAX_TOKENS,
        sampling: SamplingConfig | None = None,
        noise_scale: float = 0.5,
        seed: int = 0,
        eval_tokens: int = EVAL_TOKENS,
        work_parent: str | Path | None = None,
        activation_ranges: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self.inputs = list(eval_inputs)
        if not self.inputs:
            raise ExportError("export needs at least one evaluation input for calibration and parity")
        if voice.sovits.config.is_pro and any(i.ref_sv is None for i in self.inputs):
            raise ExportError(
                f"SoVITS {voice.sovits.config.version} needs each evaluation input's reference speaker "
                "vector (ref_sv, from the experiment folder's 7-sv_cn)"
            )
        if max_tokens < 1:
            raise ExportError(f"max_tokens must be >= 1, got {max_tokens}")
        self.max_tokens = max_tokens
        self.sampling = sampling or SamplingConfig()
        self.noise_scale = noise_scale
        self.seed = seed
        self.eval_tokens = max(1, min(eval_tokens, max_tokens))
        self.voice = voice  # as scored: a trial's figures are projected again from it
        self.gpt, self.sovits = plain_copy(voice.gpt, voice.sovits)
        given = voice_activation_ranges(voice) if activation_ranges is None else activation_ranges
        self.activation_ranges = _weight_ranges(self.gpt, self.sovits, given)
        self.range_values = dict(given)  # as given: the scored model of the checks is rebuilt from them
        self.range_symmetric = scored_symmetric(given)  # their int8 form (dict() drops one recorded with them)
        self.refs = reference_runs(
            self.gpt, self.sovits, self.inputs, self.eval_tokens, self.sampling.repetition_penalty, noise_scale, seed
        )
        if work_parent is not None:
            Path(work_parent).mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix=".autocompress-export.", dir=work_parent))
        try:
            specs = graph_specs(self.gpt, self.sovits, self.inputs[0])
            self.exporters = {
                name: export_graph(spec, self.work / f"{name}.export.onnx", prefer=exporter)
                for name, spec in specs.items()
            }
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> VoiceExport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the working folder."""
        shutil.rmtree(self.work, ignore_errors=True)

    def bundle(
        self,
        plan: Any,
        out_dir: str | Path,
        target: Any,
        *,
        precisions: Mapping[str, str] | None = None,
        keep_fp32: Mapping[str, Sequence[str]] | None = None,
        bounds: ParityBounds | None = None,
        n_samples: int = 3,
        upstream: bool = True,
        metrics: Sequence[Any] = (),
        threads: int | None = None,
        activation_ranges: Mapping[str, tuple[float, float]] | None = None,
    ) -> Bundle:
        """Write one checked bundle (arguments as in :func:`export_bundle`; ``activation_ranges``,
        when given, replaces the ranges this export was made with)."""
        target = _resolve_target(target)
        ranges = self.activation_ranges if activation_ranges is None else _weight_ranges(
            self.gpt, self.sovits, activation_ranges
        )
        values = self.range_values if activation_ranges is None else dict(activation_ranges)
        form = self.range_symmetric if activation_ranges is None else scored_symmetric(activation_ranges)
        bounds = bounds or ParityBounds()
        out_dir = Path(out_dir)
        folder = sibling_temp_dir(out_dir)
        work = Path(tempfile.mkdtemp(prefix="bundle.", dir=self.work))
        try:
            for name in self.exporters:
                _link_or_copy(self.work / f"{name}.export.onnx", work / f"{name}.export.onnx")
            checks: list[dict[str, Any]] = []
            choices = {group: _plan_group(group, plan, precisions, target, work) for group in GROUP_GRAPHS}
            scored = _ScoredReference(self, values, _symmetric_int8(target), keep_fp32, form)
            for group in GROUP_GRAPHS:
                _settle_group(
                    group, choices[group], self.refs, bounds, keep_fp32, work, threads, checks, ranges, scored
                )
            model_info = _model_info(self.gpt, self.sovits, self.max_tokens, self.noise_scale)
            _write_static_files(folder, self.inputs, self.sovits)
            e2e: dict[str, float] = {}
            for _ in range(_MAX_E2E_ROUNDS):
                _place_graphs(folder, choices, work)
                manifest = _manifest(target, plan, model_info, self.exporters, choices, checks, self.sampling, folder)
                atomic_write_json(folder / MANIFEST_NAME, manifest.to_dict())
                runner = BundleRunner(folder, prefer_gpu=False, threads=threads, verify=True)
                failure, e2e, blamed = _end_to_end(
                    runner, self.refs, self.inputs, choices, bounds, self.sampling, self.eval_tokens, threads, checks,
                    scored,
                )
                if failure is None:
                    break
                group = blamed if blamed is not None and choices[blamed].used != "fp32" else _lowest_sovits_group(choices)
                if group is None:
                    raise ExportError(f"bundle fails its end-to-end check at fp32: {failure}")
                _bump(group, choices[group], failure)
                _settle_group(
                    group, choices[group], self.refs, bounds, keep_fp32, work, threads, checks, ranges, scored
                )
            else:
                raise ExportError(f"bundle still fails its end-to-end check after {_MAX_E2E_ROUNDS} fallbacks")
            form_line = scored.form_line({g for g, c in choices.items() if c.scored})
            if form_line:
                log.warning("%s: %s", out_dir.name, form_line)
                for c in choices.values():
                    if c.scored:
                        c.notes.append(form_line)
            timing = _write_samples(
                runner, folder, self.inputs[:n_samples], self.sampling, self.noise_scale, self.seed, threads
            )
            upstream_section = (
                write_upstream(self.gpt, self.sovits, folder)
                if upstream
                else {"files": [], "skipped": {"all": "not requested"}}
            )
            given = _shipped_metrics([_metric_entry(m) for m in metrics], plan, choices, target, self.voice)
            all_metrics = _metrics(folder, choices, checks, e2e, timing) + given
            manifest = _manifest(target, plan, model_info, self.exporters, choices, checks, self.sampling, folder)
            manifest = manifest.replace(
                metrics=tuple(all_metrics), samples=tuple(timing["samples"]), upstream=upstream_section
            )
            _write_readme(folder, manifest, out_dir)
            manifest = manifest.replace(files=hash_files(folder))
            atomic_write_json(folder / MANIFEST_NAME, manifest.to_dict())
            # The final self-check: the graphs were loaded and run above and are unchanged, so
            # what is left to prove is that every file, README and samples included, matches
            # the manifest as written.
            read_manifest(folder, verify=True)
            publish_dir(folder, out_dir)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return Bundle(out_dir, read_manifest(out_dir, verify=True))


def _weight_ranges(gpt: Any, sovits: Any, ranges: Mapping[str, tuple[float, float]]) -> tuple[ActivationRange, ...]:
    """Every weight layer of the plain models the graphs are exported from, with its range in
    ``ranges`` where it has one (the int8 pass keeps any other constant-weight node float)."""
    from autocompress.compress.fake_quant import quantizable_weights

    layers = {}
    for prefix, model in (("gpt", gpt), ("sovits", sovits)):
        for fqn, module, name, _, _ in quantizable_weights(model):
            layers[f"{prefix}.{fqn}.{name}" if fqn else f"{prefix}.{name}"] = getattr(module, name)
    unknown = sorted(set(ranges) - set(layers))
    if unknown:
        raise ExportError(
            f"activation range for {unknown[0]!r} names no weight layer of the voice; pass ranges of this voice's own student"
        )
    symmetric = scored_symmetric(ranges)
    out = []
    for name, weight in layers.items():
        low, high = ranges.get(name, (None, None))
        if low is not None and not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise ExportError(f"activation range for {name!r} is {low}..{high}; a range needs finite low <= high")
        out.append(ActivationRange(weight.detach().float().cpu().numpy(), low, high, name, symmetric))
    return tuple(out)


def scored_symmetric(ranges: Mapping[str, tuple[float, float]]) -> bool:
    """Whether a student's int8 input ranges were calibrated as symmetric s8: the form recorded
    with them (their ``symmetric`` attribute, as :func:`~autocompress.search.pipeline.load_ranges`
    gives it) where there is one, else inferred (each one is ``(-amax, amax)``; an asymmetric u8
    calibration keeps each input's minimum and maximum)."""
    recorded = getattr(ranges, "symmetric", None)
    if recorded is not None:
        return bool(ranges) and bool(recorded)
    return bool(ranges) and all(float(low) == -float(high) for low, high in ranges.values())


class _ScoredReference:
    """The torch models an integer graph rounding to the scored student's int8 ranges is checked
    against: the plain models with the layers that graph rounds fake-quantized to the same
    ranges (:func:`~autocompress.export.references.scored_copy`), made on first use, and their
    outputs on the reference feeds. Layers a caller keeps at fp32, and op types the plan keeps
    at fp32, keep float inputs here too.

    Which layers a graph rounds depends on its rung (:meth:`rounded`): an int8 graph rounds
    every weight layer; an int4/int2 graph only its int8 part (the plan's int8 op types), its
    low-bit layers keeping their stored weights and float inputs. Where the student rounded
    those low-bit layers' inputs too (a plan with int8 activations), the graph does not compute
    the model as scored, and :meth:`as_scored_outputs` gives that model, which such graphs must
    stay as close to (see :func:`_check_graph`).

    The reference rounds as the graphs do. s8 ranges (a GPU target's form, the one the trial was
    scored with when every range is ``(-amax, amax)``) round exactly alike in a u8 graph, so
    there it is the model as scored whatever the target. u8 ranges cannot be rounded alike by
    an s8 graph: there it rounds them as s8 too (``reformed``), and :meth:`as_scored_outputs`
    gives the model as scored here too."""

    def __init__(
        self, export: VoiceExport, ranges: Mapping[str, tuple[float, float]], symmetric: bool,
        keep_fp32: Mapping[str, Sequence[str]] | None, scored: bool | None = None,
    ) -> None:  # fmt: skip
        from autocompress.compress.fake_quant import quantizable_weights

        self._export = export
        self.target_symmetric = symmetric  # the int8 form of the bundle's graphs
        # the one the trial was scored with (``scored``: as recorded with the ranges)
        self.scored_symmetric = scored_symmetric(ranges) if scored is None else scored
        self._symmetric = self.scored_symmetric or symmetric
        self.ranges: dict[str, tuple[float, float]] = {}
        for key, span in ranges.items():
            group = range_group(key)
            path = "." + key.rsplit(".", 1)[0] + "."  # as nodes_in_scopes matches a node's module path
            kept = any(f".{p}." in path for p in (keep_fp32 or {}).get(group or "", ()))
            if group is not None and not kept:
                self.ranges[key] = span
        self.groups = {range_group(k) for k in self.ranges}
        self._op_types: dict[str, tuple[str, ...]] = {}  # range key -> the ONNX op types its layer exports as
        for prefix, model in (("gpt", export.gpt), ("sovits", export.sovits)):
            for fqn, _module, name, kind, _axis in quantizable_weights(model):
                self._op_types[f"{prefix}.{fqn}.{name}" if fqn else f"{prefix}.{name}"] = PLAN_OP_TYPES[kind]
        self._models: dict[tuple, dict[str, Any]] = {}
        self._outputs: dict[tuple, list[list[np.ndarray]]] = {}
        self._wavs: dict[tuple, list[np.ndarray]] = {}
        self._runs: dict[tuple, list[Any]] = {}

    @property
    def reformed(self) -> bool:
        """The graphs round the trial's u8 ranges as s8 (the target's form): not as scored."""
        return self._symmetric != self.scored_symmetric

    @property
    def scored_form(self) -> str:
        return "s8" if self.scored_symmetric else "u8"

    def rounded(self, group: str, precision: str, request: GroupRequest) -> tuple[frozenset[str], frozenset[str]]:
        """The range keys of ``group`` whose layers a graph at ``precision`` rounds as int8
        (weights and inputs), and those of its low-bit layers (weights only in the graph, the
        input rounded as well in the student)."""
        int8, low_bit = set(), set()
        for key in self.ranges:
            types = set(self._op_types.get(key, ()))
            if range_group(key) != group or types & set(request.keep_op_types):
                continue
            if precision == "int8" or (precision in ("int4", "int2") and types & set(request.int8_op_types)):
                int8.add(key)
            elif precision in ("int4", "int2"):
                low_bit.add(key)
        return frozenset(int8), frozenset(low_bit)

    def applies(self, group: str, precision: str, request: GroupRequest) -> bool:
        """Whether ``group`` stored at ``precision`` rounds inputs to the scored ranges: an int8
        rung, or an int4/int2 rung with an int8 part, of a group the student has ranges for."""
        int8_part = precision == "int8" or (precision in ("int4", "int2") and bool(request.int8_op_types))
        return int8_part and group in self.groups and bool(self.rounded(group, precision, request)[0])

    def form_line(self, groups: set[str]) -> str:
        """One line saying that the int8 graphs of ``groups`` take another int8 form than the
        trial was scored with, and what that means; "" when they take the same."""
        if not groups or self.scored_symmetric == self.target_symmetric:
            return ""
        which = ", ".join(g for g in GROUP_GRAPHS if g in groups)
        if self.scored_symmetric:
            return (f"int8 activations of {which} are u8 (this target's form), the trial was scored with s8: "
                    "the u8 graphs round the same ranges exactly as scored (zero point 128)")  # fmt: skip
        return (f"int8 activations of {which} are s8 (this target's form), the trial was scored with u8: the graphs "
                "round the same ranges symmetrically, not as scored, and passed the faithfulness floor against "
                "the model as scored too")  # fmt: skip

    def outputs(self, graph: str, precision: str, request: GroupRequest) -> list[list[np.ndarray]]:
        """The outputs of ``graph`` on its reference feeds of the scored model rounding as that
        graph at ``precision`` does."""
        int8, _ = self.rounded(_graph_group(graph), precision, request)
        return self._graph_outputs(graph, (int8, frozenset(), self._symmetric))

    def as_scored_outputs(self, graph: str, precision: str, request: GroupRequest) -> list[list[np.ndarray]] | None:
        """Where a graph at ``precision`` cannot round as scored (:attr:`reformed`, or low-bit
        layers whose inputs the student rounded), the outputs of ``graph`` of the model as
        scored on its reference feeds; else None."""
        int8, low_bit = self.rounded(_graph_group(graph), precision, request)
        if not self.reformed and not low_bit:
            return None
        return self._graph_outputs(graph, (int8, low_bit, self.scored_symmetric))

    def wavs(self, rungs: Mapping[str, tuple[str, GroupRequest]]) -> list[np.ndarray]:
        """The SoVITS chain's reference waveforms, each group in ``rungs`` (group -> its precision
        and request) run by the scored model rounding as its graphs do."""
        export = self._export
        selections = {g: (*self.rounded(g, p, r)[:1], frozenset(), self._symmetric) for g, (p, r) in rungs.items()}
        key = tuple(sorted(selections.items(), key=lambda kv: kv[0]))
        if key not in self._wavs:
            models = {g: self._views(selections[g])["sovits"] if g in selections else export.sovits
                      for g in ("ref_enc", "enc_p", "flow", "dec")}  # fmt: skip
            self._wavs[key] = chain_wavs(models, export.inputs, export.refs)
        return self._wavs[key]

    def gpt_runs(self, precision: str, request: GroupRequest) -> list[Any]:
        """Per eval input, the scored GPT's greedy generation (:class:`~.references.GreedyRun`),
        the GPT rounding as its graphs at ``precision`` do."""
        selection = (self.rounded("gpt", precision, request)[0], frozenset(), self._symmetric)
        if selection not in self._runs:
            export = self._export
            gpt = self._views(selection)["gpt"]
            self._runs[selection] = greedy_runs(gpt, export.inputs, export.eval_tokens, export.sampling.repetition_penalty)
        return self._runs[selection]

    def _graph_outputs(self, graph: str, selection: tuple) -> list[list[np.ndarray]]:
        if (graph, selection) not in self._outputs:
            feeds = self._export.refs.cases[graph].feeds
            self._outputs[(graph, selection)] = graph_outputs(self._views(selection)[graph], feeds)
        return self._outputs[(graph, selection)]

    def _views(self, selection: tuple) -> dict[str, Any]:
        """The models (``gpt``, ``sovits``) and graph views of one selection: (keys rounded as
        int8, keys with only their inputs rounded, symmetric)."""
        if selection not in self._models:
            int8, inputs_only, symmetric = selection
            chosen = {k: self.ranges[k] for k in int8 | inputs_only}
            gpt, sovits = scored_copy(self._export.gpt, self._export.sovits, chosen, symmetric, inputs_only)
            self._models[selection] = {"gpt": gpt, "sovits": sovits, **graph_views(gpt, sovits)}
        return self._models[selection]


def _graph_group(graph: str) -> str:
    return next(g for g, graphs in GROUP_GRAPHS.items() if graph in graphs)


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst``; copy it where the file system has no hard links (FAT, some shares)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


# --------------------------------------------------------------------------- precision per group


def _resolve_target(target: Any) -> Any:
    if isinstance(target, str):
        from autocompress.targets import load_target

        return load_target(target)
    return target


def _plan_group(group: str, plan: Any, overrides: Mapping[str, str] | None, target: Any, work: Path) -> _GroupChoice:
    if overrides and group in overrides:
        rung, note = to_export_precision(overrides[group])
        notes = (f"precision set by the caller: {overrides[group]}",) + ((note,) if note else ())
        # float parts as the plan's group runs them (fp32 without a plan)
        activations = plan.group(group).quant.activations if plan is not None else "fp32"
        request = GroupRequest(rung, (), notes, floats=graph_float(rung, activations))
    else:
        request = request_from_plan(plan, group)
    op_types: set[str] = set()
    for graph in GROUP_GRAPHS[group]:
        op_types |= weight_op_types(onnx.load(str(work / f"{graph}.export.onnx"), load_external_data=False))
    if request.floats == "fp16" and target is not None:
        cannot = sorted({TARGET_OP_KIND[t] for t in op_types if not target.can_deploy("fp16", TARGET_OP_KIND[t])})
        if cannot:  # a plan not made for this target: its integer graph's float parts stay fp32
            request = dataclasses.replace(request, floats="fp32", notes=request.notes + (
                f"float parts in fp32, not the plan's fp16: target {target.name} cannot run {'/'.join(cannot)} in fp16",
            ))  # fmt: skip
    op_types -= set(request.keep_op_types) | set(request.int8_op_types)  # those two have their own rung
    candidates, notes = candidate_precisions(request.precision, op_types, target)
    choice = _GroupChoice(request, candidates, notes=list(request.notes) + notes)
    choice.symmetric_int8 = _symmetric_int8(target)
    choice.cpu_conv = target is not None and target.kind == "cpu" and bool(op_types & {"Conv", "ConvTranspose"})
    return choice


def _symmetric_int8(target: Any) -> bool:
    """Symmetric s8 activations unless the target runs onnxruntime's CPU provider only.

    TensorRT runs int8 only from symmetric QDQ, so GPU targets and "no target" (portable) get
    that form; CPU-only targets get asymmetric u8 activations, onnxruntime's fast x86 path.
    """
    return True if target is None else target.symmetric_int8


def _settle_group(
    group: str,
    choice: _GroupChoice,
    refs: References,
    bounds: ParityBounds,
    keep_fp32: Mapping[str, Sequence[str]] | None,
    work: Path,
    threads: int | None,
    checks: list[dict[str, Any]],
    ranges: Sequence[ActivationRange] = (),
    scored: _ScoredReference | None = None,
) -> None:
    """Walk the group's candidate rungs upward until every graph of the group passes."""
    exclude = tuple((keep_fp32 or {}).get(group, ()))
    while choice.candidates:
        precision = choice.candidates[0]
        failure = None
        range_notes = []
        as_scored = scored is not None and scored.applies(group, precision, choice.request)
        for graph in GROUP_GRAPHS[group]:
            result = _check_graph(
                graph, group, precision, choice.symmetric_int8, choice.request, exclude, refs, bounds, work, threads,
                ranges, scored if as_scored else None,
            )  # fmt: skip
            checks.append(result)
            range_notes += [f"{graph}: {n}" for n in result["notes"] if n.startswith(RANGES_NOTE)]
            if not result["passed"]:
                failure = result["reason"]
                break
        if failure is None:
            choice.used = precision
            choice.range_notes = range_notes
            choice.scored = as_scored
            return
        if precision == "fp32":
            raise ExportError(f"{group}: the fp32 graph does not reproduce torch ({failure}); an exporter problem")
        _bump(group, choice, failure)
    raise ExportError(f"{group}: no precision left to try")


def _bump(group: str, choice: _GroupChoice, reason: str) -> None:
    """Record a rejected rung and move the group to the next one up."""
    if len(choice.candidates) < 2:
        raise ExportError(f"{group}: cannot fall back further ({reason})")
    rejected = choice.candidates.pop(0)  # the rung being tried (or shipped, for an end-to-end miss)
    choice.fallbacks.append({"precision": rejected, "reason": reason})


def _check_graph(
    graph: str,
    group: str,
    precision: str,
    symmetric: bool,
    request: GroupRequest,
    exclude: tuple[str, ...],
    refs: References,
    bounds: ParityBounds,
    work: Path,
    threads: int | None,
    ranges: Sequence[ActivationRange] = (),
    scored_ref: _ScoredReference | None = None,
) -> dict[str, Any]:
    """Store one graph at ``precision``, run it on the reference feeds, judge it: against the
    plain torch model, or against ``scored_ref`` (the scored model rounding as the graph does,
    on the same feeds), the plain model's comparison then recorded beside it. A graph that
    cannot round as the trial was scored (u8 ranges, s8 graph; low-bit layers the student
    also rounded the inputs of) must also reach the faithfulness floor against the model as
    scored: else nothing judged the quality it ships."""
    scored = scored_ref.outputs(graph, precision, request) if scored_ref is not None else None
    case = refs.cases[graph]
    path = work / f"{graph}.{precision}.onnx"
    floats = request.floats_at(precision)
    half_io = _cache_io(graph, case) if floats == "fp16" else ()
    result: dict[str, Any] = {"group": group, "graph": graph, "precision": precision}
    if precision in ("int8", "int4", "int2"):
        result["floats"] = floats
    try:
        notes = quantize_graph(
            work / f"{graph}.export.onnx", path, precision, case.feeds, exclude, request.keep_op_types, half_io,
            symmetric_activations=symmetric, int8_op_types=request.int8_op_types, activation_ranges=ranges,
            floats=floats,
        )
    except ExportError as e:  # onnxruntime's tools cannot store this graph at this rung: the next one may
        if precision == "fp32":
            raise
        return result | {"passed": False, "reason": str(e), "outputs": [], "notes": [],
                         "device": describe_device("cpu", threads), "onnxruntime": ort.__version__}  # fmt: skip
    session = open_session(path, ["CPUExecutionProvider"], threads)
    got = [_run(session, feeds) for feeds in case.feeds]
    names = [o.name for o in session.get_outputs()]
    reference = case.outputs if scored is None else scored
    outputs = compare_outputs(names, reference, got, bounds)
    passed, reason = judge(group, precision, outputs, bounds, scored=scored is not None, floats=floats)
    result |= {
        "passed": passed,
        "reason": reason,
        "reference": "plain" if scored is None else "scored",
        "outputs": [o.to_dict() for o in outputs],
        "notes": notes,
        "device": describe_device("cpu", threads),
        "onnxruntime": ort.__version__,
    }
    if scored is not None:  # information only: what the scored model's own rounding costs is the search's call
        result["outputs_vs_plain"] = [o.to_dict() for o in compare_outputs(names, case.outputs, got, bounds)]
        result["scored_form"] = scored_ref.scored_form if scored_ref is not None else ""
    as_scored = scored_ref.as_scored_outputs(graph, precision, request) if scored_ref is not None else None
    if as_scored is not None:
        vs_scored = compare_outputs(names, as_scored, got, bounds)
        result["outputs_vs_scored_form"] = [o.to_dict() for o in vs_scored]
        floor = bounds.floor(group, precision, scored=True, floats=floats)
        worst = min(vs_scored, key=lambda o: -math.inf if math.isnan(o.snr_db) else o.snr_db)
        if passed and not worst.snr_db >= floor:
            result["passed"] = False
            why = (
                "u8 activations; this graph rounds them s8"
                if scored_ref is not None and scored_ref.reformed
                else "int8 inputs of its low-bit layers; this graph keeps them float"
            )
            result["reason"] = (
                f"{precision} output {worst.name} SNR {worst.snr_db:.1f} dB against the model as scored ({why}) "
                f"< floor {floor:g} dB"
            )
    if graph.startswith("gpt_"):
        got_logits = np.concatenate([o[0] for o in got])
        result["top1_agreement"] = top1_agreement(np.concatenate([o[0] for o in reference]), got_logits)
        if scored is not None:
            result["top1_agreement_vs_plain"] = top1_agreement(np.concatenate([o[0] for o in case.outputs]), got_logits)
    return result


def _cache_io(graph: str, case: Any) -> tuple[str, ...]:
    """The KV-cache inputs/outputs of a GPT graph (kept in fp16 where the graph's float parts are)."""
    if graph == "gpt_prefill":
        n = (len(case.outputs[0]) - 1) // 2
        return tuple(f"{kind}_{i}" for kind in ("k", "v") for i in range(n))
    if graph == "gpt_decode":
        n = (len(case.outputs[0]) - 1) // 2
        return tuple(f"{pre}_{kind}_{i}" for pre in ("past", "new") for kind in ("k", "v") for i in range(n))
    return ()


def _run(session: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    types = {"tensor(float16)": np.float16, "tensor(float)": np.float32, "tensor(int64)": np.int64}
    typed = {i.name: feeds[i.name].astype(types.get(i.type, np.float32)) for i in session.get_inputs()}
    return [np.asarray(o, dtype=np.float32) if o.dtype == np.float16 else o for o in session.run(None, typed)]


# --------------------------------------------------------------------------- end to end


def _end_to_end(
    runner: BundleRunner,
    refs: References,
    inputs: list[SynthInput],
    choices: dict[str, _GroupChoice],
    bounds: ParityBounds,
    sampling: SamplingConfig,
    eval_tokens: int,
    threads: int | None,
    checks: list[dict[str, Any]],
    scored: _ScoredReference | None = None,
) -> tuple[str | None, dict[str, float], str | None]:
    """Run the runner on the bundle as written; return (failure reason or None, figures, the group
    to blame or None: the lowest SoVITS group).

    The greedy GPT codes and the waveform are compared with the torch models the graphs were
    checked against (the scored model for a group checked so); their match with the plain
    models is recorded beside them. An fp32 GPT must give torch's codes. A GPT checked against
    the scored model must keep its logits, along its own greedy decoding up to the first code
    that parts from the scored model's, at that model's faithfulness floor: its graphs'
    checks saw a few decode steps fed torch's cache, this is every step on the runner's own
    cache. Its codes may part where the scored model's choice was closer than the graphs'
    measured error, so their match is recorded, not judged."""
    greedy = SamplingConfig(top_k=1, repetition_penalty=sampling.repetition_penalty)
    matches, exact, plain_matches, plain_exact = [], True, [], True
    gpt_scored = choices["gpt"].scored and scored is not None
    runs = scored.gpt_runs(choices["gpt"].used, choices["gpt"].request) if gpt_scored and scored is not None else None
    logit_signal = logit_noise = 0.0
    as_scored = frozenset(g for g in ("ref_enc", "enc_p", "flow", "dec") if choices[g].scored)
    rungs = {g: (choices[g].used, choices[g].request) for g in as_scored}
    ref_wavs = scored.wavs(rungs) if as_scored and scored is not None else refs.wavs
    signal = noise = plain_signal = plain_noise = 0.0
    for i, item in enumerate(inputs):
        try:
            out = runner.generate(item, greedy, max_new_tokens=eval_tokens, keep_logits=runs is not None)
        except DataError as e:  # NaN logits past the steps the graph checks saw
            return _failed_end_to_end(checks, choices, runner, threads, f"GPT on input {i}: {e}", "gpt")
        tokens = out.tokens
        plain_exact = plain_exact and _same_greedy_codes(refs.gpt_codes[i], tokens, refs.gpt_gaps[i])
        plain_matches.append(_prefix_match(refs.gpt_codes[i], tokens))
        if runs is not None and out.logits is not None:
            run = runs[i]
            exact = exact and _same_greedy_codes(run.codes, tokens, run.gaps)
            matches.append(_prefix_match(run.codes, tokens))
            shared = _shared_steps(run.codes, tokens, len(run.logits), len(out.logits))
            want, got = run.logits[:shared].astype(np.float64), out.logits[:shared].astype(np.float64)
            logit_signal += float(np.sum(want * want))
            logit_noise += float(np.sum((want - got) ** 2))
        else:
            exact, matches = plain_exact, plain_matches
        try:
            ge = runner.style(item.ref_spec, item.ref_sv)
        except DataError as e:
            return _failed_end_to_end(checks, choices, runner, threads, f"style of input {i}: {e}", "ref_enc")
        try:
            wav = runner.vocode(refs.codes[i], item.text, ge, refs.noise_scale, noise=refs.noise[i])
        except DataError as e:
            return _failed_end_to_end(checks, choices, runner, threads, f"waveform of input {i}: {e}", None)
        ref, plain = ref_wavs[i].astype(np.float64), refs.wavs[i].astype(np.float64)
        if wav.shape != ref.shape:
            return f"waveform of input {i} has {wav.size} samples, torch {ref.size}", {}, None
        signal += float(np.sum(ref * ref))
        noise += float(np.sum((ref - wav) ** 2))
        plain_signal += float(np.sum(plain * plain))
        plain_noise += float(np.sum((plain - wav) ** 2))
    wav_snr = snr_db(signal, noise)
    plain_snr = snr_db(plain_signal, plain_noise)
    lowest = min((choices[g].used for g in ("ref_enc", "enc_p", "flow", "dec")), key=PRECISIONS.index)
    floor = bounds.e2e_min_snr_db.get(lowest, -math.inf)
    figures = {"e2e_wav_snr_db": wav_snr, "gpt_greedy_prefix_match": float(np.mean(matches))}
    failure, blamed = None, None
    if choices["gpt"].used == "fp32" and not exact:
        raise ExportError("greedy GPT codes from the fp32 graphs differ from torch's; an exporter problem")
    if runs is not None:
        logit_snr = snr_db(logit_signal, logit_noise)
        figures["gpt_greedy_logit_snr_db"] = logit_snr
        figures["gpt_greedy_prefix_match_vs_plain"] = float(np.mean(plain_matches))
        gpt_used = choices["gpt"].used
        gpt_floor = bounds.floor("gpt", gpt_used, scored=True, floats=choices["gpt"].request.floats_at(gpt_used))
        if not logit_snr >= gpt_floor:
            failure, blamed = (
                f"GPT logits along its greedy decoding SNR {logit_snr:.1f} dB against the scored model "
                f"< floor {gpt_floor:g} dB ({choices['gpt'].used})"
            ), "gpt"
    against = f" against the scored model for {', '.join(sorted(as_scored))}" if as_scored else ""
    if wav_snr < floor and failure is None:
        failure = (
            f"SoVITS chain waveform SNR {wav_snr:.1f} dB{against} < floor {floor:g} dB (lowest precision {lowest})"
        )
    checks.append(
        {
            "graph": "end_to_end",
            "precision": {g: c.used for g, c in choices.items()},
            "passed": failure is None,
            "reason": failure or "",
            "reference": {"gpt": "scored" if runs is not None else "plain"}
            | {g: "scored" if g in as_scored else "plain" for g in ("ref_enc", "enc_p", "flow", "dec")},
            "wav_snr_db": wav_snr if math.isfinite(wav_snr) else None,
            "wav_snr_vs_plain_db": plain_snr if math.isfinite(plain_snr) else None,
            "gpt_greedy_prefix_match": figures["gpt_greedy_prefix_match"],
            "gpt_greedy_exact": exact,
            "device": describe_device(runner.device, threads),
        }
        | (
            {
                "gpt_greedy_logit_snr_db": _finite(figures["gpt_greedy_logit_snr_db"]),
                "gpt_greedy_prefix_match_vs_plain": figures["gpt_greedy_prefix_match_vs_plain"],
                "gpt_greedy_exact_vs_plain": plain_exact,
            }
            if runs is not None
            else {}
        )
    )
    return failure, figures, blamed


def _failed_end_to_end(
    checks: list[dict[str, Any]], choices: dict[str, _GroupChoice], runner: BundleRunner, threads: int | None,
    reason: str, group: str | None,
) -> tuple[str, dict[str, float], str | None]:
    """Record an end-to-end run that could not finish; returns what :func:`_end_to_end` does."""
    checks.append({"graph": "end_to_end", "precision": {g: c.used for g, c in choices.items()}, "passed": False,
                   "reason": reason, "device": describe_device(runner.device, threads)})  # fmt: skip
    return reason, {}, group


def _same_greedy_codes(want: np.ndarray, got: np.ndarray, gaps: np.ndarray) -> bool:
    """Equal codes, or codes that part where torch's own choice was a near tie (margin < 1e-4)."""
    if np.array_equal(want, got):
        return True
    n = min(want.size, got.size)
    diff = np.nonzero(want[:n] != got[:n])[0]
    step = int(diff[0]) if diff.size else n  # the first step whose outcome differs
    return step < gaps.size and float(gaps[step]) < NEAR_TIE


def _shared_steps(want: np.ndarray, got: np.ndarray, want_steps: int, got_steps: int) -> int:
    """How many leading steps of two greedy decodings saw the same codes before them: up to and
    including the first step whose choice differs (or the first to stop), within both runs' steps."""
    n = min(want.size, got.size)
    diff = np.nonzero(want[:n] != got[:n])[0]
    return min((int(diff[0]) if diff.size else n) + 1, want_steps, got_steps)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _prefix_match(want: np.ndarray, got: np.ndarray) -> float:
    """Fraction of ``want`` reproduced before the first difference (1.0 when both are empty)."""
    if want.size == 0:
        return 1.0 if got.size == 0 else 0.0
    n = min(want.size, got.size)
    diff = np.nonzero(want[:n] != got[:n])[0]
    return float((diff[0] if diff.size else n) / want.size)


def _lowest_sovits_group(choices: dict[str, _GroupChoice]) -> str | None:
    groups = [g for g in ("dec", "flow", "enc_p", "ref_enc") if choices[g].used != "fp32"]
    return min(groups, key=lambda g: PRECISIONS.index(choices[g].used)) if groups else None


# --------------------------------------------------------------------------- files


def _place_graphs(folder: Path, choices: dict[str, _GroupChoice], work: Path) -> None:
    """Copy the chosen graph files in; the GPT's two graphs share one weights file."""
    for group, graphs in GROUP_GRAPHS.items():
        for graph in graphs:
            shutil.copyfile(work / f"{graph}.{choices[group].used}.onnx", folder / f"{graph}.onnx")
    share_initializers([folder / f"{g}.onnx" for g in GROUP_GRAPHS["gpt"]], folder / GPT_WEIGHTS_FILE)


def _group_files(folder: Path, group: str) -> list[Path]:
    """The files holding a group's graphs and weights."""
    files = [folder / f"{g}.onnx" for g in GROUP_GRAPHS[group]]
    return files + ([folder / GPT_WEIGHTS_FILE] if group == "gpt" else [])


def _write_static_files(folder: Path, inputs: list[SynthInput], sovits: Any) -> None:
    (folder / INPUTS_FILE).write_bytes(save_inputs(inputs))
    from autocompress.models.gpt_sovits.text import symbols

    table = symbols(sovits.config.version)
    atomic_write_text(folder / SYMBOLS_FILE, json.dumps(list(table), ensure_ascii=False) + "\n")


def _write_samples(
    runner: BundleRunner,
    folder: Path,
    inputs: list[SynthInput],
    sampling: SamplingConfig,
    noise_scale: float,
    seed: int,
    threads: int | None,
) -> dict[str, Any]:
    # warm-up (first runs allocate): a few codes, not a whole sample, which a GPT that never stops
    # runs to the code limit (half a full-size export's time)
    runner.synthesize(inputs[0], sampling, noise_scale, seed, max_new_tokens=WARMUP_CODES)
    samples, gpt_s, tokens, sovits_s, audio_s = [], 0.0, 0, 0.0, 0.0
    for i, item in enumerate(inputs):
        out = runner.synthesize(item, sampling, noise_scale, seed + i)
        rel = f"{SAMPLES_DIR}/sample_{i}.wav"
        write_wav(folder / rel, out.wav, out.sampling_rate)
        samples.append({"file": rel, "sample": i, "seconds": round(out.audio_seconds, 3), "codes": int(out.codes.size)})
        gpt_s += out.gpt_seconds
        tokens += max(int(out.codes.size), 1)
        sovits_s += out.sovits_seconds
        audio_s += out.audio_seconds
    return {
        "samples": samples,
        "device": describe_device(runner.device, threads),
        "gpt_ms_per_token": 1000.0 * gpt_s / max(tokens, 1),
        "sovits_rtf": sovits_s / max(audio_s, 1e-9),
        "e2e_rtf": (gpt_s + sovits_s) / max(audio_s, 1e-9),
    }


def _write_readme(folder: Path, manifest: Manifest, out_dir: Path) -> None:
    from autocompress import __version__

    template = resources.files("autocompress.export").joinpath("bundle_readme.md").read_text(encoding="utf-8")
    rows = "\n".join(
        f"| {g.name} | {g.group} | {g.precision}{_floats_label(manifest, g.group)} | `{g.file}` |"
        for g in manifest.graphs.values()
    )
    fallbacks = [
        f"- {m.group}: {f['precision']} rejected: {f['reason']}" for m in manifest.modules.values() for f in m.fallbacks
    ]
    fallback_text = ("Fallbacks taken:\n\n" + "\n".join(fallbacks) + "\n") if fallbacks else ""
    files = manifest.upstream.get("files", [])
    upstream_text = (
        "\nUpstream-format copies (fp16, load in GPT-SoVITS): " + ", ".join(f"`{f}`" for f in files) + ".\n"
        if files
        else ""
    )
    text = template.format(
        title=f"Voice bundle `{out_dir.name}`",
        version=__version__,
        target=manifest.target.get("name", "none"),
        folder=out_dir.name,
        reference_flags=_reference_flags(manifest),
        graph_rows=rows,
        fallback_text=fallback_text,
        upstream_text=upstream_text,
    )
    atomic_write_text(folder / "README.md", text)


def _floats_label(manifest: Manifest, group: str) -> str:
    """`` (fp16 float parts)`` for a group whose integer graphs' float parts are fp16 (its
    module note says so), else ""."""
    module = manifest.modules.get(group)
    half = module is not None and any(n.startswith("float parts in fp16") for n in module.notes)
    return " (fp16 float parts)" if half else ""


def _reference_flags(manifest: Manifest) -> str:
    """The ``synth`` flags of a new reference: a Pro voice's style graph also takes its speaker vector."""
    pro = any(i == "ref_sv" for i in manifest.graphs["ref_enc"].inputs)
    return "--ref-spec ref.npy --ref-sv ref_sv.npy" if pro else "--ref-spec ref.npy"


# --------------------------------------------------------------------------- manifest


def _model_info(gpt: Any, sovits: Any, max_tokens: int, noise_scale: float) -> dict[str, Any]:
    from autocompress.models.gpt_sovits.gpt import PE_ROWS

    c = sovits.config
    return {
        "family": "gpt-sovits",
        "sovits_version": c.version,
        "sovits_config": c.to_dict(),
        "gpt_config": gpt.config.to_dict(),
        "sampling_rate": c.sampling_rate,
        "samples_per_frame": c.samples_per_frame,
        "frames_per_code": 2 if c.semantic_frame_rate == "25hz" else 1,
        "spec_channels": c.spec_channels,
        "eos": gpt.config.eos,
        "pe_rows": PE_ROWS,
        "max_tokens": max_tokens,
        "noise_scale": noise_scale,
        "speed": 1.0,
        "inputs": INPUTS_FILE,
        "symbols": SYMBOLS_FILE,
    }


def _manifest(
    target: Any,
    plan: Any,
    model_info: dict[str, Any],
    exporters: dict[str, str],
    choices: dict[str, _GroupChoice],
    checks: list[dict[str, Any]],
    sampling: SamplingConfig,
    folder: Path,
) -> Manifest:
    graphs = {}
    for group, names in GROUP_GRAPHS.items():
        for name in names:
            model = onnx.load(str(folder / f"{name}.onnx"), load_external_data=False)
            graphs[name] = GraphEntry(
                name=name,
                file=f"{name}.onnx",
                group=group,
                precision=choices[group].used,
                exporter=exporters[name],
                inputs=tuple(i.name for i in model.graph.input),
                outputs=tuple(o.name for o in model.graph.output),
            )
    modules = {
        group: ModuleEntry(
            group=group,
            requested=c.request.precision,
            used=c.used,
            fallbacks=tuple(c.fallbacks),
            notes=tuple(c.notes) + _floats_note(group, c) + tuple(c.range_notes)
            + ((CPU_INT8_NOTE,) if c.cpu_conv and c.used == "int8" else ()),
        )
        for group, c in choices.items()
    }
    return Manifest(
        target=target.to_dict() if target is not None else {"name": "none"},
        plan=plan.to_dict() if plan is not None else {},
        model=model_info,
        graphs=graphs,
        modules=modules,
        checks=tuple(checks),
        sampling=sampling.to_dict(),
        versions=_versions(),
        files=hash_files(folder),
        created_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def _floats_note(group: str, choice: _GroupChoice) -> tuple[str, ...]:
    """The module note saying what an integer graph's float parts run in (none for a float rung)."""
    if choice.used not in ("int8", "int4", "int2"):
        return ()
    floats = choice.request.floats_at(choice.used)
    cache = ", the KV cache inputs/outputs too" if group == "gpt" else ""
    return (f"float parts in {floats}: norms, attention, activations between layers and dequantized math{cache}",)


def _metrics(
    folder: Path, choices: dict[str, _GroupChoice], checks: list[dict[str, Any]], e2e: dict[str, float], timing: dict[str, Any]
) -> list[MetricEntry]:
    disk = "bundle files"
    device = timing["device"]
    out = []
    total = 0
    for group in GROUP_GRAPHS:
        size = sum(f.stat().st_size for f in _group_files(folder, group))
        total += size
        out.append(MetricEntry(f"file_bytes_{group}", float(size), "bytes", "measured", disk, choices[group].used))
    out.append(MetricEntry("file_bytes_onnx_total", float(total), "bytes", "measured", disk, "graphs and weights"))
    kept = {}
    for check in checks:
        if check.get("passed") and check["graph"] != "end_to_end":
            kept[check["graph"]] = check
    for graph, check in kept.items():
        snrs = [o["snr_db"] for o in check["outputs"] if o["snr_db"] is not None]
        against = "the scored torch model (the trial's int8 fake quantization)" if check.get("reference") == "scored" else "torch"
        if "outputs_vs_scored_form" in check:
            against = "the scored torch model with its u8 input ranges rounded as s8, as this graph does"
        out.append(
            MetricEntry(
                f"parity_snr_db_{graph}", min(snrs) if snrs else None, "dB", "measured", check["device"],
                f"{check['precision']} vs {against}; None = exact",
            )
        )  # fmt: skip
        if "top1_agreement" in check:
            out.append(MetricEntry(f"top1_agreement_{graph}", check["top1_agreement"], "", "measured", check["device"]))
    last_e2e = next((c for c in reversed(checks) if c["graph"] == "end_to_end"), {})
    e2e_device = last_e2e.get("device", device)
    reference = last_e2e.get("reference", {})
    as_scored = sorted(g for g, r in reference.items() if r == "scored" and g != "gpt")
    gpt_note = "against the scored GPT's greedy decoding (the trial's int8 fake quantization)"
    notes = {
        "e2e_wav_snr_db": f"against torch with the scored model for {', '.join(as_scored)}" if as_scored else "",
        "gpt_greedy_prefix_match": gpt_note if reference.get("gpt") == "scored" else "",
        "gpt_greedy_logit_snr_db": gpt_note + ", up to the first code that parts",
        "gpt_greedy_prefix_match_vs_plain": "against torch's greedy codes (no int8 rounding); information only",
    }
    for name, value in e2e.items():
        unit = "dB" if name.endswith("_db") else ""
        out.append(MetricEntry(name, value if math.isfinite(value) else None, unit, "measured", e2e_device, notes.get(name, "")))
    # "sample_": this machine's timing of the sample synthesis, apart from the trial's figures for the target
    note = "sample synthesis on this machine, not the target"
    out.append(MetricEntry("sample_gpt_ms_per_token", timing["gpt_ms_per_token"], "ms", "measured", device, note))
    out.append(MetricEntry("sample_sovits_rtf", timing["sovits_rtf"], "x", "measured", device, note))
    out.append(MetricEntry("sample_e2e_rtf", timing["e2e_rtf"], "x", "measured", device, note))
    return out


def _shipped_metrics(
    entries: list[MetricEntry], plan: Any, choices: dict[str, _GroupChoice], target: Any, voice: Any
) -> list[MetricEntry]:
    """A trial's figures as this bundle records them.

    Where a group ships at another precision than its plan (a parity fallback, or the caller's
    ``precisions``), the projected figures are projected again for what ships, and every other
    figure (measured on the plan's model) says that it belongs to the plan.
    """
    requests = {g: request_from_plan(plan, g) for g in choices}
    planned = {g: r.precision for g, r in requests.items()}
    # A rung the target cannot run was skipped by the plan's projection too: only a parity
    # fallback or the caller's precision makes the shipped group differ from what was projected,
    # or integer float parts the target cannot run in the plan's fp16.
    changed = {g: c.used for g, c in choices.items()
               if c.used != planned[g] and (c.fallbacks or c.request.precision != planned[g])}  # fmt: skip
    floats = {g: c.request.floats_at(c.used) for g, c in choices.items()}
    changed |= {g: c.used for g, c in choices.items()
                if c.used == planned[g] and floats[g] != requests[g].floats_at(c.used)}  # fmt: skip
    if not changed or not entries:
        return entries

    def label(rung: str, float_parts: str) -> str:
        return f"{rung} ({float_parts} float parts)" if rung in ("int8", "int4", "int2") else rung

    shipped = ", ".join(
        f"{g} {label(planned[g], requests[g].floats_at(planned[g]))} -> {label(used, floats[g])}"
        if used == planned[g] else f"{g} {planned[g]} -> {used}"  # only its float parts changed
        for g, used in changed.items()
    )
    again: dict[str, Any] = {}
    if target is not None and any(e.kind == "projected" for e in entries):
        from autocompress.score.voice_cost import projected_plan_metrics

        shipped_plan = _shipped_plan(plan, changed, {g: floats[g] for g in changed})
        again = {m.name: m for m in projected_plan_metrics(voice, shipped_plan, target)}
    out = []
    for entry in entries:
        new = again.get(entry.name) if entry.kind == "projected" else None
        if new is not None and entry.value is not None:
            note = f"projected again for what this bundle ships ({shipped}); the plan's figure was {entry.value:.4g}"
            out.append(dataclasses.replace(entry, value=float(new.value), note=f"{new.note}; {note}" if new.note else note))
        else:
            extra = f"{entry.kind} for the plan; this bundle ships {shipped}"
            out.append(dataclasses.replace(entry, note=f"{entry.note}; {extra}" if entry.note else extra))
    return out


def _shipped_plan(plan: Any, changed: Mapping[str, str], floats: Mapping[str, str] | None = None) -> Any:
    """``plan`` with each changed group's weights at the rung it ships (float rungs: activations
    too; integer rungs: activations for the float parts ``floats`` names, where it names them)."""
    from autocompress.compress.plan import CompressionPlan, QuantConfig

    shipped = plan if plan is not None else CompressionPlan()
    for group, used in changed.items():
        quant = shipped.group(group).quant
        activations = used if used in ("fp16", "fp32") else quant.activations
        if used not in ("fp16", "fp32") and floats and group in floats:  # the float parts it ships
            # as with_deployable_precisions writes them: fp16, else what an fp32-float graph's layers read
            activations = "fp16" if floats[group] == "fp16" else layer_activations("fp32", used)
        # Op kinds the plan keeps above the group's rung stay there; the rest go with the group.
        kept = {k: p for k, p in quant.op_weights.items()
                if PRECISIONS.index(to_export_precision(p)[0]) > PRECISIONS.index(used)}  # fmt: skip
        shipped = shipped.replace_group(group, quant=QuantConfig(used, activations, kept))
    return shipped


def _metric_entry(metric: Any) -> MetricEntry:
    data = metric.to_dict() if hasattr(metric, "to_dict") else dict(metric)
    return MetricEntry.from_dict(data)


def _versions() -> dict[str, str]:
    import torch

    from autocompress import __version__

    return {
        "autocompress": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


__all__ = ["Bundle", "DEFAULT_MAX_TOKENS", "VoiceExport", "export_bundle", "voice_activation_ranges"]
