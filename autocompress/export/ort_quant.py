"""Store an fp32 ONNX graph at a lower precision with onnxruntime's tools.

Precisions (weights of Conv, ConvTranspose, MatMul and Gemm; embeddings stay as exported):

- ``fp32``: unchanged.
- ``fp16``: onnxruntime's float16 converter; float inputs/outputs stay fp32 except the
  ones named in ``half_io`` (the GPT's KV cache, so it is stored and read in half).
- ``int8``: static QDQ with per-channel symmetric s8 weights, activations calibrated on
  evaluation inputs: symmetric s8 by default (the form TensorRT runs), or asymmetric u8
  (``symmetric_activations=False``: onnxruntime's fast x86 CPU path, and a full 8 bits for
  one-sided activations). As the search's fake quantization scores it: only a weight layer's
  input is rounded, not its output, and only MatMuls whose B is a constant are quantized
  (attention's score and value products stay float).
- ``int4`` / ``int2``: weight-only. MatMuls become ``MatMulNBits`` (symmetric, blocks of
  32 along K, int8 compute on CPU); Conv and ConvTranspose weights are stored as 4-bit integers (2-bit values
  for ``int2``, in the same 4-bit container) with a per-output-channel scale and a
  ``DequantizeLinear`` in front, since onnxruntime has no low-bit convolution kernel.

An integer graph's float parts (everything the integer pass leaves float: norms, attention,
the KV cache, the dequantized math, the weight-only layers' activations, scales included) run
in ``floats``: ``fp32`` (a CPU target's form), or ``fp16`` (a GPU target's: the integer graph
is then passed through the same float16 converter as ``fp16``, ``half_io`` and nodes kept at
fp32 included, and its default-domain opset raised to 19, the first with fp16 QuantizeLinear /
DequantizeLinear; the low-bit conv weights' DequantizeLinear is com.microsoft's). Integer weights and int8 activations are the same in either.

``exclude`` names torch module paths (fqn prefixes) whose nodes keep full precision.

``activation_ranges`` names the scored student's weight layers for int8 (:class:`ActivationRange`,
found in the graph by their weights' values), with the static input range it calibrated where it
has one: a weight layer's input then rounds to that range's scale and zero point, exactly as the
scored fake quantization rounded it; only inputs no range covers keep the export's own
calibration. A node with a constant weight that is none of these layers (a relative-position
embedding product, whose table the exporter folded into a constant) stays float, as scored, at
int8, int4 and int2.

``exclude_op_types`` (an op kind a plan keeps above its group's rung) keeps only the weight
layers of those types at fp32: not attention's products of two computed tensors, nor such tables.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import os
import shutil
import tempfile
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from autocompress.compress.fake_quant import LINEAR_LOW_BIT_BLOCK
from autocompress.exceptions import ExportError

WEIGHT_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
# MatMulNBits block size along K (the finer of the two that run fast on CPU); the students'
# low-bit linear weights were fake-quantized in these blocks, so they store exactly.
NBITS_BLOCK = LINEAR_LOW_BIT_BLOCK
# MatMulNBits accuracy level 4: the CPU kernel quantizes the activations to int8 per block and
# runs integer dot products (1.6x faster per GPT step here, same SNR); the CUDA kernel ignores it.
NBITS_ACCURACY_LEVEL = 4
_MS_DOMAIN = "com.microsoft"
RANGES_NOTE = "int8 input ranges"  # how every note on where a graph's activation ranges came from begins


@dataclass(frozen=True)
class ActivationRange:
    """A weight layer of the scored student and the static range its input was rounded to.

    Attributes:
        weight: the layer's weight as torch holds it (``[out, in]`` linear, ``[out, in, k]``
            conv, ``[in, out, k]`` transposed conv); it finds the layer's node in a graph.
        low, high: the calibrated range: ``(-amax, amax)`` for symmetric s8, else the
            minimum and maximum (asymmetric u8, widened to hold 0); None when the student
            has no static integer range for this input (the export calibrates it).
        name: the weight's module path, for messages.
        symmetric: the student rounded this input to symmetric s8 over ``max(|low|, |high|)``
            (False: to asymmetric u8 over ``low..high``); a u8 graph then rounds it on exactly
            that grid (zero point 128).
    """

    weight: np.ndarray
    low: float | None
    high: float | None
    name: str = ""
    symmetric: bool = False


def quantize_graph(
    src: str | Path,
    dst: str | Path,
    precision: str,
    calibration: list[dict[str, np.ndarray]] | None = None,
    exclude: tuple[str, ...] = (),
    exclude_op_types: tuple[str, ...] = (),
    half_io: tuple[str, ...] = (),
    symmetric_activations: bool = True,
    int8_op_types: tuple[str, ...] = (),
    activation_ranges: Sequence[ActivationRange] = (),
    floats: str = "fp32",
) -> list[str]:
    """Write ``src`` (fp32) to ``dst`` at ``precision``.

    Args:
        src: fp32 graph written by :func:`~autocompress.export.onnx_export.export_graph`.
        dst: destination file.
        precision: ``fp32``, ``fp16``, ``int8``, ``int4`` or ``int2``.
        calibration: input feeds for static int8 calibration (required for ``int8``).
        exclude: torch module paths whose nodes stay at fp32.
        exclude_op_types: ONNX op types whose weight-layer nodes stay at fp32
            (:func:`weight_layer_nodes`: not attention's products of two computed tensors).
        half_io: float input/output names that become fp16 under ``fp16`` (and under an
            integer precision with ``floats="fp16"``).
        symmetric_activations: int8 activations as symmetric s8 (TensorRT) or asymmetric u8.
        int8_op_types: under ``int4``/``int2``, ONNX op types stored as static int8 QDQ
            instead (a first pass, calibrated like ``int8``); the rest then goes to low bit.
        activation_ranges: the scored student's weight layers and their int8 input ranges;
            inputs without one are calibrated on ``calibration``. When given, int8, int4 and
            int2 leave float every constant-weight node that is none of these layers, and
            ``exclude_op_types`` keeps only nodes of these layers.
        floats: ``fp32`` or ``fp16``, the type of an int8 / int4 / int2 graph's float parts
            (ignored at ``fp32`` and ``fp16``, whose float parts are their own).

    Returns:
        notes about what was done (for the manifest).

    Raises:
        ExportError: unknown precision or float type, no calibration data for int8, or a tool failure.
    """
    if floats not in ("fp32", "fp16"):
        raise ExportError(f"unknown float type {floats!r} for a graph's float parts; expected fp32 or fp16")
    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src))
    skip = nodes_in_scopes(model, exclude)
    notes = [f"{len(skip)} nodes kept at fp32 ({', '.join(exclude)})"] if skip else []
    by_type = [n for n in weight_layer_nodes(model, exclude_op_types, activation_ranges) if n not in skip]
    if by_type:
        notes.append(f"{len(by_type)} {'/'.join(exclude_op_types)} nodes kept at fp32")
        skip += by_type
    kept = list(skip)  # the nodes kept at fp32 (not the int8 part's, which the low-bit pass skips too)
    try:
        with _quiet_logs():
            part = None
            if precision in ("int4", "int2") and any(n.op_type in int8_op_types for n in model.graph.node):
                part, model, skip = _int8_part(
                    src, dst, model, int8_op_types, calibration, skip, symmetric_activations, notes, activation_ranges
                )
            try:
                _store(
                    part or src, dst, model, precision, calibration, skip, half_io, symmetric_activations, notes,
                    activation_ranges,
                )  # fmt: skip
            finally:
                if part is not None:
                    part.unlink(missing_ok=True)
            if floats == "fp16" and precision in ("int8", "int4", "int2"):
                _float_parts_to_fp16(dst, kept, half_io, notes)
    except ExportError:
        raise
    except Exception as e:  # onnxruntime's tools raise assorted types
        raise ExportError(f"onnxruntime could not store {src.name} as {precision}: {type(e).__name__}: {e}") from e
    return notes


def _store(
    src: Path,
    dst: Path,
    model: onnx.ModelProto,
    precision: str,
    calibration: list[dict[str, np.ndarray]] | None,
    skip: list[str],
    half_io: tuple[str, ...],
    symmetric_activations: bool,
    notes: list[str],
    ranges: Sequence[ActivationRange] = (),
) -> None:
    """Dispatch on the precision (see the module docstring); appends to ``notes``."""
    if precision == "fp32":
        if src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)
    elif precision == "fp16":
        _to_fp16(model, dst, skip, half_io)
    elif precision == "int8":
        if not calibration:
            raise ExportError("int8 needs calibration inputs; pass evaluation inputs to the export")
        notes.append(_to_int8_qdq(src, dst, calibration, skip, symmetric_activations, ranges))
        notes.append("activations " + ("symmetric s8 (TensorRT form)" if symmetric_activations else "asymmetric u8"))
    elif precision in ("int4", "int2"):
        tables = [n for n in _folded_tables(model, ranges) if n not in skip]
        if tables:  # as int8 leaves them (see _range_overrides): the student never rounds them
            notes.append(f"{len(tables)} constant-weight products of no weight layer kept float, as scored")
        notes += _to_weight_only(model, dst, 4 if precision == "int4" else 2, skip + tables)
    else:
        raise ExportError(f"unknown precision {precision!r}; expected fp32, fp16, int8, int4 or int2")


def _int8_part(
    src: Path,
    dst: Path,
    model: onnx.ModelProto,
    op_types: tuple[str, ...],
    calibration: list[dict[str, np.ndarray]] | None,
    skip: list[str],
    symmetric: bool,
    notes: list[str],
    ranges: Sequence[ActivationRange] = (),
) -> tuple[Path, onnx.ModelProto, list[str]]:
    """Store the nodes of ``op_types`` as int8 QDQ, every other weight node untouched; return
    the new source, its model and the nodes the low-bit pass must leave alone."""
    mine = [n for n in weight_layer_nodes(model, op_types, ranges) if n not in skip]
    others = [n.name for n in model.graph.node if n.op_type in WEIGHT_OPS and n.op_type not in op_types]
    part = dst.with_name(dst.stem + ".int8-part.onnx")
    _store(src, part, model, "int8", calibration, sorted(set(skip + others)), (), symmetric, notes, ranges)
    notes.append(f"{len(mine)} {'/'.join(op_types)} nodes stored as int8 QDQ (the plan's override)")
    return part, onnx.load(str(part)), skip + mine


@contextlib.contextmanager
def _quiet_logs():  # noqa: ANN202
    """onnxruntime's quantizers log every node at INFO and warn through the root logger."""
    loggers = [logging.getLogger(), logging.getLogger("onnxruntime"), logging.getLogger("onnxruntime.quantization")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


# --------------------------------------------------------------------------- node scopes


def node_scope(node: onnx.NodeProto) -> str:
    """The torch module path (fqn) a node came from, or "" when unknown.

    Dynamo-exported nodes carry ``pkg.torch.onnx.name_scopes`` metadata (the full path of
    every enclosing module, then the op); legacy-exported nodes are named ``/a/b.0/Op``.
    Paths start at the graph wrapper's attribute (``gpt.h.layers.0...``).
    """
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                parts = [p for p in ast.literal_eval(prop.value) if p]
            except (ValueError, SyntaxError):
                return ""
            return parts[-2] if len(parts) >= 2 else ""  # the last entry is the op itself
    if node.name.startswith("/"):
        return ".".join(p for p in node.name.split("/")[1:-1] if p)
    return ""


def nodes_in_scopes(model: onnx.ModelProto, prefixes: tuple[str, ...]) -> list[str]:
    """Names of weight-bearing nodes under any of the module paths ``prefixes``.

    A prefix matches a scope equal to it or starting with it plus ``.``, anywhere after the
    wrapper levels (so ``h.layers.0`` matches ``module.gpt.h.layers.0.linear1``).
    """
    if not prefixes:
        return []
    names = []
    for node in model.graph.node:
        if node.op_type not in WEIGHT_OPS:
            continue
        scope = "." + node_scope(node) + "."
        if any(f".{p}." in scope for p in prefixes):
            names.append(node.name)
    return names


# --------------------------------------------------------------------------- fp16


def _to_fp16(model: onnx.ModelProto, dst: Path, skip: list[str], half_io: tuple[str, ...]) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    floats = [
        v.name
        for v in list(model.graph.input) + list(model.graph.output)
        if v.type.tensor_type.elem_type == TensorProto.FLOAT
    ]
    keep = [n for n in floats if n not in half_io]
    converted = convert_float_to_float16(model, keep_io_types=keep, node_block_list=skip or None)
    _drop_repeated_casts_(converted)
    onnx.save_model(converted, str(dst))


# Default-domain opset of an integer graph with fp16 float parts: QuantizeLinear /
# DequantizeLinear take fp16 inputs and scales from 19 (the low-bit conv weights' int4
# DequantizeLinear is com.microsoft's, which takes them at its version 1).
FP16_QDQ_OPSET = 19


def _float_parts_to_fp16(path: Path, skip: list[str], half_io: tuple[str, ...], notes: list[str]) -> None:
    """Convert the float parts of the integer graph at ``path`` to fp16 in place (nodes in
    ``skip`` stay fp32, float inputs/outputs too except ``half_io``); appends a note."""
    model = onnx.load(str(path))
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version < FP16_QDQ_OPSET:
            opset.version = FP16_QDQ_OPSET
    model.ir_version = max(model.ir_version, 9)  # opset 19 needs IR version 9
    _to_fp16(model, path, skip, half_io)
    kept = f" ({len(skip)} nodes kept at fp32)" if skip else ""
    io = ", KV cache in fp16" if half_io else ""
    notes.append(f"float parts (norms, attention, activations between layers, dequantized math) in fp16{kept}{io}")


def _drop_repeated_casts_(model: onnx.ModelProto) -> int:
    """Remove the converter's second and later copies of one Cast (same input, output and type).

    onnxruntime's float16 converter gives each fp32-kept node reading an fp16 tensor its own Cast
    to fp32, all writing one name: two kept nodes reading one tensor (a self-attention's three
    projections, a residual block's convolutions) made a graph onnxruntime refuses to load.
    Returns the number removed.
    """
    seen: set[tuple] = set()
    kept, dropped = [], 0
    for node in model.graph.node:
        if node.op_type == "Cast":
            key = (tuple(node.input), tuple(node.output), tuple(a.SerializeToString() for a in node.attribute))
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
        kept.append(node)
    if dropped:
        del model.graph.node[:]
        model.graph.node.extend(kept)
        infos, names = [], set()
        for info in model.graph.value_info:  # the converter also repeated each Cast's output type
            if info.name not in names:
                names.add(info.name)
                infos.append(info)
        del model.graph.value_info[:]
        model.graph.value_info.extend(infos)
    return dropped


# --------------------------------------------------------------------------- int8 QDQ


class _FeedReader:
    """onnxruntime CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # part of the reader protocol; one pass is all we use
        pass


def _to_int8_qdq(
    src: Path,
    dst: Path,
    feeds: list[dict[str, np.ndarray]],
    skip: list[str],
    symmetric_activations: bool,
    ranges: Sequence[ActivationRange] = (),
) -> str:
    """Store ``src`` as static int8 QDQ; returns the note on where its input ranges came from."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    reader = type("Reader", (_FeedReader, CalibrationDataReader), {})(feeds)
    dst = dst.resolve()
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp, _working_dir(Path(tmp)):
        pre = Path(tmp) / "pre.onnx"
        # onnx shape inference only: the optimizer would rename nodes (breaking ``skip``), and
        # onnxruntime's symbolic pass gives up on the dynamic GPT graphs and then dumps debug
        # files into the working directory (hence the temporary one).
        quant_pre_process(str(src.resolve()), str(pre), skip_optimization=True, skip_symbolic_shape=True)
        pre_model = onnx.load(str(pre))
        excluded = sorted(set(skip) | set(_matmuls_without_constant_b(pre_model)))
        overrides, not_layers, note = _range_overrides(pre_model, set(excluded), ranges, symmetric_activations)
        excluded = sorted(set(excluded) | set(not_layers))
        quantize_static(
            str(pre),
            str(dst),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(WEIGHT_OPS),
            nodes_to_exclude=excluded,
            extra_options={
                "ActivationSymmetric": symmetric_activations,
                "WeightSymmetric": True,
                # onnxruntime's QDQ quantizer ignores "MatMulConstBOnly" (hence the exclusion
                # above) and by default also rounds every quantized node's output, which the
                # scored student never does (its logits would come out in 256 steps).
                "OpTypesToExcludeOutputQuantization": list(WEIGHT_OPS),
                "TensorQuantOverrides": overrides,
            },
        )
    model = onnx.load(str(dst))
    if _unround_other_consumers(model):
        onnx.save(model, str(dst))
    return note


def _range_overrides(
    model: onnx.ModelProto, excluded: set[str], ranges: Sequence[ActivationRange], symmetric: bool
) -> tuple[dict[str, list[dict[str, np.ndarray]]], list[str], str]:
    """onnxruntime tensor overrides (scale and zero point) giving each weight layer's input the
    scored student's range, the nodes to keep float (constant weights of no layer in ``ranges``,
    when given), and the note on where the inputs' ranges come from.

    A node is matched to its layer by its constant weight (as torch holds it, or transposed, as
    a MatMul holds a linear weight). Where one tensor feeds several layers whose ranges differ,
    it takes the widest (one tensor has one rounding in a QDQ graph).
    """
    by_weight: dict[tuple, tuple[float, float, bool] | None] = {}
    for r in ranges:
        w = np.asarray(r.weight, dtype=np.float32)
        span = None if r.low is None or r.high is None else (float(r.low), float(r.high), bool(r.symmetric))
        for key in {_weight_key(w), *([_weight_key(w.T)] if w.ndim == 2 else [])}:
            # two layers of equal weights but different ranges: which is which is unknown (None)
            by_weight[key] = None if key in by_weight and by_weight[key] != span else span
    constants = {i.name: i for i in model.graph.initializer}
    covered: dict[str, list[tuple[float, float, bool]]] = {}
    uncovered: set[str] = set()
    not_layers: list[str] = []
    for node in model.graph.node:
        if node.op_type not in WEIGHT_OPS or node.name in excluded or len(node.input) < 2:
            continue
        if node.input[1] not in constants:
            continue
        key = _weight_key(numpy_helper.to_array(constants[node.input[1]])) if ranges else None
        if ranges and key not in by_weight:
            not_layers.append(node.name)
            continue
        span = by_weight.get(key) if ranges else None
        if span is None:
            uncovered.add(node.input[0])
        else:
            covered.setdefault(node.input[0], []).append(span)
    overrides = {}
    widened = 0
    for tensor, spans in covered.items():
        low, high = min(s[0] for s in spans), max(s[1] for s in spans)
        widened += len(set(spans)) > 1
        params = activation_scale_zero_point(low, high, symmetric, scored_symmetric=all(s[2] for s in spans))
        if params is not None:
            overrides[tensor] = [{"scale": params[0], "zero_point": params[1]}]
    uncovered -= set(overrides)
    total = len(overrides) + len(uncovered)
    if not any(r.low is not None for r in ranges):
        note = f"{RANGES_NOTE}: all {total} calibrated by the export on its evaluation inputs (the student carries none)"
    else:
        note = f"{RANGES_NOTE}: {len(overrides)} of {total} from the scored student"
        if uncovered:
            note += f", {len(uncovered)} calibrated by the export on its evaluation inputs (the student has none for them)"
        if widened:
            note += f"; {widened} read by layers of different ranges take the widest"
    if not_layers:
        note += f"; {len(not_layers)} constant-weight products of no weight layer kept float, as scored"
    return overrides, not_layers, note


def _weight_key(w: np.ndarray) -> tuple:
    """Shape and digest of a weight's float32 values: finds a torch layer's weight in a graph."""
    data = np.ascontiguousarray(w, dtype=np.float32)
    return data.shape, hashlib.sha1(data.tobytes()).digest()


def activation_scale_zero_point(
    low: float, high: float, symmetric: bool, scored_symmetric: bool = False
) -> tuple[np.ndarray, np.ndarray] | None:
    """The int8 scale and zero point of an activation range, as the scored fake quantization
    computes them: symmetric s8 ``max(|low|, |high|) / 127`` and zero point 0, or asymmetric u8
    over the range widened to hold 0; None for an empty range (all zeros).

    ``scored_symmetric`` (u8 only): the range was scored as symmetric s8; u8 then takes the same
    scale and zero point 128, which rounds every value exactly as s8 does (u8 0..255 is s8
    -128..127 shifted)."""
    if symmetric or scored_symmetric:
        amax = max(abs(low), abs(high))
        if amax == 0.0:
            return None
        zero = np.array(0, dtype=np.int8) if symmetric else np.array(128, dtype=np.uint8)
        return np.array(amax / 127, dtype=np.float32), zero
    low, high = min(low, 0.0), max(high, 0.0)
    if high == low:
        return None
    scale = max((high - low) / 255.0, float(np.finfo(np.float32).tiny))
    zero = min(max(round(-low / scale), 0), 255)
    return np.array(scale, dtype=np.float32), np.array(zero, dtype=np.uint8)


def _unround_other_consumers(model: onnx.ModelProto) -> int:
    """Give back the float tensor to every reader of a rounded activation other than the weight
    layers it was rounded for (a residual Add, attention's value product), as the scored student
    rounds only a weight layer's input; onnxruntime hands the rounded copy to every reader.
    Returns the number of inputs rewired."""
    nodes = model.graph.node
    constant = {i.name for i in model.graph.initializer}
    producer = {o: n for n in nodes for o in n.output}

    def dequantized_constant(name: str) -> bool:
        node = producer.get(name)
        return node is not None and node.op_type == "DequantizeLinear" and node.input[0] in constant

    float_of = {}  # a rounded activation -> the float tensor it was rounded from
    for dq in nodes:
        quant = producer.get(dq.input[0]) if dq.op_type == "DequantizeLinear" else None
        if quant is not None and quant.op_type == "QuantizeLinear":
            float_of[dq.output[0]] = quant.input[0]
    rewired = 0
    for node in nodes:
        rounded_for = node.op_type in WEIGHT_OPS and len(node.input) > 1 and dequantized_constant(node.input[1])
        for i, name in enumerate(node.input):
            if name in float_of and not (rounded_for and i == 0):
                node.input[i] = float_of[name]
                rewired += 1
    return rewired


_PASS_THROUGH_OPS = ("Identity", "Cast", "Transpose", "Reshape", "Squeeze", "Unsqueeze")


def _constant_test(model: onnx.ModelProto) -> Callable[[str], bool]:
    """A test whether a tensor of ``model`` is a constant (an initializer, a Constant, or one
    reshaped or transposed from them)."""
    constant = {i.name for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}

    def is_constant(name: str, depth: int = 0) -> bool:
        if name in constant:
            return True
        node = producer.get(name)
        if node is None or depth > 8:
            return False
        if node.op_type == "Constant":
            return True
        return node.op_type in _PASS_THROUGH_OPS and all(is_constant(i, depth + 1) for i in node.input if i)

    return is_constant


def _matmuls_without_constant_b(model: onnx.ModelProto) -> list[str]:
    """Names of MatMul nodes whose B input is computed at run time (attention products)."""
    is_constant = _constant_test(model)
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and not is_constant(n.input[1])]


def _folded_tables(model: onnx.ModelProto, layers: Sequence[ActivationRange]) -> list[str]:
    """Names of weight-op nodes whose constant weight is none of ``layers`` (a table the exporter
    folded into a constant, such as a relative-position embedding); none when no layers are given."""
    if not layers:
        return []
    keys = set()
    for layer in layers:
        w = np.asarray(layer.weight, dtype=np.float32)
        keys.add(_weight_key(w))
        if w.ndim == 2:  # a MatMul holds a linear weight transposed
            keys.add(_weight_key(w.T))
    inits = {i.name: i for i in model.graph.initializer}
    return [
        n.name
        for n in model.graph.node
        if n.op_type in WEIGHT_OPS and len(n.input) > 1 and n.input[1] in inits
        and _weight_key(numpy_helper.to_array(inits[n.input[1]])) not in keys
    ]  # fmt: skip


def weight_layer_nodes(
    model: onnx.ModelProto, op_types: Sequence[str], layers: Sequence[ActivationRange] = ()
) -> list[str]:
    """Names of the nodes of ``op_types`` that compute a weight layer: their weight input is a
    constant (not a product of two computed tensors, as attention's) and, when the scored
    student's ``layers`` are given, not a constant table of none of them."""
    if not op_types:
        return []
    is_constant = _constant_test(model)
    tables = set(_folded_tables(model, layers))
    return [
        n.name
        for n in model.graph.node
        if n.op_type in op_types and len(n.input) > 1 and is_constant(n.input[1]) and n.name not in tables
    ]


@contextlib.contextmanager
def _working_dir(path: Path):  # noqa: ANN202
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


# --------------------------------------------------------------------------- weight-only int4 / int2


def _to_weight_only(model: onnx.ModelProto, dst: Path, bits: int, skip: list[str]) -> list[str]:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    notes = []
    n_gemm = _gemm_to_matmul_(model, set(skip))
    if n_gemm:
        notes.append(f"{n_gemm} Gemm nodes with constant weights rewritten as MatMul (+ Add) for low-bit storage")
    n_conv = _conv_weights_to_low_bit_(model, bits, set(skip))
    if n_conv:
        notes.append(f"{n_conv} conv weights stored as {bits}-bit values (weight-only DequantizeLinear)")
    n_matmul = sum(1 for n in model.graph.node if n.op_type == "MatMul" and n.name not in skip)
    if n_matmul:
        quantizer = MatMulNBitsQuantizer(
            model, bits=bits, block_size=NBITS_BLOCK, is_symmetric=True, nodes_to_exclude=list(skip),
            accuracy_level=NBITS_ACCURACY_LEVEL,
        )
        quantizer.process()
        model = quantizer.model.model
        done = sum(1 for n in model.graph.node if n.op_type == "MatMulNBits")
        notes.append(
            f"{done} MatMuls as MatMulNBits ({bits}-bit, block {NBITS_BLOCK}, accuracy level {NBITS_ACCURACY_LEVEL})"
        )
    onnx.save_model(model, str(dst))
    return notes


def _initializers_and_uses(model: onnx.ModelProto) -> tuple[dict[str, onnx.TensorProto], dict[str, int]]:
    """The graph's initializers by name, and how many node inputs read each name."""
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    return {i.name: i for i in model.graph.initializer}, uses


def _gemm_to_matmul_(model: onnx.ModelProto, skip: set[str]) -> int:
    """Rewrite ``Gemm(A, B const, C)`` (alpha = beta = 1, A not transposed) as ``MatMul`` + ``Add``.

    A torch Linear on a 2-D input exports as Gemm, which MatMulNBits does not take; as a
    MatMul its weight is stored at low bit like every other linear layer.
    """
    inits, users = _initializers_and_uses(model)
    nodes, count = [], 0
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute} if node.op_type == "Gemm" else {}
        plain = attrs.get("transA", 0) == 0 and attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
        b = node.input[1] if node.op_type == "Gemm" and len(node.input) > 1 else ""
        if not (plain and b in inits and users.get(b, 0) == 1 and node.name not in skip):
            nodes.append(node)
            continue
        if attrs.get("transB", 0):
            w = numpy_helper.to_array(inits[b]).T.copy()
            model.graph.initializer.remove(inits[b])
            model.graph.initializer.append(numpy_helper.from_array(w, b))
        has_c = len(node.input) > 2 and node.input[2] != ""
        product = node.output[0] + "_matmul" if has_c else node.output[0]
        base = node.name.removesuffix("Gemm") if node.name.endswith("Gemm") else node.name + "_"
        matmul = helper.make_node("MatMul", [node.input[0], b], [product], name=base + "MatMul")
        matmul.metadata_props.extend(node.metadata_props)  # keep its module scope
        nodes.append(matmul)
        if has_c:
            add = helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=base + "Add")
            add.metadata_props.extend(node.metadata_props)
            nodes.append(add)
        count += 1
    if count:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return count


def _conv_weights_to_low_bit_(model: onnx.ModelProto, bits: int, skip: set[str]) -> int:
    """Replace constant Conv/ConvTranspose weights by int4 storage + per-channel scale + DQ."""
    inits, users = _initializers_and_uses(model)
    qmax = 2 ** (bits - 1) - 1  # symmetric: 7 for 4 bits, 1 for 2 bits
    new_nodes, count = [], 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose") or node.name in skip:
            continue
        wname = node.input[1]
        if wname not in inits or users.get(wname, 0) != 1:
            continue
        w = numpy_helper.to_array(inits[wname]).astype(np.float32)
        axis = 0 if node.op_type == "Conv" else 1  # ConvTranspose weights are [in, out / groups, k]
        reduce_axes = tuple(i for i in range(w.ndim) if i != axis)
        amax = np.abs(w).max(axis=reduce_axes)
        scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.rint(w / scale.reshape(shape)), -qmax, qmax).astype(np.int8)
        q_init = helper.make_tensor(wname + "_q", TensorProto.INT4, q.shape, _pack_int4(q), raw=True)
        s_init = numpy_helper.from_array(scale, wname + "_scale")
        model.graph.initializer.remove(inits[wname])
        model.graph.initializer.extend([q_init, s_init])
        new_nodes.append(
            helper.make_node(
                "DequantizeLinear", [q_init.name, s_init.name], [wname], name=wname + "_dq", axis=axis, domain=_MS_DOMAIN
            )
        )
        count += 1
    if new_nodes:
        for i, n in enumerate(new_nodes):
            model.graph.node.insert(i, n)
        if not any(o.domain == _MS_DOMAIN for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(_MS_DOMAIN, 1))
    return count


def _pack_int4(q: np.ndarray) -> bytes:
    """ONNX INT4 raw data: two's-complement nibbles, two per byte, the first in the low half."""
    flat = q.reshape(-1).astype(np.int8)
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, dtype=np.int8)])
    nibbles = (flat & 0x0F).astype(np.uint8)
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8).tobytes()


__all__ = [
    "ActivationRange",
    "FP16_QDQ_OPSET",
    "NBITS_ACCURACY_LEVEL",
    "NBITS_BLOCK",
    "RANGES_NOTE",
    "WEIGHT_OPS",
    "activation_scale_zero_point",
    "node_scope",
    "nodes_in_scopes",
    "quantize_graph",
    "weight_layer_nodes",
]
