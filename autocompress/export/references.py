"""The torch side of an export: plain models, graph specs, and reference runs on eval inputs.

:func:`plain_copy` rebuilds a trial's GPT and SoVITS from their configs with every
parametrization (weight norm, fake quantization) folded into plain weights, leaving the trial
untouched. :func:`reference_runs` drives the export views of those models over the evaluation
inputs and records, per graph, the input feeds (for calibration and parity) and the outputs
they must reproduce, plus the end-to-end references (greedy codes, waveform).
:func:`scored_copy` rebuilds the student as the search scored it where it carried static int8
input ranges; :func:`graph_outputs` and :func:`chain_wavs` run such models on the same feeds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from autocompress.compress.fake_quant import add_fake_quant_, add_input_rounding_, load_static_ranges_
from autocompress.compress.plan import QuantConfig
from autocompress.exceptions import CompressionError, ExportError
from autocompress.export.gpt_graphs import GPTDecodeGraph, GPTPrefillGraph, graph_io_names
from autocompress.export.onnx_export import GraphSpec
from autocompress.export.sovits_graphs import DecoderGraph, FlowGraph, PriorGraph, StyleGraph
from autocompress.models.gpt_sovits.gpt import EOS_BAN_STEPS, Text2SemanticGPT
from autocompress.models.gpt_sovits.sovits import SynthesizerTrn, remove_weight_norm_
from autocompress.models.gpt_sovits.voice import SOVITS_GROUP_MEMBERS
from autocompress.runtime.inputs import SynthInput

# Module group -> its graphs, in the order the runner uses them.
GROUP_GRAPHS: dict[str, tuple[str, ...]] = {
    "gpt": ("gpt_prefill", "gpt_decode"),
    "ref_enc": ("ref_enc",),
    "enc_p": ("enc_p",),
    "flow": ("flow",),
    "dec": ("dec",),
}
DECODE_FEEDS_PER_INPUT = 4  # decode-step feeds recorded per eval input (calibration + parity)


# --------------------------------------------------------------------------- plain models


def plain_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Persistent state with every parametrized tensor replaced by its computed value."""
    state: dict[str, Tensor] = {}
    for name, module in model.named_modules():
        if ".parametrizations" in f".{name}":
            continue  # the originals behind a parametrization
        prefix = f"{name}." if name else ""
        for pname, p in module.named_parameters(recurse=False):
            state[prefix + pname] = p.detach()
        if parametrize.is_parametrized(module):
            for pname in module.parametrizations:
                state[prefix + pname] = getattr(module, pname).detach()
        for bname, b in module.named_buffers(recurse=False):
            if bname not in module._non_persistent_buffers_set:
                state[prefix + bname] = b.detach()
    return state


def plain_copy(gpt: Text2SemanticGPT, sovits: SynthesizerTrn) -> tuple[Text2SemanticGPT, SynthesizerTrn]:
    """Fresh fp32 eval-mode models with the trial's effective weights and no parametrizations."""
    with torch.no_grad():
        new_gpt = Text2SemanticGPT(gpt.config)
        _load(new_gpt, plain_state_dict(gpt), "GPT")
        new_sovits = SynthesizerTrn(sovits.config, include_enc_q=False)
        remove_weight_norm_(new_sovits)
        _load(new_sovits, plain_state_dict(sovits), "SoVITS")
    return new_gpt.float().eval(), new_sovits.float().eval()


def _load(model: nn.Module, state: dict[str, Tensor], what: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    wrong = sorted(k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape))
    if missing or wrong:
        raise ExportError(
            f"cannot rebuild the {what} from its config: missing {missing[:5]}, shape mismatch {wrong[:5]}; "
            "does the model's config describe its weights?"
        )
    model.load_state_dict({k: state[k].float() for k in own}, strict=True)


# --------------------------------------------------------------------------- specs


def graph_specs(gpt: Text2SemanticGPT, sovits: SynthesizerTrn, example: SynthInput) -> dict[str, GraphSpec]:
    """Export specs of all six graphs, with example inputs built from ``example``."""
    n_layer = len(gpt.h.layers)
    names = graph_io_names(n_layer)
    phones, bert, prompt = _gpt_inputs(example)
    with torch.no_grad():
        pre = GPTPrefillGraph(gpt).eval()
        out = pre(phones, bert, prompt)
        past = tuple(out[1:])
        style_feeds = _style_feeds(example, sovits)
        ge = sovits.style(*style_feeds.values())
        codes = torch.from_numpy(example.prompt_codes).long().view(1, 1, -1)
        text = torch.from_numpy(example.text).long().view(1, -1)
        m_p, _ = PriorGraph(sovits)(codes, text, ge)
        z = FlowGraph(sovits)(m_p, ge)
    kv_axes = {n: {1: "S"} for n in names["gpt_prefill"][1][1:]}
    past_axes = {n: {1: "pos"} for n in names["gpt_decode"][0][2:]}
    token = torch.tensor([[int(example.prompt_codes[-1])]])
    audio_pos = torch.tensor([prompt.shape[1]])
    return {
        "gpt_prefill": GraphSpec(
            "gpt_prefill", "gpt", pre, (phones, bert, prompt), *names["gpt_prefill"],
            {"phones": {1: "N"}, "bert": {2: "N"}, "prompt": {1: "P"}, **kv_axes},
        ),
        "gpt_decode": GraphSpec(
            "gpt_decode", "gpt", GPTDecodeGraph(gpt).eval(), (token, audio_pos, *past), *names["gpt_decode"], past_axes
        ),
        "ref_enc": GraphSpec(
            "ref_enc", "ref_enc", StyleGraph(sovits), tuple(style_feeds.values()),
            list(style_feeds), ["ge"], {"ref_spec": {2: "Tr"}},
        ),
        "enc_p": GraphSpec(
            "enc_p", "enc_p", PriorGraph(sovits), (codes, text, ge), ["codes", "text", "ge"], ["m_p", "logs_p"],
            {"codes": {2: "Tc"}, "text": {1: "Tt"}, "m_p": {2: "T"}, "logs_p": {2: "T"}},
        ),
        "flow": GraphSpec("flow", "flow", FlowGraph(sovits), (m_p, ge), ["z_p", "ge"], ["z"], {"z_p": {2: "T"}, "z": {2: "T"}}),
        "dec": GraphSpec(
            "dec", "dec", DecoderGraph(sovits), (z, ge), ["z", "ge"], ["wav"], {"z": {2: "T"}, "wav": {2: "N"}}
        ),
    }  # fmt: skip


# --------------------------------------------------------------------------- reference runs


@dataclass
class GraphCase:
    """Feeds of one graph over the eval inputs and the outputs the torch model gives."""

    feeds: list[dict[str, np.ndarray]] = field(default_factory=list)
    outputs: list[list[np.ndarray]] = field(default_factory=list)


@dataclass
class References:
    """Everything the parity checks compare against.

    Attributes:
        cases: graph name -> feeds and torch outputs.
        gpt_codes: per eval input, torch's greedy codes (``Text2SemanticGPT.generate``, top_k=1).
        gpt_gaps: per eval input and step, the margin of the greedy choice (top-1 minus top-2
            of the penalised logits): where it is tiny, float rounding may pick the other code.
        codes: the codes the SoVITS references use: ``gpt_codes``, or the prompt codes
            where the GPT stopped at once.
        noise: per eval input, the prior noise used for the SoVITS references.
        wavs: per eval input, torch's waveform for ``codes`` with that noise.
        noise_scale: the prior scale used.
    """

    cases: dict[str, GraphCase]
    gpt_codes: list[np.ndarray]
    gpt_gaps: list[np.ndarray]
    codes: list[np.ndarray]
    noise: list[np.ndarray]
    wavs: list[np.ndarray]
    noise_scale: float


@torch.no_grad()
def reference_runs(
    gpt: Text2SemanticGPT,
    sovits: SynthesizerTrn,
    inputs: list[SynthInput],
    max_new_tokens: int,
    repetition_penalty: float,
    noise_scale: float,
    seed: int = 0,
) -> References:
    """Run the torch models through every graph view on every eval input."""
    cases = {name: GraphCase() for names in GROUP_GRAPHS.values() for name in names}
    views = graph_views(gpt, sovits)
    prefill, decode = views["gpt_prefill"], views["gpt_decode"]
    style, prior, flow, dec = views["ref_enc"], views["enc_p"], views["flow"], views["dec"]
    rng = np.random.default_rng(seed)
    gpt_codes, gaps, all_codes, all_noise, wavs = [], [], [], [], []
    for item in inputs:
        phones, bert, prompt = _gpt_inputs(item)
        _record(cases["gpt_prefill"], {"phones": phones, "bert": bert, "prompt": prompt}, prefill)
        _record_decode_steps(cases["gpt_decode"], decode, prefill(phones, bert, prompt), prompt, gpt.config.eos)
        run = _greedy(gpt, phones, bert, prompt, max_new_tokens, repetition_penalty)
        gpt_codes.append(run.codes)
        gaps.append(run.gaps)
        codes = torch.from_numpy(run.codes) if run.codes.size else prompt[0]  # SoVITS needs some codes to check
        all_codes.append(codes.numpy().astype(np.int64))

        (ge,) = _record(cases["ref_enc"], _style_feeds(item, sovits), style)
        text = torch.from_numpy(item.text.astype(np.int64))[None]
        m_p, logs_p = _record(cases["enc_p"], {"codes": codes.view(1, 1, -1), "text": text, "ge": ge}, prior)
        noise = torch.from_numpy(rng.standard_normal(tuple(m_p.shape)).astype(np.float32))
        z_p = m_p + noise * torch.exp(logs_p) * noise_scale
        (z,) = _record(cases["flow"], {"z_p": z_p, "ge": ge}, flow)
        (wav,) = _record(cases["dec"], {"z": z, "ge": ge}, dec)
        all_noise.append(noise.numpy())
        wavs.append(wav.reshape(-1).numpy())
    return References(cases, gpt_codes, gaps, all_codes, all_noise, wavs, noise_scale)


@dataclass(frozen=True)
class GreedyRun:
    """One greedy generation of a torch GPT.

    Attributes:
        codes: the generated codes ``[n]``.
        gaps: per step, the top-1 minus top-2 margin of the logits the choice saw.
        logits: per step, the output layer's raw logits ``[steps, V]``.
    """

    codes: np.ndarray
    gaps: np.ndarray
    logits: np.ndarray


@torch.no_grad()
def greedy_runs(
    gpt: Text2SemanticGPT, inputs: list[SynthInput], max_new_tokens: int, repetition_penalty: float
) -> list[GreedyRun]:
    """Per eval input, ``gpt``'s greedy generation (as :func:`reference_runs` makes it)."""
    with parametrize.cached():
        return [_greedy(gpt, *_gpt_inputs(item), max_new_tokens, repetition_penalty) for item in inputs]


def _greedy(
    gpt: Text2SemanticGPT, phones: Tensor, bert: Tensor, prompt: Tensor, max_new_tokens: int, repetition_penalty: float
) -> GreedyRun:
    run = gpt.generate_detailed(
        phones, bert, prompt, top_k=1, repetition_penalty=repetition_penalty, max_new_tokens=max_new_tokens
    )
    return GreedyRun(run.tokens[0].numpy().astype(np.int64), _top2_gaps(run.logits_decision), run.logits_raw.numpy())


# --------------------------------------------------------------------------- the scored student


def range_group(key: str) -> str | None:
    """The module group of a weight named as activation ranges name it (``gpt.<path>``,
    ``sovits.<path>``); None for a SoVITS layer of no group."""
    if key.startswith("gpt."):
        return "gpt"
    top = key.removeprefix("sovits.").split(".", 1)[0]
    return next((g for g, members in SOVITS_GROUP_MEMBERS.items() if top in members), None)


def scored_copy(
    gpt: Text2SemanticGPT,
    sovits: SynthesizerTrn,
    ranges: Mapping[str, tuple[float, float]],
    symmetric: bool,
    inputs_only: Collection[str] = (),
) -> tuple[Text2SemanticGPT, SynthesizerTrn]:
    """Copies of the plain models computing what the scored student computed at its static int8
    inputs: every layer named in ``ranges`` (``gpt.<path>`` / ``sovits.<path>``) gets per-channel
    symmetric int8 weights, as the int8 graphs store them (a saved student's weights already lie
    on that grid), and its input rounded to its range (symmetric s8 or asymmetric u8, as the
    target's int8 graphs). Layers named in ``inputs_only`` (keys of ``ranges``: low-bit layers,
    whose weights already lie on their own grid) get only the input rounding. Other layers stay
    as they are."""
    out = []
    for prefix, scored in zip(("gpt", "sovits"), plain_copy(gpt, sovits)):  # fresh models: none shares a class
        mine = {k[len(prefix) + 1 :]: v for k, v in ranges.items() if k.startswith(prefix + ".")}
        only = {k[len(prefix) + 1 :] for k in inputs_only if k.startswith(prefix + ".")}
        full = {_layer_path(k) for k in mine if k not in only}
        inputs = {_layer_path(k) for k in mine if k in only}
        add_fake_quant_(scored, QuantConfig("int8", "int8"), filter_fn=lambda _m, fqn, layers=full: fqn in layers)
        add_input_rounding_(scored, "int8", filter_fn=lambda _m, fqn, layers=inputs: fqn in layers)
        try:
            load_static_ranges_(scored, mine, symmetric)
        except CompressionError as e:
            raise ExportError(f"cannot rebuild the scored {prefix.upper()}: {e}; pass ranges of this voice's own student") from e
        out.append(scored)
    return out[0], out[1]


def _layer_path(key: str) -> str:
    """The module path of the layer a weight key (``h.layers.0.linear1.weight``) names."""
    return key.rsplit(".", 1)[0] if "." in key else ""


def graph_views(gpt: Text2SemanticGPT, sovits: SynthesizerTrn) -> dict[str, nn.Module]:
    """The torch module behind each graph, over ``gpt`` and ``sovits``."""
    return {
        "gpt_prefill": GPTPrefillGraph(gpt).eval(),
        "gpt_decode": GPTDecodeGraph(gpt).eval(),
        "ref_enc": StyleGraph(sovits),
        "enc_p": PriorGraph(sovits),
        "flow": FlowGraph(sovits),
        "dec": DecoderGraph(sovits),
    }


@torch.no_grad()
def graph_outputs(module: nn.Module, feeds: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    """``module``'s outputs on each of ``feeds`` (a graph's recorded feeds, in its input order)."""
    result = []
    with parametrize.cached():
        for feed in feeds:
            out = module(*(torch.from_numpy(np.asarray(v)) for v in feed.values()))
            result.append([o.numpy() for o in (out if isinstance(out, tuple) else (out,))])
    return result


@torch.no_grad()
def chain_wavs(models: Mapping[str, SynthesizerTrn], inputs: list[SynthInput], refs: References) -> list[np.ndarray]:
    """Per eval input, the SoVITS chain's waveform for the reference codes and noise, each group
    (``ref_enc``, ``enc_p``, ``flow``, ``dec``) run by its model in ``models``."""
    wavs = []
    with parametrize.cached():
        for i, item in enumerate(inputs):
            (ge,) = _as_tuple(StyleGraph(models["ref_enc"])(*_style_feeds(item, models["ref_enc"]).values()))
            codes = torch.from_numpy(refs.codes[i]).long().view(1, 1, -1)
            text = torch.from_numpy(item.text.astype(np.int64))[None]
            m_p, logs_p = PriorGraph(models["enc_p"])(codes, text, ge)
            z_p = m_p + torch.from_numpy(refs.noise[i]) * torch.exp(logs_p) * refs.noise_scale
            (z,) = _as_tuple(FlowGraph(models["flow"])(z_p, ge))
            (wav,) = _as_tuple(DecoderGraph(models["dec"])(z, ge))
            wavs.append(wav.reshape(-1).numpy())
    return wavs


def _as_tuple(out: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


def _top2_gaps(decision_logits: Tensor) -> np.ndarray:
    """Per step, top-1 minus top-2 of the logits the greedy choice saw (NaN columns = banned)."""
    logits = torch.nan_to_num(decision_logits.float(), nan=-torch.inf)  # [steps, V]
    top2 = logits.topk(2, dim=-1).values
    return (top2[:, 0] - top2[:, 1]).numpy()


def _style_feeds(item: SynthInput, sovits: SynthesizerTrn) -> dict[str, Tensor]:
    """The ``ref_enc`` graph's inputs: the reference spectrogram, and its speaker vector for Pro."""
    feeds = {"ref_spec": torch.from_numpy(item.ref_spec.astype(np.float32))[None]}
    if sovits.config.is_pro and item.ref_sv is not None:  # VoiceExport refuses Pro inputs without one
        feeds["ref_sv"] = torch.from_numpy(item.ref_sv.astype(np.float32)).reshape(1, -1)
    return feeds


def _record(case: GraphCase, feeds: dict[str, Tensor], module: nn.Module) -> tuple[Tensor, ...]:
    out = module(*feeds.values())
    out = out if isinstance(out, tuple) else (out,)
    case.feeds.append({k: v.numpy() for k, v in feeds.items()})
    case.outputs.append([o.numpy() for o in out])
    return out


def _record_decode_steps(
    case: GraphCase, decode: GPTDecodeGraph, prefill_out: tuple[Tensor, ...], prompt: Tensor, eos: int
) -> None:
    """Greedy decode steps from a prefill, feeding the growing cache (torch side only)."""
    n = decode.n_layer
    logits, ks, vs = prefill_out[0], list(prefill_out[1 : 1 + n]), list(prefill_out[1 + n :])
    for step in range(DECODE_FEEDS_PER_INPUT):
        allowed = logits[:, :eos] if step < EOS_BAN_STEPS else logits
        token = allowed.argmax(-1).view(1, 1)
        feeds = {"token": token, "audio_pos": torch.tensor([prompt.shape[1] + step])}
        feeds.update({f"past_k_{i}": ks[i] for i in range(n)})
        feeds.update({f"past_v_{i}": vs[i] for i in range(n)})
        out = _record(case, feeds, decode)
        logits = out[0]
        ks = [torch.cat([k, nk], 1) for k, nk in zip(ks, out[1 : 1 + n])]
        vs = [torch.cat([v, nv], 1) for v, nv in zip(vs, out[1 + n :])]


def _gpt_inputs(item: SynthInput) -> tuple[Tensor, Tensor, Tensor]:
    phones = torch.from_numpy(item.phones).long()[None]  # [1, N]
    bert = torch.from_numpy(item.bert_features())[None]  # [1, 1024, N]
    prompt = torch.from_numpy(item.prompt_codes.astype(np.int64))[None]  # [1, P]
    return phones, bert, prompt


__all__ = [
    "GROUP_GRAPHS",
    "GraphCase",
    "References",
    "chain_wavs",
    "graph_outputs",
    "graph_specs",
    "graph_views",
    "GreedyRun",
    "greedy_runs",
    "plain_copy",
    "plain_state_dict",
    "range_group",
    "reference_runs",
    "scored_copy",
]
