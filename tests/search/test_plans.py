"""One-line plan summaries: two different plans never read the same."""

from __future__ import annotations

from autocompress.compress.plan import CompressionPlan, GroupPlan, PruneConfig, QuantConfig
from autocompress.search.plans import plan_summary


def _one(**quant: object) -> str:
    return plan_summary(CompressionPlan({"gpt": GroupPlan(prune=PruneConfig(ratio=0.2), quant=QuantConfig(**quant))}))


def test_weight_only_and_full_quantization_read_differently():
    """int8 weights with int8 activations and with fp32 ones both read "int8" (and fp16 the
    same), so the report and the export's twin check could not tell them apart."""
    assert _one(weights="int8", activations="int8") == "gpt int8 prune 20%"
    assert _one(weights="int8", activations="fp32") == "gpt int8 act fp32 prune 20%"
    # an integer group with fp16 activations runs fp16 float parts (a GPU target's graph): "act
    # fp16" read as W8A16
    assert _one(weights="int4", activations="fp16") == "gpt int4 fp16 floats prune 20%"
    assert _one(weights="int8", activations="fp16") == "gpt int8 fp16 floats prune 20%"
    assert _one(weights="int8", activations="bf16") == _one(weights="int8", activations="fp16")
    assert _one(weights="fp16", activations="fp16") != _one(weights="fp16", activations="fp32")
    assert plan_summary(CompressionPlan({})) == "teacher (fp32, unchanged)"
