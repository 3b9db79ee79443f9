"""Store the weights two graphs have in common once: a shared external-data file.

The GPT's prefill and decode graphs are exported from the same module, so nearly all their
initializers are byte-identical (after quantization too: weight quantization depends on the
weights alone). :func:`share_initializers` moves every initializer of at least
:data:`MIN_SHARED_BYTES` into one file beside the graphs, each distinct tensor once, and points
the graphs at it with ONNX external data (page-aligned offsets, so onnxruntime can map the file
instead of copying it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
from onnx.external_data_helper import set_external_data

MIN_SHARED_BYTES = 1024  # smaller tensors (shapes, scalars) stay inside the graph files
_ALIGN = 4096  # page alignment of every tensor in the shared file


def share_initializers(graphs: list[Path], shared: Path) -> dict[str, int]:
    """Rewrite ``graphs`` in place so their large initializers live once in ``shared``.

    Args:
        graphs: ONNX files in the same folder (self-contained, weights inside).
        shared: the external-data file to write, in that folder.

    Returns:
        ``{"tensors": distinct tensors written, "shared_bytes": bytes saved by sharing}``.
    """
    offsets: dict[str, tuple[int, int]] = {}
    saved = 0
    with open(shared, "wb") as out:
        for path in graphs:
            model = onnx.load(str(path))
            _constants_to_initializers_(model)
            for tensor in model.graph.initializer:
                if not tensor.HasField("raw_data") or len(tensor.raw_data) < MIN_SHARED_BYTES:
                    continue
                data = tensor.raw_data
                key = hashlib.sha256(
                    tensor.data_type.to_bytes(4, "little") + str(list(tensor.dims)).encode() + data
                ).hexdigest()
                if key in offsets:
                    saved += len(data)
                else:
                    start = -(-out.tell() // _ALIGN) * _ALIGN
                    out.write(b"\0" * (start - out.tell()))
                    out.write(data)
                    offsets[key] = (start, len(data))
                offset, length = offsets[key]
                set_external_data(tensor, shared.name, offset, length)
                tensor.data_location = onnx.TensorProto.EXTERNAL
                tensor.ClearField("raw_data")
            onnx.save_model(model, str(path))
    return {"tensors": len(offsets), "shared_bytes": saved}


def _constants_to_initializers_(model: onnx.ModelProto) -> None:
    """Turn large ``Constant`` nodes (exporters emit some tables this way) into initializers."""
    keep = []
    for node in model.graph.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is not None and value.HasField("raw_data") and len(value.raw_data) >= MIN_SHARED_BYTES:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value)
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
        else:
            keep.append(node)
    if len(keep) != len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(keep)


__all__ = ["MIN_SHARED_BYTES", "share_initializers"]
