"""torch module -> ONNX file, with torch's dynamo exporter first and the legacy one as fallback.

The result records which exporter produced the file, because the two differ in node naming
and in how well onnxruntime's tools digest the graph.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch
from torch import Tensor, nn

from autocompress.exceptions import ExportError

OPSET = 18  # >= 17 as required; 18 is the dynamo exporter's native opset (no version conversion)
_MAX_DIM = 1 << 16  # upper bound given to every dynamic dimension


@dataclass
class GraphSpec:
    """What to export: a module, example inputs and the names and dynamic axes of its I/O.

    Attributes:
        name: graph role, e.g. ``gpt_decode``; also the file stem.
        group: the module group the graph belongs to (precision is chosen per group).
        module: the torch module; called as ``module(*example_inputs)``.
        example_inputs: one example per input, in order.
        input_names: names of the inputs, in order.
        output_names: names of the outputs, in order.
        dynamic_axes: input or output name -> {axis: dimension name}; equal names are tied.
    """

    name: str
    group: str
    module: nn.Module
    example_inputs: tuple[Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)


def export_graph(spec: GraphSpec, path: str | Path, prefer: str = "dynamo") -> str:
    """Export ``spec`` to one self-contained ``.onnx`` file (weights inside).

    Args:
        spec: what to export.
        path: destination file.
        prefer: ``dynamo`` (try dynamo, then legacy) or ``legacy`` (legacy only).

    Returns:
        the exporter that produced the file: ``dynamo`` or ``legacy``.

    Raises:
        ExportError: both exporters failed (the message carries both reasons).
    """
    path = Path(path)
    errors = []
    if prefer == "dynamo":
        try:
            model = _export_dynamo(spec)
            _save(model, path, spec)
            return "dynamo"
        except Exception as e:  # torch raises many unrelated types here
            errors.append(f"dynamo: {_first_line(e)}")
    try:
        model = _export_legacy(spec)
        _save(model, path, spec)
        return "legacy"
    except Exception as e:
        errors.append(f"legacy: {_first_line(e)}")
    raise ExportError(f"cannot export graph {spec.name!r} to ONNX; " + "; ".join(errors))


class _Flat(nn.Module):
    """Call the wrapped module with positional inputs only (one flat signature for export)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *inputs: Tensor):  # noqa: ANN201
        return self.module(*inputs)


def _export_dynamo(spec: GraphSpec) -> onnx.ModelProto:
    dims: dict[str, torch.export.Dim] = {}
    shapes = []
    for name in spec.input_names:
        axes = spec.dynamic_axes.get(name)
        if not axes:
            shapes.append(None)
            continue
        entry = {}
        for axis, dim_name in axes.items():
            if dim_name not in dims:
                dims[dim_name] = torch.export.Dim(dim_name, min=1, max=_MAX_DIM)
            entry[axis] = dims[dim_name]
        shapes.append(entry)
    with _quiet():
        program = torch.onnx.export(
            _Flat(spec.module).eval(),
            spec.example_inputs,
            None,
            dynamo=True,
            opset_version=OPSET,
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_shapes=(tuple(shapes),),
            external_data=False,
            verbose=False,
        )
    return program.model_proto


def _export_legacy(spec: GraphSpec) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with _quiet():
        torch.onnx.export(
            spec.module.eval(),
            spec.example_inputs,
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_axes=spec.dynamic_axes,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buffer.getvalue())


def _save(model: onnx.ModelProto, path: Path, spec: GraphSpec) -> None:
    got_in = [i.name for i in model.graph.input]
    got_out = [o.name for o in model.graph.output]
    if got_in != spec.input_names or got_out != spec.output_names:
        raise ExportError(
            f"graph {spec.name}: exported I/O {got_in} -> {got_out}, expected "
            f"{spec.input_names} -> {spec.output_names}"
        )
    frozen = []
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        for axis in spec.dynamic_axes.get(value.name, {}):
            if axis < len(dims) and dims[axis].HasField("dim_value"):
                frozen.append(f"{value.name}[{axis}] = {dims[axis].dim_value}")
    if frozen:
        raise ExportError(f"graph {spec.name}: dynamic axes were frozen to the example sizes: {', '.join(frozen)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    try:
        onnx.checker.check_model(str(path))
        _check_other_lengths(spec, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _check_other_lengths(spec: GraphSpec, path: Path) -> None:
    """Run the graph at other sizes of its dynamic axes and compare with torch.

    Catches lengths an exporter froze into the graph (a Python int computed from a shape is a
    constant to the legacy tracer), which would otherwise only show as wrong output lengths.
    """
    if not spec.dynamic_axes:
        return
    import numpy as np
    import onnxruntime as ort

    generator = torch.Generator().manual_seed(0)
    sizes: dict[str, int] = {}
    inputs = []
    for name, example in zip(spec.input_names, spec.example_inputs):
        shape = list(example.shape)
        for axis, dim in spec.dynamic_axes.get(name, {}).items():
            shape[axis] = sizes.setdefault(dim, example.shape[axis] + 3)
        if example.is_floating_point():
            inputs.append(torch.randn(shape, generator=generator, dtype=example.dtype))
        else:
            low, high = int(example.min()), int(example.max()) + 1
            inputs.append(torch.randint(low, high, shape, generator=generator, dtype=example.dtype))
    with torch.no_grad():
        want = spec.module(*inputs)
    want = want if isinstance(want, tuple) else (want,)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: t.numpy() for n, t in zip(spec.input_names, inputs)})
    for name, w, g in zip(spec.output_names, want, got):
        if tuple(w.shape) != tuple(g.shape):
            raise ExportError(
                f"graph {spec.name}: output {name} is {list(g.shape)} at other input lengths, torch gives "
                f"{list(w.shape)}; a dynamic length was frozen by the exporter"
            )
        w = w.numpy().astype(np.float64)
        if not np.allclose(g, w, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(w).max(initial=0.0)))):
            raise ExportError(f"graph {spec.name}: output {name} differs from torch at other input lengths")


@contextlib.contextmanager
def _quiet():  # noqa: ANN202
    """Silence the exporters' progress prints, warnings and log lines."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _first_line(e: BaseException) -> str:
    """A one-line reason: torch's export errors put theirs after an "Exception summary" header."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    if "## Exception summary" in lines:
        rest = lines[lines.index("## Exception summary") + 1 :]
        if rest:
            return rest[0][:300]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]


__all__ = ["GraphSpec", "OPSET", "export_graph"]
