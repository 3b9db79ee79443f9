"""An op kind a plan keeps above its group's rung: only its weight layers leave the group's
precision, as the scored student and the projection have it. Products of two computed tensors
(attention's score and value products) and constant tables of no weight layer (a folded
relative-position embedding) are no layers of any kind: they stay with the group."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto
from torch import nn

from autocompress.compress import add_fake_quant_, strip_fake_quant_
from autocompress.compress.fake_quant import quantizable_weights
from autocompress.compress.plan import CompressionPlan, GroupPlan, QuantConfig
from autocompress.export import GraphSpec, export_graph, quantize_graph
from autocompress.export.ort_quant import ActivationRange
from autocompress.export.parity import FP16_MIN_SNR_DB
from autocompress.export.precision import request_from_plan


class _Block(nn.Module):
    """Linear projections around an attention score and value product, and a product with a
    parameter table that is no weight layer (as enc_p's relative-position embeddings)."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(32, 32)
        self.k = nn.Linear(32, 32)
        self.out = nn.Linear(32, 8)
        self.table = nn.Parameter(0.3 * torch.randn(32, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [1, T, 32] -> [1, T, 8]
        scores = self.q(x) @ self.k(x).transpose(1, 2)
        return self.out(torch.softmax(scores, dim=-1) @ x + x @ self.table)


def _student_and_graph(tmp_path, quant: QuantConfig):  # noqa: ANN202
    """(scored outputs per feed, feeds, fp32 graph path, the plain student's weight layers)."""
    torch.manual_seed(0)
    student = add_fake_quant_(_Block().eval(), quant)
    feeds = [torch.randn(1, t, 32) for t in (9, 17)]
    with torch.no_grad():
        scored = [student(x).numpy().astype(np.float64) for x in feeds]
    plain = strip_fake_quant_(copy.deepcopy(student))
    path = tmp_path / "block.onnx"
    spec = GraphSpec("block", "gpt", plain, (feeds[0],), ["x"], ["y"], {"x": {1: "T"}, "y": {1: "T"}})
    export_graph(spec, path, prefer="legacy")
    layers = [ActivationRange(getattr(m, n).detach().numpy(), None, None, f) for f, m, n, _, _ in quantizable_weights(plain)]
    return scored, [x.numpy() for x in feeds], path, layers


def _snr_db(scored: list[np.ndarray], path, feeds: list[np.ndarray]) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shipped = [session.run(None, {"x": x})[0].astype(np.float64) for x in feeds]
    signal = sum(float(np.sum(s**2)) for s in scored)
    error = sum(float(np.sum((s - g) ** 2)) for s, g in zip(scored, shipped))
    return 10 * np.log10(signal / error)


def _input_types(model: onnx.ModelProto) -> dict[str, tuple[int, bool]]:
    """Each MatMul's first input's element type and whether its B is a constant initializer."""
    model = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.input]}
    inits = {i.name for i in model.graph.initializer}
    return {n.name: (types[n.input[0]], n.input[1] in inits) for n in model.graph.node if n.op_type == "MatMul"}


@pytest.mark.parametrize("with_layers", [True, False], ids=["student_layers", "no_layers"])
def test_linear_kept_at_fp32_in_an_fp16_group_keeps_only_its_weight_layers(tmp_path, with_layers) -> None:
    plan = CompressionPlan({"gpt": GroupPlan(quant=QuantConfig("fp16", "fp16", op_weights={"linear": "fp32"}))})
    request = request_from_plan(plan, "gpt")
    assert request.precision == "fp16" and set(request.keep_op_types) == {"MatMul", "Gemm"}
    scored, feeds, path, layers = _student_and_graph(tmp_path, plan.group("gpt").quant)
    dst = tmp_path / "half.onnx"
    notes = quantize_graph(path, dst, "fp16", exclude_op_types=request.keep_op_types,
                           activation_ranges=layers if with_layers else ())  # fmt: skip
    fp32_inputs = _input_types(onnx.load(str(path)))
    weights = {name for name, (_, constant) in fp32_inputs.items() if constant}
    assert len(fp32_inputs) == 6 and len(weights) == 4  # q, k, out, the table; the score and value products
    table = next(n.name for n in onnx.load(str(path)).graph.node if n.op_type == "MatMul" and "table" in n.input[1])
    kept = weights - {table} if with_layers else weights  # without the layers, any constant weight counts
    shipped = _input_types(onnx.load(str(dst)))
    for name, (elem_type, _) in shipped.items():
        want = TensorProto.FLOAT if name in kept else TensorProto.FLOAT16
        assert elem_type == want, f"{name}: {TensorProto.DataType.Name(elem_type)}"
    assert any(f"{len(kept)} MatMul/Gemm nodes kept at fp32" in n for n in notes)
    assert _snr_db(scored, dst, feeds) > FP16_MIN_SNR_DB


def test_int4_leaves_a_constant_table_of_no_weight_layer_float(tmp_path) -> None:
    """The student scores the table unquantized; MatMulNBits stored it at 4 bits."""
    scored, feeds, path, layers = _student_and_graph(tmp_path, QuantConfig("int4"))
    dst = tmp_path / "w4.onnx"
    notes = quantize_graph(path, dst, "int4", activation_ranges=layers)
    model = onnx.load(str(dst))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulNBits") == 3  # q, k, out
    inits = {i.name: i for i in model.graph.initializer}
    table = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    assert len(table) == 1 and inits[table[0].input[1]].data_type == TensorProto.FLOAT
    assert any("1 constant-weight products of no weight layer kept float" in n for n in notes)
    assert _snr_db(scored, dst, feeds) > 35


class _TwoConvs(nn.Module):
    """Two convolutions reading one computed tensor, as a residual block's."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(8, 8, 3, padding=1)
        self.b = nn.Conv1d(8, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [1, 8, T] -> [1, 8, T]
        h = torch.relu(x)
        return self.a(h) + self.b(h)


def test_two_kept_convolutions_reading_one_tensor_make_a_loadable_graph(tmp_path) -> None:
    """onnxruntime's converter gave each kept conv its own Cast of ``h``, both named alike: the
    graph failed to load ("two nodes with same node name") and the export stopped there."""
    plan = CompressionPlan({"dec": GroupPlan(quant=QuantConfig("fp16", "fp16", op_weights={"conv": "fp32"}))})
    request = request_from_plan(plan, "dec")
    assert request.precision == "fp16" and request.keep_op_types == ("Conv",)
    torch.manual_seed(0)
    student = add_fake_quant_(_TwoConvs().eval(), plan.group("dec").quant)
    feeds = [torch.randn(1, 8, t) for t in (11, 23)]
    with torch.no_grad():
        scored = [student(x).numpy().astype(np.float64) for x in feeds]
    path, dst = tmp_path / "convs.onnx", tmp_path / "half.onnx"
    spec = GraphSpec("convs", "dec", strip_fake_quant_(student), (feeds[0],), ["x"], ["y"], {"x": {2: "T"}, "y": {2: "T"}})
    export_graph(spec, path, prefer="legacy")
    notes = quantize_graph(path, dst, "fp16", exclude_op_types=request.keep_op_types)
    assert any("2 Conv nodes kept at fp32" in n for n in notes)
    model = onnx.load(str(dst))
    inits = {i.name: i.data_type for i in model.graph.initializer}
    assert [inits[n.input[1]] for n in model.graph.node if n.op_type == "Conv"] == [TensorProto.FLOAT] * 2
    assert _snr_db(scored, dst, [x.numpy() for x in feeds]) > FP16_MIN_SNR_DB


def test_a_bundle_keeping_linear_at_fp32_in_an_fp16_ref_enc_runs_the_scored_student(tmp_path) -> None:
    """ref_enc's self-attention projections read one tensor: its fp16 graph did not load and the
    export stopped; now it ships fp16 with the linear layers at fp32, near the scored student."""
    from export_helpers import make_voice, stripped_export

    from autocompress.compress import compress
    from autocompress.export.references import graph_outputs, graph_views
    from autocompress.runtime.session import open_session

    plan = CompressionPlan({"ref_enc": GroupPlan(quant=QuantConfig("fp16", "fp16", op_weights={"linear": "fp32"}))})
    student, as_scored = compress(make_voice(), plan), compress(make_voice(), plan)
    export = stripped_export(student, {})
    try:
        feeds = export.refs.cases["ref_enc"].feeds
        scored = graph_outputs(graph_views(as_scored.gpt, as_scored.sovits)["ref_enc"], feeds)
        bundle = export.bundle(plan, tmp_path / "bundle", None, n_samples=1, upstream=False, threads=1)
        entry = bundle.manifest.graphs["ref_enc"]
        assert entry.precision == "fp16"
        types = _input_types(onnx.load(str(bundle.path / entry.file)))
        assert {t for t, weight in types.values() if weight} == {TensorProto.FLOAT}  # the 7 linear layers
        assert {t for t, weight in types.values() if not weight} == {TensorProto.FLOAT16}  # attention's products
        session = open_session(bundle.path / entry.file, ["CPUExecutionProvider"], 1)
        signal = error = 0.0
        for feed, want in zip(feeds, scored):
            got = session.run(None, {i.name: feed[i.name] for i in session.get_inputs()})
            for w, g in zip(want, got):
                signal += float(np.sum(w.astype(np.float64) ** 2))
                error += float(np.sum((w.astype(np.float64) - g) ** 2))
        assert 10 * np.log10(signal / error) > FP16_MIN_SNR_DB
    finally:
        export.close()
