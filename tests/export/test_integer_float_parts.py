"""An integer group's graph runs its float parts (KV cache, norms, attention, activations
between layers, dequantized math) in the float its plan says (``compress.plan.graph_float``):
fp16 for a target that runs fp16 (rtx3060), fp32 for the ``cpu`` target; the exported graph
ships exactly that and computes what the student was scored as."""

from __future__ import annotations

import functools
import math

import numpy as np
import onnx
import torch
from export_helpers import _root, make_inputs, make_voice, stripped_export
from onnx import TensorProto

from autocompress.compress import compress
from autocompress.compress.fake_quant import calibrate_activations_, voice_activation_ranges
from autocompress.compress.plan import CompressionPlan, GroupPlan, QuantConfig
from autocompress.export.parity import SCORED_FLOOR_DB
from autocompress.export.precision import request_from_plan
from autocompress.export.references import graph_outputs, graph_views, reference_runs
from autocompress.runtime.session import graph_kind, open_session

GROUPS = {"gpt": "int8", "dec": "int8", "ref_enc": "int4"}  # ref_enc: int4, its convolutions int8 (the targets)


def _plan(target: str) -> CompressionPlan:
    return CompressionPlan(
        {g: GroupPlan(quant=QuantConfig(w, "int8" if w == "int8" else "fp32")) for g, w in GROUPS.items()},
        name=f"integer_{target}",
    ).with_fallback(target)


def _student(plan: CompressionPlan, target: str):  # noqa: ANN202
    student = compress(make_voice(), plan)
    with torch.no_grad():
        calibrate_activations_(
            (student.gpt, student.sovits),
            lambda: reference_runs(student.gpt, student.sovits, make_inputs(3, seed=7), 8, 1.35, 0.5),
            symmetric=target != "cpu",
        )
    return student


@functools.lru_cache(maxsize=None)
def _exported(target: str):  # noqa: ANN202
    """The tiny voice compressed by the integer plan made for ``target``, its int8 inputs
    calibrated (s8 for rtx3060, u8 for cpu); its bundle for ``target``, and the scored
    student's outputs of each graph on the bundle's reference feeds."""
    plan = _plan(target)
    student, as_scored = _student(plan, target), _student(plan, target)  # one is stripped for export
    export = stripped_export(student, voice_activation_ranges(student))
    try:
        views = graph_views(as_scored.gpt, as_scored.sovits)
        scored = {g: graph_outputs(views[g], case.feeds) for g, case in export.refs.cases.items()}
        bundle = export.bundle(plan, _root() / f"bundle_floats_{target}", target, n_samples=1, upstream=False, threads=1)
        feeds = {g: case.feeds for g, case in export.refs.cases.items()}
    finally:
        export.close()
    return plan, bundle, scored, feeds


def _model(bundle, graph: str) -> onnx.ModelProto:  # noqa: ANN001
    return onnx.load(str(bundle.path / bundle.manifest.graphs[graph].file), load_external_data=False)


def _snr(want: np.ndarray, got: np.ndarray) -> float:
    want, got = want.astype(np.float64), got.astype(np.float64)
    err = float(np.sum((want - got) ** 2))
    return math.inf if err == 0 else 10 * math.log10(float(np.sum(want * want)) / err)


def _run(path, feeds: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:  # noqa: ANN001
    session = open_session(path, ["CPUExecutionProvider"], 1)
    types = {"tensor(float16)": np.float16, "tensor(float)": np.float32, "tensor(int64)": np.int64}
    out = []
    for feed in feeds:
        typed = {i.name: feed[i.name].astype(types[i.type]) for i in session.get_inputs()}
        out.append([np.asarray(o, dtype=np.float32) for o in session.run(None, typed)])
    return out


def test_a_gpu_targets_integer_plan_asks_for_fp16_float_parts() -> None:
    gpu, cpu = _plan("rtx3060"), _plan("cpu")
    for group in GROUPS:
        assert request_from_plan(gpu, group).floats == "fp16", group
        assert request_from_plan(cpu, group).floats == "fp32", group
    assert request_from_plan(gpu, "gpt").floats_at("fp32") == "fp32"  # a fallback rung runs its own float


def test_int8_and_int4_graphs_for_a_gpu_target_ship_fp16_float_parts() -> None:
    _, bundle, scored, feeds = _exported("rtx3060")
    manifest = bundle.manifest
    assert {g: manifest.modules[g].used for g in GROUPS} == GROUPS
    for graph in ("gpt_prefill", "gpt_decode", "dec"):
        model = _model(bundle, graph)
        types = {i.data_type for i in model.graph.initializer}
        assert TensorProto.FLOAT16 in types and TensorProto.FLOAT not in types, graph
        qs = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
        inits = {i.name: i for i in model.graph.initializer}
        assert qs and all(inits[n.input[1]].data_type == TensorProto.FLOAT16 for n in qs), graph  # fp16 scales
        assert all(inits[n.input[2]].data_type == TensorProto.INT8 for n in qs), graph  # s8: TensorRT's form
        assert graph_kind(bundle.path / manifest.graphs[graph].file) == "int8-fp16"
    decode = _model(bundle, "gpt_decode")
    caches = [v for v in list(decode.graph.input) + list(decode.graph.output) if "_k_" in v.name or "_v_" in v.name]
    assert caches and all(v.type.tensor_type.elem_type == TensorProto.FLOAT16 for v in caches)
    low_bit = _model(bundle, "ref_enc")  # MatMulNBits and the int8 part's QDQ convolutions, all fp16 around
    assert {"MatMulNBits", "QuantizeLinear"} <= {n.op_type for n in low_bit.graph.node}
    assert TensorProto.FLOAT not in {i.data_type for i in low_bit.graph.initializer}
    assert graph_kind(bundle.path / manifest.graphs["ref_enc"].file) == "int8-fp16"
    for group in GROUPS:
        assert any(n.startswith("float parts in fp16") for n in manifest.modules[group].notes), group
    assert "| int8 (fp16 float parts) |" in (bundle.path / "README.md").read_text()
    # each loads on onnxruntime's CPU provider and computes the scored student (the student
    # rounds no norm or attention product to fp16: its faithfulness floor bounds the difference)
    group_of = {"gpt_prefill": "gpt", "gpt_decode": "gpt", "dec": "dec", "ref_enc": "ref_enc"}
    for graph, group in group_of.items():
        got = _run(bundle.path / manifest.graphs[graph].file, feeds[graph])
        worst = min(_snr(w, g) for want, have in zip(scored[graph], got) for w, g in zip(want, have))
        assert SCORED_FLOOR_DB[group] <= worst < 100, (graph, worst)  # fp16 float parts: not exact
        (check,) = [c for c in manifest.checks if c["graph"] == graph]
        assert check["passed"] and check["reference"] == "scored" and check["floats"] == "fp16", graph


def test_the_same_plan_for_the_cpu_target_keeps_fp32_float_parts() -> None:
    _, bundle, _, _ = _exported("cpu")
    for graph in ("gpt_prefill", "gpt_decode", "dec", "ref_enc"):
        model = _model(bundle, graph)
        assert TensorProto.FLOAT16 not in {i.data_type for i in model.graph.initializer}, graph
    dec = _model(bundle, "dec")
    inits = {i.name: i for i in dec.graph.initializer}
    qs = [n for n in dec.graph.node if n.op_type == "QuantizeLinear"]
    assert qs and all(inits[n.input[2]].data_type == TensorProto.UINT8 for n in qs)
    assert graph_kind(bundle.path / bundle.manifest.graphs["dec"].file) == "int8-u8"
    assert any(n.startswith("float parts in fp32") for n in bundle.manifest.modules["dec"].notes)
    decode = _model(bundle, "gpt_decode")
    caches = [v for v in decode.graph.input if v.name.startswith("past_")]
    assert caches and all(v.type.tensor_type.elem_type == TensorProto.FLOAT for v in caches)
    for graph in ("gpt_decode", "dec"):  # fp32 float parts: the scored student, float rounding aside
        (check,) = [c for c in bundle.manifest.checks if c["graph"] == graph]
        assert check["floats"] == "fp32" and check["reference"] == "scored"
        assert min(o["snr_db"] or math.inf for o in check["outputs"]) > 100, graph


def test_float_parts_follow_the_plan_under_a_callers_precision_and_stay_fp32_where_the_target_has_no_fp16(
    export,  # noqa: ANN001
) -> None:
    from autocompress.export.bundle import _plan_group
    from autocompress.targets import load_target

    gpu = _plan("rtx3060")
    # the caller's int4 for the decoder: its float parts as the plan's group runs them
    assert _plan_group("dec", gpu, {"dec": "int4"}, None, export.work).request.floats == "fp16"
    assert _plan_group("dec", None, {"dec": "int8"}, None, export.work).request.floats == "fp32"
    # a GPU plan exported for the cpu target (not made for it): fp32 float parts, said in a note
    choice = _plan_group("dec", gpu, None, load_target("cpu"), export.work)
    assert choice.request.floats == "fp32"
    assert any("float parts in fp32, not the plan's fp16: target cpu cannot run" in n for n in choice.notes)


def test_the_bundle_readme_says_the_cuda_provider_runs_such_graphs_in_their_float() -> None:
    """The README said onnxruntime's CUDA provider computes a bundle's int8 graphs in fp32;
    a GPU target's int8 graphs dequantize to, and compute in, fp16."""
    _, bundle, _, _ = _exported("rtx3060")
    text = " ".join((bundle.path / "README.md").read_text().split())
    assert "computes them in fp32" not in text
    assert "CUDA provider alone dequantizes them and computes in the graph's float" in text


def test_float_parts_a_target_cannot_run_in_fp16_are_projected_again_as_shipped(export) -> None:  # noqa: ANN001
    """A GPU plan exported for a CPU target ships its int8 decoder with fp32 float parts, but the
    bundle kept the plan's projected figures (fp16 float parts) without a word."""
    from autocompress.export.bundle import _plan_group, _shipped_metrics
    from autocompress.runtime.manifest import MetricEntry
    from autocompress.score.voice_cost import projected_plan_metrics
    from autocompress.targets import load_target

    rpi5, gpu = load_target("rpi5"), _plan("rtx3060")
    choice = _plan_group("dec", gpu, None, rpi5, export.work)
    choice.used = "int8"
    voice = make_voice()
    entries = [MetricEntry("memory_bytes", 1.0, "B", "projected", "rpi5"), MetricEntry("mos", 3.0, "", "measured", "cpu")]
    memory, mos = _shipped_metrics(entries, gpu, {"dec": choice}, rpi5, voice)
    shipped = gpu.replace_group("dec", quant=QuantConfig("int8", "int8"))
    want = {m.name: m.value for m in projected_plan_metrics(voice, shipped, rpi5)}["memory_bytes"]
    assert memory.value == want != 1.0
    assert "dec int8 (fp16 float parts) -> int8 (fp32 float parts)" in memory.note
    assert mos.value == 3.0 and "measured for the plan" in mos.note
