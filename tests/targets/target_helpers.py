"""What the target tests share."""

from __future__ import annotations


def good_target() -> dict:
    """The parsed TOML of a valid datasheet target file."""
    return {
        "kind": "gpu", "memory_gb": 8, "bandwidth_gbps": 100, "default_precision": "fp16",
        "runtimes": ["onnxruntime-cuda"], "peak_tflops": {"fp32": 1, "fp16": 2},
        "deployable": {"matmul": ["fp32", "fp16"], "conv": ["fp32", "fp16"]},
        "budget": {"vram_gb": 1, "rtf": 0.5, "max_seq_len": 100},
        "projection": {"launch_overhead_us": 5, "efficiency": 0.5, "context_mb": 300},
    }  # fmt: skip
