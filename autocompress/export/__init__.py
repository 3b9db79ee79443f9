"""ONNX export: per-module graphs, onnxruntime precision, parity checks with fallback, bundles.

``export_bundle(voice, plan, out_dir, target, eval_inputs)`` is the entry point; the bundle it
writes runs with :mod:`autocompress.runtime` (onnxruntime and numpy only).
"""

from __future__ import annotations

from autocompress.export.bundle import DEFAULT_MAX_TOKENS, EXPORT_REVISION, Bundle, VoiceExport, export_bundle
from autocompress.export.onnx_export import OPSET, GraphSpec, export_graph
from autocompress.export.ort_quant import quantize_graph
from autocompress.export.parity import ParityBounds
from autocompress.export.precision import candidate_precisions, request_from_plan, to_export_precision
from autocompress.export.references import GROUP_GRAPHS, plain_copy
from autocompress.export.upstream import write_upstream

__all__ = [
    "Bundle",
    "DEFAULT_MAX_TOKENS",
    "EXPORT_REVISION",
    "GROUP_GRAPHS",
    "GraphSpec",
    "OPSET",
    "ParityBounds",
    "VoiceExport",
    "candidate_precisions",
    "export_bundle",
    "export_graph",
    "plain_copy",
    "quantize_graph",
    "request_from_plan",
    "to_export_precision",
    "write_upstream",
]
