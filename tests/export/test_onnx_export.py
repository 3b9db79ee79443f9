"""export_graph: dynamo first, legacy when dynamo fails, dynamic axes really dynamic."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autocompress.exceptions import ExportError
from autocompress.export import GraphSpec, export_graph
from autocompress.export.onnx_export import OPSET


class _ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 16, 3, padding=1)
        self.proj = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [1, 8, T] -> [1, T, 4]
        return self.proj(F.leaky_relu(self.conv(x), 0.1).transpose(1, 2))


class _DataDependent(_ConvNet):
    """A Python branch on a tensor value: torch.export refuses it, tracing records one branch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        if y.sum() > -1e9:
            y = y * 2
        return y


class _FrozenLength(nn.Module):
    """Computes a Python int from a shape, which the legacy tracer freezes to a constant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [1, C, T] -> [1, C, 2T]
        return F.interpolate(x, size=int(x.shape[-1] * 2), mode="nearest")


def _spec(module: nn.Module, name: str = "toy") -> GraphSpec:
    torch.manual_seed(0)
    return GraphSpec(name, "dec", module.eval(), (torch.randn(1, 8, 12),), ["x"], ["y"], {"x": {2: "T"}, "y": {1: "T"}})


def _check_dynamic(path, module: nn.Module) -> None:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 8, 29)  # another length than the example
    with torch.no_grad():
        want = module(x).numpy()
    got = session.run(None, {"x": x.numpy()})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_dynamo_is_tried_first_and_recorded(tmp_path) -> None:
    import onnx

    spec = _spec(_ConvNet())
    assert export_graph(spec, tmp_path / "toy.onnx") == "dynamo"
    model = onnx.load(str(tmp_path / "toy.onnx"))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= max(OPSET, 17)
    assert not (tmp_path / "toy.onnx.data").exists()  # weights inside the one file
    _check_dynamic(tmp_path / "toy.onnx", spec.module)


def test_a_graph_dynamo_cannot_export_falls_back_to_legacy(tmp_path) -> None:
    spec = _spec(_DataDependent())
    assert export_graph(spec, tmp_path / "toy.onnx") == "legacy"
    _check_dynamic(tmp_path / "toy.onnx", spec.module)


def test_a_dynamic_axis_frozen_by_the_exporter_is_an_error(tmp_path) -> None:
    spec = GraphSpec("frozen", "dec", _FrozenLength(), (torch.randn(1, 3, 10),), ["x"], ["y"], {"x": {2: "T"}})
    with pytest.raises(ExportError, match="frozen"):
        export_graph(spec, tmp_path / "frozen.onnx", prefer="legacy")
    assert not (tmp_path / "frozen.onnx").exists()
