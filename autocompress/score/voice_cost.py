"""Latency and memory of a whole voice (GPT + SoVITS): measured here, projected for a target.

Measured (on the device holding the models; CUDA calls are synchronised):
- ``gpt_prefill_ms``: one prefill of the prompt + sentence phones and the prompt codes.
- ``gpt_ms_per_token``: a decode loop of a fixed number of steps with the static KV cache
  (the argmax fed back, no sampling, no early stop), divided by the step count; the prefill
  that fills the cache runs before each timed loop, untimed.
- ``sovits_ms_per_audio_s``: ``SynthesizerTrn.decode`` (noise scale 0) per second of output.
- ``rtf``: in :func:`voice_cost_metrics`, the prefill plus the per-token time times the codes
  plus the SoVITS time, over the seconds of audio those codes make; :func:`measure_rtf` times
  a whole evaluation set instead (wall time over the seconds of audio produced).

Projected (:func:`project_voice`): the roofline of :mod:`autocompress.score.projection` over
meta-device profiles of the same three calls at the sizes of an :class:`UtteranceShape`
(defaults: the field notes' baseline, 60 phones, 75 prompt codes, 100 generated codes = 4 s,
3 s reference), and the memory of :mod:`autocompress.score.memory`. The per-token figure is
profiled at the middle of the generated span, where a cost linear in the cache length equals
its average over the span.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from autocompress.exceptions import ConfigError, DataError
from autocompress.models.gpt_sovits.voice import MODULE_GROUPS, SOVITS_GROUP_MEMBERS
from autocompress.score.memory import MemoryProjection, deployed_weight_bytes, kv_cache_bytes, project_memory
from autocompress.score.metric import Metric, host_device, measured, projected
from autocompress.score.precision import ActPrecision, WeightBits, activation_precision
from autocompress.score.profile import ModelProfile, profile_module
from autocompress.score.projection import project_latency, require_figures
from autocompress.score.timing import Timing, contention_in, measure
from autocompress.score.tokens import Utterance
from autocompress.targets import PRECISION_BITS, Target

GPT_GROUP = "gpt"
CODE_RATE_HZ = 25  # semantic codes per second of audio; each code is 2 spectrogram frames


@dataclass(frozen=True)
class UtteranceShape:
    """Sizes one projected utterance has (batch 1).

    Attributes:
        n_phones: prompt + sentence phones given to the GPT.
        n_prompt: prompt codes.
        n_tokens: generated codes (25 per second of audio).
        n_text: sentence phones given to SoVITS.
        ref_frames: frames of the reference spectrogram (50 per second).
    """

    n_phones: int = 60
    n_prompt: int = 75
    n_tokens: int = 100
    n_text: int = 30
    ref_frames: int = 150

    @property
    def audio_s(self) -> float:
        return self.n_tokens / CODE_RATE_HZ


# --------------------------------------------------------------------------- measured


def _sync_for(module: Any) -> Callable[[], None] | None:
    dev = next(module.parameters()).device
    return torch.cuda.synchronize if dev.type == "cuda" else None


@torch.no_grad()
def measure_gpt(
    gpt: Any, prompt: Utterance, sentence: Utterance, n_tokens: int = 100, warmup: int = 1, repeats: int = 3
) -> list[Metric]:
    """Measure ``gpt_prefill_ms`` and ``gpt_ms_per_token`` (decode loop of ``n_tokens`` steps)."""
    if n_tokens < 1:
        raise ConfigError(f"n_tokens must be >= 1, got {n_tokens}")
    dev = next(gpt.parameters()).device
    phones = torch.cat([prompt.phones, sentence.phones])[None].to(dev)  # [1, N]
    bert = torch.cat([prompt.bert, sentence.bert], dim=1)[None].to(dev)  # [1, 1024, N]
    codes = prompt.codes[None].to(dev)  # [1, P]
    start = phones.shape[1] + codes.shape[1]
    sync = _sync_for(gpt)
    prefill = measure(lambda: gpt.prefill(phones, bert, codes, start + n_tokens), warmup, repeats, sync)
    state: dict[str, Any] = {}

    def fresh_cache() -> None:
        state["logits"], state["cache"] = gpt.prefill(phones, bert, codes, start + n_tokens)

    def decode_loop() -> None:
        logits, cache = state["logits"], state["cache"]
        for pos in range(start, start + n_tokens):
            logits = gpt.decode_step(logits.argmax(-1, keepdim=True), cache, pos)  # [1, V]

    loop = measure(decode_loop, warmup, repeats, sync, setup=fresh_cache)
    where = host_device(dev)
    return [
        measured("gpt_prefill_ms", prefill.median_ms, "ms", where, _noted(f"{start} positions", prefill, dev)),
        measured("gpt_ms_per_token", loop.median_ms / n_tokens, "ms", where,
                 _noted(f"{n_tokens}-step loop, static cache", loop, dev)),
    ]


def _noted(note: str, timing: Timing, device: torch.device | None = None) -> str:
    """``note``, plus the timing's contention warning when the CPU was shared during a CPU run
    (a CUDA run's own CPU time depends on how its synchronisation waits, so it is not judged)."""
    if device is not None and device.type == "cuda":
        return note
    busy = timing.contention(torch.get_num_threads())
    return f"{note}; {busy}" if busy else note


def speaker_vector(sovits_config: Any, like: Any = None, **tensor_kw: Any) -> torch.Tensor | None:
    """The ``sv_emb`` a Pro SoVITS decode needs: ``like``'s own ``sv`` when it has one, else
    zeros ``[1, sv_dim]`` (costs do not depend on its values); None for v1/v2."""
    if not sovits_config.is_pro:
        return None
    own = getattr(like, "sv", None)
    return own if own is not None else torch.zeros(1, sovits_config.sv_dim, **tensor_kw)


@torch.no_grad()
def measure_sovits(sovits: Any, sentence: Utterance, refer: torch.Tensor | None = None,
                   warmup: int = 1, repeats: int = 3, sv: torch.Tensor | None = None) -> list[Metric]:
    """Measure ``sovits_ms_per_audio_s``: noise-free decode of the sentence's codes.

    ``refer`` and ``sv`` (Pro only) are the reference's; the sentence's own when None.
    """
    dev = next(sovits.parameters()).device
    codes = sentence.codes.reshape(1, 1, -1).to(dev)  # [1, 1, Tc]
    text = sentence.phones[None].to(dev)  # [1, Tt]
    ref = (sentence.refer if refer is None else refer).to(dev)
    sv_emb = sv if sv is not None else speaker_vector(sovits.config, sentence, device=dev)
    sv_emb = None if sv_emb is None else sv_emb.to(dev)
    out: dict[str, Any] = {}

    def run() -> None:
        out["wav"] = sovits.decode(codes, text, ref, noise_scale=0.0, sv_emb=sv_emb)

    timing = measure(run, warmup, repeats, _sync_for(sovits))
    seconds = out["wav"].shape[-1] / sovits.config.sampling_rate
    return [measured("sovits_ms_per_audio_s", timing.median_ms / seconds, "ms", host_device(dev),
                     _noted(f"{seconds:.2f} s of audio", timing, dev))]


def measure_rtf(speak: Callable[[], Sequence[Any]], sample_rate: int, device: str | None = None,
                warmup: int = 0, repeats: int = 1) -> Metric:
    """End-to-end real-time factor: time of ``speak()`` over the seconds of audio it returns.

    Args:
        speak: synthesises the fixed evaluation set and returns its waveforms (arrays or
            tensors, any shape whose last axis is time).
        sample_rate: of the waveforms.
        device: what ran it (default: this machine's CPU).
    """
    out: dict[str, Any] = {}

    def run() -> None:
        out["wavs"] = speak()

    timing = measure(run, warmup, repeats)
    seconds = sum(np.shape(w)[-1] for w in out["wavs"]) / sample_rate
    if seconds <= 0:
        raise DataError("measure_rtf: the evaluation set produced no audio")
    note = _noted(f"{len(out['wavs'])} utterances, {seconds:.1f} s", timing)
    return measured("rtf", timing.median_s / seconds, "x", device, note)


def run_shape(voice: Any, shape: UtteranceShape) -> int:
    """Run one utterance of ``shape`` through ``voice`` with dummy inputs (values do not matter).

    GPT prefill, ``shape.n_tokens`` cached decode steps, then a noise-free SoVITS decode.
    Returns the number of audio samples produced.
    """
    gpt, sv = voice.gpt, voice.sovits
    dev = next(gpt.parameters()).device
    start = shape.n_phones + shape.n_prompt
    with torch.no_grad():
        phones = torch.ones(1, shape.n_phones, dtype=torch.long, device=dev)
        bert = torch.zeros(1, gpt.config.bert_dim, shape.n_phones, device=dev)
        prompt = torch.ones(1, shape.n_prompt, dtype=torch.long, device=dev)
        logits, cache = gpt.prefill(phones, bert, prompt, start + shape.n_tokens)
        for pos in range(start, start + shape.n_tokens):
            logits = gpt.decode_step(logits[:, :1024].argmax(-1, keepdim=True), cache, pos)
        del cache
        codes = torch.ones(1, 1, shape.n_tokens, dtype=torch.long, device=dev)
        text = torch.ones(1, shape.n_text, dtype=torch.long, device=dev)
        refer = torch.rand(1, sv.config.spec_channels, shape.ref_frames, device=dev)
        sv_emb = speaker_vector(sv.config, device=dev)
        return int(sv.decode(codes, text, refer, noise_scale=0.0, sv_emb=sv_emb).shape[-1])


def _voice_from_configs(gpt_config: dict, sovits_config: dict, device: str = "cpu") -> Any:
    """An inference voice of these configs on ``device`` (weights do not matter to memory)."""
    from autocompress.models.gpt_sovits.config import GPTConfig, SoVITSConfig
    from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
    from autocompress.models.gpt_sovits.sovits import SynthesizerTrn
    from autocompress.models.gpt_sovits.voice import Voice

    return Voice(
        Text2SemanticGPT(GPTConfig.from_dict(gpt_config)).eval().to(device),
        SynthesizerTrn(SoVITSConfig.from_dict(sovits_config), include_enc_q=False).eval().to(device),
    )


def _run_from_configs(gpt_config: dict, sovits_config: dict, shape: dict) -> None:
    """Subprocess body of :func:`measure_voice_memory`: build from configs, run one utterance."""
    torch.set_num_threads(1)
    run_shape(_voice_from_configs(gpt_config, sovits_config), UtteranceShape(**shape))


def _gpu_run_from_configs(gpt_config: dict, sovits_config: dict, shape: dict, device: str) -> dict[str, Any]:
    """Subprocess body of :func:`measure_voice_memory` on a GPU: build there, run one utterance, read its memory."""
    from autocompress.score.memory import read_gpu_memory

    voice = _voice_from_configs(gpt_config, sovits_config, device)
    torch.cuda.reset_peak_memory_stats(device)
    run_shape(voice, UtteranceShape(**shape))
    return read_gpu_memory(device)


def measure_voice_memory(
    voice: Any, shape: UtteranceShape | None = None, target: Target | None = None
) -> list[Metric]:
    """Measured memory of one utterance through a voice of this structure.

    A fresh subprocess builds an fp32 torch voice of the same configs (weights do not affect
    memory) on the voice's device and runs the utterance there, so that nothing else this
    process holds (a search's teacher and caches) is counted. On the CPU its peak RSS is
    reported (:func:`~autocompress.score.memory.peak_rss_subprocess`); on a GPU, NVML's memory
    of that process and torch's peak allocation in it
    (:func:`~autocompress.score.memory.gpu_memory_subprocess`, with its labelled fallback).
    """
    from dataclasses import asdict

    from autocompress.score.memory import gpu_memory_subprocess, peak_rss_subprocess

    shape = shape or UtteranceShape()
    dev = next(voice.gpt.parameters()).device
    configs = (voice.gpt.config.to_dict(), voice.sovits.config.to_dict())
    if dev.type == "cuda":
        return gpu_memory_subprocess(_gpu_run_from_configs, *configs, asdict(shape), str(dev), target=target)
    return peak_rss_subprocess(_run_from_configs, *configs, asdict(shape))


# --------------------------------------------------------------------------- projected


@dataclass(frozen=True)
class VoiceProfile:
    """Meta-device profiles of one voice at one :class:`UtteranceShape` (reuse across targets)."""

    shape: UtteranceShape
    gpt_prefill: ModelProfile
    gpt_decode: ModelProfile
    sovits_decode: ModelProfile
    audio_s: float


def profile_voice(voice: Any, shape: UtteranceShape = UtteranceShape()) -> VoiceProfile:
    """Profile the GPT prefill, one GPT decode step and the SoVITS decode on the meta device."""
    gpt, sv = voice.gpt, voice.sovits
    cfg = sv.config
    meta = {"device": "meta"}
    phones = torch.zeros(1, shape.n_phones, dtype=torch.long, **meta)
    bert = torch.zeros(1, gpt.config.bert_dim, shape.n_phones, **meta)
    prompt = torch.zeros(1, shape.n_prompt, dtype=torch.long, **meta)
    start = shape.n_phones + shape.n_prompt
    prefill = profile_module(gpt, lambda m, _: m.prefill_logits(phones, bert, prompt), prefix=GPT_GROUP)
    token = torch.zeros(1, 1, dtype=torch.long, **meta)
    mid = start + shape.n_tokens // 2
    decode = profile_module(
        gpt,
        lambda m, cache: m.decode_step(token, cache, mid),
        setup=lambda m: m.new_cache(1, start + shape.n_tokens, shape.n_phones),
        prefix=GPT_GROUP,
    )
    codes = torch.zeros(1, 1, shape.n_tokens, dtype=torch.long, **meta)
    text = torch.zeros(1, shape.n_text, dtype=torch.long, **meta)
    refer = torch.zeros(1, cfg.spec_channels, shape.ref_frames, **meta)
    sv_emb = speaker_vector(cfg, **meta)
    sovits = profile_module(sv, lambda m, _: m.decode(codes, text, refer, noise_scale=0.0, sv_emb=sv_emb))
    audio_s = 2 * shape.n_tokens * cfg.samples_per_frame / cfg.sampling_rate
    return VoiceProfile(shape, prefill, decode, sovits, audio_s)


def project_voice(
    voice: Any,
    target: Target,
    weight_bits: WeightBits | None = None,
    act_precision: ActPrecision = None,
    profile: VoiceProfile | None = None,
) -> list[Metric]:
    """Latency, FLOPs and memory of ``voice`` projected for ``target``.

    Args:
        voice: a ``Voice`` (``.gpt``, ``.sovits``); only its structure matters.
        target: a target with figures (not the measured ``cpu`` unless probed).
        weight_bits: group/fqn prefix -> bits (``{"gpt": 8, "dec": 16}``); see
            :func:`precisions_from_plan` for a compression plan.
        act_precision: one float precision or group/fqn prefix -> precision.
        profile: a :class:`VoiceProfile` already computed for this voice's structure.

    Returns:
        Projected ``gpt_prefill_ms``, ``gpt_ms_per_token``, ``sovits_ms_per_audio_s``, ``rtf``,
        ``gpt_gflops_per_token``, ``sovits_gflops_per_audio_s``, and the ``memory_*`` set
        (total ``memory_bytes``; context, weights, KV cache at ``target.max_seq_len``, activations).
    """
    require_figures(target)
    prof = profile if profile is not None else profile_voice(voice)
    shape = prof.shape
    pre = project_latency(prof.gpt_prefill, target, weight_bits, act_precision)
    tok = project_latency(prof.gpt_decode, target, weight_bits, act_precision)
    sov = project_latency(prof.sovits_decode, target, weight_bits, act_precision)
    total_s = pre.seconds + shape.n_tokens * tok.seconds + sov.seconds
    name = target.name
    notes = "; ".join(dict.fromkeys(pre.notes + tok.notes + sov.notes))
    metrics = [
        pre.metric("gpt_prefill_ms"),
        tok.metric("gpt_ms_per_token"),
        sov.metric("sovits_ms_per_audio_s", scale=1.0 / prof.audio_s),
        projected("rtf", total_s / prof.audio_s, "x", name, notes),
        projected("gpt_gflops_per_token", tok.flops / 1e9, "GFLOP", name),
        projected("sovits_gflops_per_audio_s", sov.flops / 1e9 / prof.audio_s, "GFLOP", name),
    ]
    return metrics + project_voice_memory(voice, target, weight_bits, act_precision, prof).metrics()


NOT_SHIPPED = ("enc_q", "ssl_proj")  # SoVITS modules no bundle graph runs
# What a measured target's timing is of: the student's own shapes, run by torch in fp32.
TORCH_FP32_NOTE = (
    "torch fp32 run of the student (its pruning and widths count, its quantization does not; "
    "a bundle's ONNX Runtime timing is its manifest's sample_*)"
)


def project_voice_memory(
    voice: Any,
    target: Target,
    weight_bits: WeightBits | None = None,
    act_precision: ActPrecision = None,
    profile: VoiceProfile | None = None,
) -> MemoryProjection:
    """The :class:`~autocompress.score.memory.MemoryProjection` of a voice on ``target``.

    Weights: the GPT and the SoVITS modules its bundle ships: not ``enc_q`` (training only)
    nor ``ssl_proj`` (it codes audio into tokens, for training and for prompts; the bundle
    takes codes), and of the quantizer only its codebooks, at the text encoder's precision.
    KV cache: every GPT layer's keys and values for ``target.max_seq_len`` positions at the
    GPT's activation precision. Activations: the largest live-tensor peak of the three profiled
    calls, each at its own graphs' activation precision (the GPT's; the widest of the SoVITS
    modules it ships).
    """
    prof = profile if profile is not None else profile_voice(voice)
    gpt_w, gpt_notes = deployed_weight_bytes(voice.gpt, target, weight_bits, act_precision, prefix=GPT_GROUP)
    sov_w, sov_notes = 0.0, ()
    for name, child in voice.sovits.named_children():
        if name in NOT_SHIPPED:
            continue
        if name == "quantizer":  # inference reads only its codebooks, buffers, in the text encoder's graph
            act, _ = activation_precision("enc_p", act_precision, target)
            codebooks = [b for n, b in child.named_buffers() if n.endswith("_codebook.embed")]
            sov_w += sum(b.numel() for b in codebooks) * PRECISION_BITS[act] / 8
            continue
        w, n = deployed_weight_bytes(child, target, weight_bits, act_precision, prefix=name)
        sov_w += w
        sov_notes += n
    for pname, p in voice.sovits.named_parameters(recurse=False):
        sov_w += p.numel() * PRECISION_BITS[activation_precision(pname, act_precision, target)[0]] / 8
    gpt_act, _ = activation_precision(GPT_GROUP, act_precision, target)
    widths = [layer.self_attn.inner for layer in voice.gpt.h.layers]
    kv = kv_cache_bytes(widths, target.max_seq_len, PRECISION_BITS[gpt_act] / 8)
    sovits_groups = [name for name, _ in voice.sovits.named_children() if name not in NOT_SHIPPED]
    sovits_width = max(PRECISION_BITS[activation_precision(g, act_precision, target)[0]] for g in sovits_groups) // 8
    gpt_width = PRECISION_BITS[gpt_act] // 8
    peak = max(prof.gpt_prefill.peak_activation_bytes(gpt_width), prof.gpt_decode.peak_activation_bytes(gpt_width),
               prof.sovits_decode.peak_activation_bytes(sovits_width))
    notes = tuple(dict.fromkeys(gpt_notes + sov_notes))
    return project_memory(target, gpt_w + sov_w, kv, float(peak), notes)


def precisions_from_plan(plan: Any) -> tuple[dict[str, int], dict[str, str]]:
    """Weight bits and activation precisions of a ``CompressionPlan`` (duck-typed), per group.

    Weight precisions ``intN`` become N bits; float weights (``fp32``, ``fp16``, ``bf16``) are
    left to the activation precision. Per-op-kind overrides (``linear``, ``conv``,
    ``conv_transpose``) become ``"<group>@matmul"`` / ``"<group>@conv"`` /
    ``"<group>@conv_transpose"`` keys, at the rung the export stores them at (as scoring rounds
    them: :func:`~autocompress.compress.fake_quant.scored_weight_precision`): an override below
    its group's rung goes with the group (no key of its own in a float group), one above it is
    kept at fp32 (32 bits). Every group's activation precision is the float its exported graph
    runs (:func:`~autocompress.compress.plan.graph_float`): fp16 for a group stored as fp16
    (bf16 included) and for an integer group (int8 QDQ, int4 / int2 MatMulNBits) with fp16
    activations, as a GPU target ships them; fp32 for every other (int8 math comes from int8
    weights). A v2Pro SoVITS's top-level layers get their group's keys
    (:data:`SOVITS_GROUP_MEMBERS`).
    """
    from autocompress.compress.fake_quant import scored_weight_precision
    from autocompress.compress.plan import graph_float, shipped_rung

    bits: dict[str, int] = {}
    acts: dict[str, str] = {}
    kind_of = {"linear": "matmul", "conv": "conv", "conv_transpose": "conv_transpose"}
    for group in MODULE_GROUPS:
        q = plan.group(group).quant
        acts[group] = graph_float(q.weights, q.activations)  # the float the group's exported graph runs
        if q.weights.startswith("int"):
            bits[group] = int(q.weights[3:])
        for op_kind, prec in q.op_weights.items():
            key = f"{group}@{kind_of[op_kind]}"
            stored = scored_weight_precision(prec, q.weights)  # as scored: the stored rung where not its own
            if stored.startswith("int"):
                bits[key] = int(stored[3:])
            elif stored == "fp32" and shipped_rung(q.weights) != "fp32":  # kept at fp32, above its group
                bits[key] = PRECISION_BITS["fp32"]
            elif stored == prec:  # a float at its own rung
                bits[key] = PRECISION_BITS[stored]
            # else stored with its float group: no entry, the group's float
    for group, members in SOVITS_GROUP_MEMBERS.items():  # a Pro voice's top-level layers follow their group
        for member in members[1:]:
            bits.update({member + k[len(group):]: v for k, v in list(bits.items()) if k.split("@")[0] == group})
            if group in acts:
                acts[member] = acts[group]
    return bits, acts


# --------------------------------------------------------------------------- one call per trial


@dataclass
class _Item:
    phones: torch.Tensor
    bert: torch.Tensor
    codes: torch.Tensor
    refer: torch.Tensor


def dummy_utterances(voice: Any, shape: UtteranceShape = UtteranceShape()) -> tuple[Any, Any]:
    """A (prompt, sentence) pair of the sizes in ``shape``, for timing (values do not matter)."""
    g = torch.Generator().manual_seed(0)
    bert_dim = voice.gpt.config.bert_dim
    bins = voice.sovits.config.spec_channels
    n_prompt_phones = max(1, shape.n_phones - shape.n_text)

    def make(n_phones: int, n_codes: int) -> _Item:
        return _Item(
            phones=torch.randint(1, 300, (n_phones,), generator=g),
            bert=torch.zeros(bert_dim, n_phones),
            codes=torch.randint(0, 1024, (n_codes,), generator=g),
            refer=torch.rand(1, bins, shape.ref_frames, generator=g),
        )

    return make(n_prompt_phones, shape.n_prompt), make(shape.n_text, shape.n_tokens)


def voice_cost_metrics(
    voice: Any,
    target: Target,
    weight_bits: WeightBits | None = None,
    act_precision: ActPrecision = None,
    profile: VoiceProfile | None = None,
    utterances: tuple[Any, Any] | None = None,
    warmup: int = 1,
    repeats: int = 3,
) -> list[Metric]:
    """Latency and memory of ``voice`` for ``target``, the way the issue asks for each trial.

    A datasheet target gets the projected set of :func:`project_voice`. A measured target
    (``cpu``: this machine) gets measured latency (:func:`measure_gpt`, :func:`measure_sovits`,
    and ``rtf`` = prefill + per-token x tokens + SoVITS over the audio seconds), measured
    memory (:func:`measure_voice_memory`) and, as always, the projected memory set.

    Args:
        voice: the (student) voice.
        target: from :func:`autocompress.targets.load_target`.
        weight_bits, act_precision: the plan's precisions (see :func:`precisions_from_plan`);
            used by projections only: measured figures are what the voice does here.
        profile: a cached :class:`VoiceProfile` of this structure.
        utterances: (prompt, sentence) to time with; dummy ones of the profile's shape if None.
        warmup, repeats: of each measured timing.
    """
    prof = profile if profile is not None else profile_voice(voice)
    if not target.measured:
        return project_voice(voice, target, weight_bits, act_precision, prof)
    prompt, sentence = utterances if utterances is not None else dummy_utterances(voice, prof.shape)
    n_tokens = sentence.codes.numel()  # decode as many steps as the audio SoVITS renders has codes
    gpt = {m.name: m for m in measure_gpt(voice.gpt, prompt, sentence, n_tokens, warmup, repeats)}
    (sov,) = measure_sovits(voice.sovits, sentence, prompt.refer, warmup, repeats,
                            sv=speaker_vector(voice.sovits.config, prompt))
    audio_s = sentence.codes.numel() / CODE_RATE_HZ
    total_ms = gpt["gpt_prefill_ms"].value + n_tokens * gpt["gpt_ms_per_token"].value + sov.value * audio_s
    busy = next((contention_in(m.note) for m in (*gpt.values(), sov) if contention_in(m.note)), "")
    rtf = measured("rtf", total_ms / 1e3 / audio_s, "x", sov.device,
                   f"prefill + decode loop + SoVITS decode; {TORCH_FP32_NOTE}" + (f"; {busy}" if busy else ""))
    memory = measure_voice_memory(voice, prof.shape, target)
    projected_memory = project_voice_memory(voice, target, weight_bits, act_precision, prof).metrics()
    return [*gpt.values(), sov, rtf, *memory, *projected_memory]


def latency_metric(rtf: Metric, shape: UtteranceShape) -> Metric:
    """``latency_ms``: one utterance of ``shape`` end to end, from its real-time factor (same kind
    and device, and the factor's note: what it was timed or projected on holds for the latency too)."""
    note = (f"{shape.audio_s:g} s utterance end to end ({shape.n_phones} phones, {shape.n_prompt} prompt codes, "
            f"{shape.n_tokens} generated codes)")  # fmt: skip
    return Metric("latency_ms", rtf.value * shape.audio_s * 1e3, "ms", rtf.kind, rtf.device,
                  f"{note}; {rtf.note}" if rtf.note else note)


def projected_plan_metrics(voice: Any, plan: Any, target: Target, shape: UtteranceShape = UtteranceShape()) -> list[Metric]:
    """The projected figures a trial records for ``voice`` compressed by ``plan`` on ``target``.

    A datasheet target: :func:`project_voice` and its ``latency_ms``; a measured target (whose
    latency is measured, not projected): the projected memory set only.
    """
    bits, acts = precisions_from_plan(plan)
    prof = profile_voice(voice, shape)
    if target.measured:
        return project_voice_memory(voice, target, bits, acts, prof).metrics()
    costs = project_voice(voice, target, bits, acts, prof)
    rtf = next(m for m in costs if m.name == "rtf")
    return [latency_metric(rtf, shape), *costs]
