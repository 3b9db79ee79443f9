"""quantize_graph on a small conv + linear graph: the stored forms and their fidelity."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto
from torch import nn

from autocompress.export import GraphSpec, export_graph, quantize_graph
from autocompress.export.ort_quant import node_scope, nodes_in_scopes


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Conv1d(16, 64, 3, padding=1)
        self.up = nn.ConvTranspose1d(64, 32, 4, stride=2, padding=1)
        self.post = nn.Linear(32, 64)
        self.out = nn.Linear(64, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [1, 16, T] -> [1, 2T, 8]
        h = torch.tanh(self.up(torch.relu(self.pre(x)))).transpose(1, 2)
        return self.out(torch.relu(self.post(h)))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):  # noqa: ANN201
    torch.manual_seed(0)
    module = _Toy().eval()
    path = tmp_path_factory.mktemp("toy") / "toy.onnx"
    spec = GraphSpec("toy", "dec", module, (torch.randn(1, 16, 20),), ["x"], ["y"], {"x": {2: "T"}, "y": {1: "T2"}})
    exporter = export_graph(spec, path, prefer="legacy")
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 16, t)).astype(np.float32)} for t in (20, 33, 47)]
    return path, exporter, feeds


def _snr(path, feeds, ref_path) -> float:
    a = ort.InferenceSession(str(ref_path), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    sig = err = 0.0
    for f in feeds:
        r, g = a.run(None, f)[0].astype(np.float64), b.run(None, f)[0].astype(np.float64)
        sig += float(np.sum(r * r))
        err += float(np.sum((r - g) ** 2))
    return 10 * np.log10(sig / err)


def _initializer(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(i for i in model.graph.initializer if i.name == name)


def test_fp16_keeps_float32_io_and_is_near_lossless(toy, tmp_path) -> None:
    path, _, feeds = toy
    quantize_graph(path, tmp_path / "h.onnx", "fp16")
    model = onnx.load(str(tmp_path / "h.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert any(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer)
    assert _snr(tmp_path / "h.onnx", feeds, path) > 50


def test_int8_is_symmetric_per_channel_qdq(toy, tmp_path) -> None:
    path, _, feeds = toy
    notes = quantize_graph(path, tmp_path / "q.onnx", "int8", calibration=feeds)
    model = onnx.load(str(tmp_path / "q.onnx"))
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert dq and q and any("symmetric s8" in n for n in notes)
    for node in q:  # s8 activations with zero point 0: TensorRT's form
        zp = onnx.numpy_helper.to_array(_initializer(model, node.input[2]))
        assert zp.dtype == np.int8 and not zp.any()
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    weight_dq = next(n for n in dq if n.output[0] == conv.input[1])
    scales = onnx.numpy_helper.to_array(_initializer(model, weight_dq.input[1]))
    assert scales.shape == (64,)  # one scale per output channel
    assert _initializer(model, weight_dq.input[0]).data_type == TensorProto.INT8
    assert _snr(tmp_path / "q.onnx", feeds, path) > 15


def test_int8_for_cpu_targets_uses_u8_activations(toy, tmp_path) -> None:
    path, _, feeds = toy
    quantize_graph(path, tmp_path / "u.onnx", "int8", calibration=feeds, symmetric_activations=False)
    model = onnx.load(str(tmp_path / "u.onnx"))
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert q and all(_initializer(model, n.input[2]).data_type == TensorProto.UINT8 for n in q)
    assert _snr(tmp_path / "u.onnx", feeds, path) > 15


def test_int4_is_weight_only_and_smaller(toy, tmp_path) -> None:
    path, _, feeds = toy
    notes = quantize_graph(path, tmp_path / "w4.onnx", "int4")
    model = onnx.load(str(tmp_path / "w4.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulNBits") == 2 and "QuantizeLinear" not in ops  # no activation quantization
    int4 = [i for i in model.graph.initializer if i.data_type == TensorProto.INT4]
    assert len(int4) == 2  # the Conv and the ConvTranspose weights
    assert any("MatMulNBits" in n for n in notes)
    assert (tmp_path / "w4.onnx").stat().st_size < 0.25 * path.stat().st_size
    assert _snr(tmp_path / "w4.onnx", feeds, path) > 12


def test_int2_is_much_worse_than_int4(toy, tmp_path) -> None:
    path, _, feeds = toy
    quantize_graph(path, tmp_path / "w4.onnx", "int4")
    quantize_graph(path, tmp_path / "w2.onnx", "int2")
    assert _snr(tmp_path / "w2.onnx", feeds, path) < _snr(tmp_path / "w4.onnx", feeds, path) - 6


def test_excluded_layers_stay_float(toy, tmp_path) -> None:
    path, exporter, feeds = toy
    model = onnx.load(str(path))
    assert {node_scope(n) for n in model.graph.node if n.op_type == "Conv"} == {"pre"}
    assert len(nodes_in_scopes(model, ("pre",))) == 1
    notes = quantize_graph(path, tmp_path / "k.onnx", "int8", calibration=feeds, exclude=("pre",))
    quantized = onnx.load(str(tmp_path / "k.onnx"))
    conv = next(n for n in quantized.graph.node if n.op_type == "Conv")
    assert conv.input[1] in {i.name for i in quantized.graph.initializer}  # a plain float weight
    assert _initializer(quantized, conv.input[1]).data_type == TensorProto.FLOAT
    assert any("kept at fp32" in n for n in notes)
    by_type = quantize_graph(path, tmp_path / "t.onnx", "int4", exclude_op_types=("ConvTranspose",))
    assert any("ConvTranspose nodes kept at fp32" in n for n in by_type)
    int4 = [i for i in onnx.load(str(tmp_path / "t.onnx")).graph.initializer if i.data_type == TensorProto.INT4]
    assert len(int4) == 1


class _Speaker(nn.Module):
    """A Linear on a 2-D input, as the Pro style graph's sv_emb: it exports as Gemm."""

    def __init__(self) -> None:
        super().__init__()
        self.sv_emb = nn.Linear(256, 64)

    def forward(self, sv: torch.Tensor) -> torch.Tensor:  # [1, 256] -> [1, 64]
        return torch.tanh(self.sv_emb(sv))


def test_int4_stores_a_gemm_weight_at_low_bit_too(tmp_path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "sv.onnx"
    spec = GraphSpec("sv", "ref_enc", _Speaker().eval(), (torch.randn(1, 256),), ["sv"], ["g"], {})
    export_graph(spec, path, prefer="legacy")
    assert "Gemm" in [n.op_type for n in onnx.load(str(path)).graph.node]
    notes = quantize_graph(path, tmp_path / "w4.onnx", "int4")
    model = onnx.load(str(tmp_path / "w4.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert "Gemm" not in ops and ops.count("MatMulNBits") == 1
    assert any("Gemm" in n and "MatMul" in n for n in notes)
    assert (tmp_path / "w4.onnx").stat().st_size < 0.3 * path.stat().st_size
    feeds = [{"sv": np.random.default_rng(i).standard_normal((1, 256)).astype(np.float32)} for i in range(3)]
    assert _snr(tmp_path / "w4.onnx", feeds, path) > 12
    assert [node_scope(n) for n in model.graph.node if n.op_type == "MatMulNBits"] == ["sv_emb"]


def test_int4_with_int8_convolutions_stores_each_at_its_own_rung(toy, tmp_path) -> None:
    """A plan "int4, conv at int8" (a target that runs int8 but not int4 convolutions) ships so."""
    path, _, feeds = toy
    notes = quantize_graph(path, tmp_path / "mixed.onnx", "int4", feeds, int8_op_types=("Conv", "ConvTranspose"))
    model = onnx.load(str(tmp_path / "mixed.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulNBits") == 2  # the two Linears at 4 bits
    assert not [i for i in model.graph.initializer if i.data_type == TensorProto.INT4]  # no 4-bit conv weight
    int8_weights = [i for i in model.graph.initializer if i.data_type == TensorProto.INT8 and len(i.dims) == 3]
    assert len(int8_weights) == 2  # the Conv and the ConvTranspose, per-channel int8
    assert any("stored as int8 QDQ" in n for n in notes)
    assert not list(tmp_path.glob("*.int8-part.onnx"))
    assert _snr(tmp_path / "mixed.onnx", feeds, path) > 12


@pytest.mark.parametrize("bits", [4, 2])
@pytest.mark.parametrize("batched", [True, False], ids=["matmul", "gemm"])
def test_a_low_bit_student_linear_ships_exactly_as_it_was_scored(tmp_path, bits, batched) -> None:
    """Fake quantization rounds a linear weight as MatMulNBits stores it: the bundle's weights
    are the scored student's, not a second rounding of them."""
    from autocompress.compress import QuantConfig, add_fake_quant_, strip_fake_quant_

    torch.manual_seed(bits)
    n_in, n_out = 70, 24  # 70 inputs: a short last block
    student = strip_fake_quant_(add_fake_quant_(nn.Linear(n_in, n_out, bias=False), QuantConfig(f"int{bits}"))).eval()
    eye = torch.eye(n_in)[None] if batched else torch.eye(n_in)  # [1, K, K] exports as MatMul, [K, K] as Gemm
    path = tmp_path / "lin.onnx"
    export_graph(GraphSpec("lin", "gpt", student, (eye,), ["x"], ["y"], {}), path, prefer="legacy")
    quantize_graph(path, tmp_path / "low.onnx", f"int{bits}")
    assert "MatMulNBits" in [n.op_type for n in onnx.load(str(tmp_path / "low.onnx")).graph.node]
    shipped = ort.InferenceSession(str(tmp_path / "low.onnx"), providers=["CPUExecutionProvider"])
    weights = shipped.run(None, {"x": eye.numpy()})[0].reshape(n_in, n_out).T  # identity in: the weights out
    scored = student.weight.detach().numpy()
    assert np.abs(weights - scored).max() <= 1e-6 * np.abs(scored).max()


class _Attention(nn.Module):
    """Projections (constant weights) around a score and a value product (both inputs computed)."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(16, 16)
        self.k = nn.Linear(16, 16)
        self.out = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [1, T, 16] -> [1, T, 8]
        scores = self.q(x) @ self.k(x).transpose(1, 2)
        return self.out(torch.softmax(scores, dim=-1) @ x)


def _scored_and_shipped_int8(tmp_path, symmetric: bool):  # noqa: ANN202
    """(torch fake-quant output, int8 graph output) per feed of a calibrated int8 student."""
    from autocompress.compress import QuantConfig, add_fake_quant_, calibrate_activations_, strip_fake_quant_

    torch.manual_seed(0)
    student = add_fake_quant_(_Attention().eval(), QuantConfig("int8", "int8"))
    feeds = [torch.randn(1, t, 16) for t in (9, 14, 20)]
    with torch.no_grad():
        calibrate_activations_(student, lambda: [student(x) for x in feeds], symmetric=symmetric)
        scored = [student(x).numpy() for x in feeds]
    plain = copy.deepcopy(student)
    strip_fake_quant_(plain)
    path = tmp_path / "attn.onnx"
    spec = GraphSpec("attn", "gpt", plain, (feeds[0],), ["x"], ["y"], {"x": {1: "T"}, "y": {1: "T"}})
    export_graph(spec, path, prefer="legacy")
    quantize_graph(path, tmp_path / "q.onnx", "int8", [{"x": x.numpy()} for x in feeds],
                   symmetric_activations=symmetric)  # fmt: skip
    session = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    return scored, [session.run(None, {"x": x.numpy()})[0] for x in feeds], onnx.load(str(tmp_path / "q.onnx"))


@pytest.mark.parametrize("symmetric", [True, False], ids=["s8", "u8"])
def test_int8_graph_computes_what_the_search_scored(tmp_path, symmetric) -> None:
    """Only weight layers' inputs are rounded, as fake quantization scores them: no layer output
    (the GPT's logits among them) and no product of two computed tensors (attention)."""
    scored, shipped, model = _scored_and_shipped_int8(tmp_path, symmetric)
    producer = {o: n for n in model.graph.node for o in n.output}
    assert producer["y"].op_type != "DequantizeLinear"  # the output is not rounded to 256 steps
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        from_dq = [producer.get(i) is not None and producer[i].op_type == "DequantizeLinear" for i in node.input]
        weight = node.input[1] in {i.name for i in model.graph.initializer} or from_dq[1] and producer[
            node.input[1]].input[0] in {i.name for i in model.graph.initializer}  # fmt: skip
        assert from_dq[0] == weight, f"{node.name}: input rounded {from_dq[0]}, constant weight {weight}"
    signal = sum(float(np.sum(s.astype(np.float64) ** 2)) for s in scored)
    error = sum(float(np.sum((s.astype(np.float64) - g) ** 2)) for s, g in zip(scored, shipped))
    assert 10 * np.log10(signal / error) > 36  # 39-40 dB here; 33-34 dB with rounded outputs and products


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.lin(x)


@pytest.mark.parametrize("symmetric", [True, False], ids=["s8", "u8"])
def test_a_residual_beside_an_int8_layer_reads_the_float_input_as_scored(tmp_path, symmetric) -> None:
    """onnxruntime gave the rounded copy of x to the residual Add too; the scored student rounds
    only the weight layer's input, so the bundle's block output differed by x's rounding error."""
    from autocompress.compress import QuantConfig, add_fake_quant_, calibrate_activations_, strip_fake_quant_

    torch.manual_seed(0)
    student = add_fake_quant_(_Residual().eval(), QuantConfig("int8", "int8"))
    feeds = [torch.randn(1, t, 16) for t in (7, 11)]
    with torch.no_grad():
        calibrate_activations_(student, lambda: [student(x) for x in feeds], symmetric=symmetric)
        scored = [student(x).numpy().astype(np.float64) for x in feeds]
    plain = copy.deepcopy(student)
    strip_fake_quant_(plain)
    spec = GraphSpec("res", "gpt", plain, (feeds[0],), ["x"], ["y"], {"x": {1: "T"}, "y": {1: "T"}})
    export_graph(spec, tmp_path / "res.onnx", prefer="legacy")
    quantize_graph(tmp_path / "res.onnx", tmp_path / "q.onnx", "int8", [{"x": x.numpy()} for x in feeds],
                   symmetric_activations=symmetric)  # fmt: skip
    session = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    shipped = [session.run(None, {"x": x.numpy()})[0] for x in feeds]
    signal = sum(float(np.sum(s**2)) for s in scored)
    error = sum(float(np.sum((s - g) ** 2)) for s, g in zip(scored, shipped))
    assert 10 * np.log10(signal / error) > 60  # about 40 dB when the Add read the rounded x


@pytest.mark.parametrize(("precision", "options"), [
    ("int8", {}), ("int4", {}), ("int4", {"int8_op_types": ("Conv", "ConvTranspose")}),
])  # fmt: skip
def test_integer_graphs_with_fp16_float_parts(toy, tmp_path, precision: str, options: dict) -> None:
    """A GPU target's integer graph: integer weights (and int8 activations) as before, every
    float part fp16 (scales, biases, the math between layers), fp32 inputs and outputs; it runs
    on onnxruntime's CPU provider within fp16 rounding of the fp32-float graph."""
    from autocompress.runtime.session import graph_kind, open_session

    path, _, feeds = toy
    calibration = feeds if precision == "int8" or options else None
    quantize_graph(path, tmp_path / "f32.onnx", precision, calibration, **options)
    notes = quantize_graph(path, tmp_path / "f16.onnx", precision, calibration, floats="fp16", **options)
    assert any(n.startswith("float parts") and "fp16" in n for n in notes)
    model = onnx.load(str(tmp_path / "f16.onnx"))
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 19  # fp16 Q/DQ
    types = {i.data_type for i in model.graph.initializer}
    assert TensorProto.FLOAT16 in types and TensorProto.FLOAT not in types
    before = {i.data_type for i in onnx.load(str(tmp_path / "f32.onnx")).graph.initializer}
    assert types - {TensorProto.FLOAT16} == before - {TensorProto.FLOAT}  # the same integer storage
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert graph_kind(tmp_path / "f16.onnx") == ("fp16" if precision == "int4" and not options else "int8-fp16")
    open_session(tmp_path / "f16.onnx", ["CPUExecutionProvider"], 1)
    assert _snr(tmp_path / "f16.onnx", feeds, tmp_path / "f32.onnx") > 35


def test_an_unknown_float_type_is_refused(toy, tmp_path) -> None:
    from autocompress.exceptions import ExportError

    path, _, feeds = toy
    with pytest.raises(ExportError, match="unknown float type 'bf16'"):
        quantize_graph(path, tmp_path / "x.onnx", "int8", feeds, floats="bf16")


def test_the_int8_part_of_an_int4_graph_with_fp16_float_parts_is_fp16_like_an_int8_graph(toy, tmp_path) -> None:
    """"int4, conv at int8" on a GPU target: its int8 convolutions read their DequantizeLinear
    outputs directly in fp16, as an int8 graph's do (TensorRT's QDQ pattern), not through a Cast
    to fp32; none is reported kept at fp32."""
    path, _, feeds = toy
    notes = quantize_graph(path, tmp_path / "m.onnx", "int4", feeds, int8_op_types=("Conv", "ConvTranspose"),
                           floats="fp16")  # fmt: skip
    model = onnx.load(str(tmp_path / "m.onnx"))
    made_by = {o: n.op_type for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert len(convs) == 2
    for conv in convs:
        assert [made_by.get(i) for i in conv.input[:2]] == ["DequantizeLinear", "DequantizeLinear"], conv.name
    assert not [n for n in notes if "kept at fp32" in n]
    assert _snr(tmp_path / "m.onnx", feeds, path) > 12
