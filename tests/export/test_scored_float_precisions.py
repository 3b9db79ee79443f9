"""A group's float precisions are scored as its exported graph runs them: bf16 weights and
activations as the fp16 the export writes (or the fp32 a target without fp16 gets), the plan's
fp16 activations in a group exported as an fp32 graph as the float inputs that graph takes, and
in an integer group as the fp16 float parts its graph then has."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from export_helpers import _root, make_voice, stripped_export

from autocompress.compress import compress, strip_fake_quant_
from autocompress.compress.plan import CompressionPlan, GroupPlan, QuantConfig
from autocompress.export.precision import request_from_plan
from autocompress.export.references import graph_outputs, graph_views
from autocompress.runtime.session import open_session


def _bundle_matches_the_scored_student(
    plan: CompressionPlan, target: str | None, groups: dict[str, str], min_snr_db: dict[str, float] | None = None
) -> None:
    """Compress the tiny voice with ``plan``, export the student as the search saves it, and check
    each graph of ``groups`` (graph -> the precision its group must ship at) runs the scored model:
    to float rounding, or to ``min_snr_db`` for a graph named there (fp16 float parts)."""
    student, as_scored = compress(make_voice(), plan), compress(make_voice(), plan)  # one is stripped for export
    views = graph_views(as_scored.gpt, as_scored.sovits)
    export = stripped_export(student, {})
    try:
        scored = {graph: graph_outputs(views[graph], export.refs.cases[graph].feeds) for graph in groups}
        out = _root() / f"bundle_float_{plan.name}"
        bundle = export.bundle(plan, out, target, n_samples=1, upstream=False, threads=1)
        for graph, precision in groups.items():
            entry = bundle.manifest.graphs[graph]
            assert entry.precision == precision, (graph, entry.precision)
            session = open_session(bundle.path / entry.file, ["CPUExecutionProvider"], 1)
            for feeds, want in zip(export.refs.cases[graph].feeds, scored[graph]):
                names = [i.name for i in session.get_inputs()]
                got = session.run(None, {n: feeds[n].astype(np.float32) if feeds[n].dtype.kind == "f" else feeds[n]
                                         for n in names})  # fmt: skip
                for w, g in zip(want, got):
                    if graph in (min_snr_db or {}):
                        err = float(np.sum((w.astype(np.float64) - g) ** 2))
                        assert 10 * np.log10(float(np.sum(w.astype(np.float64) ** 2)) / err) >= min_snr_db[graph], graph
                    else:
                        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * float(np.abs(w).max()), err_msg=graph)
    finally:
        export.close()


def test_fp16_activations_are_scored_as_the_graph_runs_its_float_parts() -> None:
    """The flow's fp32 weights ship as an fp32 graph, which does not round its inputs to fp16,
    as scoring did; the decoder's int4 convolutions ship weight-only (DequantizeLinear, then a
    Conv) with fp16 float parts, the plan's fp16 activations, which scoring rounded to too."""
    plan = CompressionPlan(
        {"dec": GroupPlan(quant=QuantConfig("int4", "fp16")), "flow": GroupPlan(quant=QuantConfig("fp32", "fp16"))},
        name="int4_fp32_with_fp16_activations",
    )
    _bundle_matches_the_scored_student(plan, None, {"dec": "int4", "flow": "fp32"}, {"dec": 40.0})
    assert request_from_plan(plan, "flow").notes == ("activations fp16: the fp32 graph runs its float math in fp32 (scored so too)",)
    request = request_from_plan(plan, "dec")
    assert (request.floats, request.notes) == ("fp16", ())
    int4_fp32 = CompressionPlan({"dec": GroupPlan(quant=QuantConfig("int4", "fp32"))})
    assert request_from_plan(int4_fp32, "dec").floats == "fp32"


def test_bf16_on_the_cpu_target_is_scored_as_the_fp32_graph_it_ships() -> None:
    """The cpu target lists bf16 matmul but the export writes bf16 as fp16, which onnxruntime's
    CPU provider is not given: the GPT ships as an fp32 graph. Its student rounded weights to
    bf16 and inputs to fp16 for nothing; now the plan says fp32 and the student is the teacher's."""
    plan = CompressionPlan({"gpt": GroupPlan(quant=QuantConfig("bf16", "bf16"))}, name="bf16_gpt").with_fallback("cpu")
    assert plan.group("gpt").quant.is_identity
    _bundle_matches_the_scored_student(plan, "cpu", {"gpt_prefill": "fp32"})


@pytest.mark.parametrize("activations", ["bf16", "fp32"])
def test_a_bf16_group_is_scored_as_the_fp16_graph_it_ships(activations: str) -> None:
    """Its weights round to fp16, as stored, and its inputs to fp16, as the fp16 graph runs them
    (they rounded to bf16): the student scored is the fp16 plan's, whose bundle is the one shipped."""
    bf16 = CompressionPlan({"dec": GroupPlan(quant=QuantConfig("bf16", activations))})
    fp16 = CompressionPlan({"dec": GroupPlan(quant=QuantConfig("fp16", "fp16"))})
    assert bf16.with_fallback("rtx3060").to_dict()["data"]["groups"] == fp16.to_dict()["data"]["groups"]
    voice = make_voice()
    a, b = compress(voice, bf16), compress(voice, fp16)
    torch.manual_seed(0)
    x, g = 3.0 * torch.randn(1, 96, 20), torch.randn(1, 128, 1)
    with torch.no_grad():
        assert torch.equal(a.sovits.dec(x, g=g), b.sovits.dec(x, g=g))
    strip_fake_quant_(a.sovits)
    strip_fake_quant_(b.sovits)
    for (name, p), (_, q) in zip(a.sovits.dec.named_parameters(), b.sovits.dec.named_parameters()):
        assert torch.equal(p, q), name
